"""The comparison methods of the paper, behind one calling convention.

Every method is a callable ``method(model, images, target=None) -> saliency`` returning a
``(B, 1, h, w)`` tensor, **high = salient**, at the method's natural resolution, so the
insertion/deletion metric ranks it where the paper does:

==================  ==================================================  =====================
method              how                                                 resolution
==================  ==================================================  =====================
``GradCAM``         pytorch-grad-cam on the last convolutional block    the layer's (7 x 7)
``IntegratedGrad``  Captum, blur or black baseline, channel-summed      the image's (224)
``RISE``            implemented here: 8000 random 7 x 7 masks, p = 0.5  the image's (224)
``Optimized``       :func:`igospp.explain` (Mask, I-GOS, iGOS++, ...)   the mask's (any)
==================  ==================================================  =====================

Targets follow :func:`igospp.explain`: ``None`` (top-1 class), an int, one entry per image,
or a callable on the model output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .acceleration import accelerate
from .config import Config, default_batch_size
from .explain import explain
from .inputs import BaselineLike, check_images, model_device, resolve_baseline
from .models import IMAGENET_MEAN, IMAGENET_STD
from .targets import Scorer, Target, check_model_output, resolve_target

__all__ = ["Optimized", "GradCAM", "IntegratedGrad", "RISE", "gradcam_layer", "get_method", "METHOD_NAMES"]

#: Names accepted by :func:`get_method` (and by the command line).
METHOD_NAMES: tuple[str, ...] = ("igospp", "igos", "mask", "naive", "insertion", "gradcam", "ig", "rise")


def _prepare(model: torch.nn.Module, images: torch.Tensor, target: Target,
             score: str, fast: bool = False) -> tuple[torch.Tensor, Scorer, torch.nn.Module]:
    """Checked images on the model's device, the target's scorer, and the model to run.

    With ``fast``, that model is a streamlined copy in its fastest memory layout
    (:func:`igospp.accelerate`); otherwise it is ``model`` itself.
    """
    images = check_images(images)
    device, dtype = model_device(model, images)
    x = images.detach().to(device, dtype)
    with torch.no_grad():
        out = check_model_output(model(x), x.shape[0])
    return x, resolve_target(target, out, score), accelerate(model, x, out, enabled=fast)


class Optimized:
    """Mask, I-GOS, iGOS++ (or any :class:`~igospp.Config`) as a comparison method.

    Returns ``1 - mask`` at the mask's resolution (what the authors' metric ranks).

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> method = igospp.baselines.Optimized(igospp.Config.igos(resolution=4, iterations=1, ig_steps=2))
        >>> method(model.eval(), torch.randn(1, 3, 16, 16), target=0).shape
        torch.Size([1, 1, 4, 4])
    """

    def __init__(self, config: Config, baseline: BaselineLike = None) -> None:
        self.config = config
        self.baseline = baseline
        self.name = config.method
        self.last_explanation = None

    def __call__(self, model: torch.nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
        exp = explain(model, images, target=target, config=self.config, baseline=self.baseline)
        self.last_explanation = exp
        return exp.cell_saliency


def gradcam_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The layer Grad-CAM uses for the known architectures.

    EfficientNet-Lite (``efficientnet_lite_pytorch``): the head's batch norm (7 x 7);
    torchvision ResNets: ``layer4[-1]`` (7 x 7, as in the paper); torchvision VGGs: the
    activation before the last max-pool (``features[35]`` of VGG19, 14 x 14); timm models: the
    last entry of ``feature_info``. Other models: pass ``layer=`` to :class:`GradCAM`.
    """
    from torchvision.models import VGG, ResNet

    if hasattr(model, "_conv_head") and hasattr(model, "_bn1"):
        return model._bn1
    if isinstance(model, ResNet):
        return model.layer4[-1]
    if isinstance(model, VGG):
        pools = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool2d)]
        return model.features[pools[-1] - 1]
    info = getattr(model, "feature_info", None)
    if info is not None:
        return model.get_submodule(info[-1]["module"])
    raise ValueError(f"no default Grad-CAM layer is known for {type(model).__name__}; "
                     "pass GradCAM(layer=model.<last conv block>).")


class GradCAM:
    """Grad-CAM (Selvaraju et al. 2017) through pytorch-grad-cam, at the layer's resolution.

    Args:
        layer: the module whose activations are weighted, or its name in ``model.named_modules()``
            (a name follows the model it is called with, e.g. the randomized copies of the sanity
            checks); default :func:`gradcam_layer`.

    The map is the ReLU of the gradient-weighted sum of the layer's channels, min-max
    normalised per image by pytorch-grad-cam, **not** upsampled: ``(B, 1, 7, 7)`` for ResNet50
    and EfficientNet-Lite0. Class targets score the logit (Grad-CAM's definition).

    Example:
        >>> import torch, igospp
        >>> bundle = igospp.load_model("efficientnet_lite0", device="cpu")
        >>> x = bundle.preprocess(igospp.sample_images(["coffee"])["coffee"])
        >>> igospp.baselines.GradCAM()(bundle.model, x).shape
        torch.Size([1, 1, 7, 7])
    """

    name = "gradcam"

    def __init__(self, layer: torch.nn.Module | str | None = None) -> None:
        self.layer = layer

    def _layer(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.layer is None:
            return gradcam_layer(model)
        if isinstance(self.layer, str):
            try:
                return model.get_submodule(self.layer)
            except AttributeError:
                raise ValueError(f"layer {self.layer!r} is not a module of {type(model).__name__}; "
                                 "see model.named_modules() for the names.") from None
        if not any(m is self.layer for m in model.modules()):
            raise ValueError(f"layer {type(self.layer).__name__} is not a module of the model being explained "
                             "(a copy of the model has copies of its layers); pass the layer's name instead.")
        return self.layer

    def __call__(self, model: torch.nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
        from pytorch_grad_cam import GradCAM as _GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        class _AtLayerResolution(_GradCAM):
            def get_target_width_height(self, input_tensor):
                act = self.activations_and_grads.activations[0]
                return act.shape[-1], act.shape[-2]

        with torch.inference_mode(False), torch.enable_grad():
            x, scorer, _ = _prepare(model, images, target, "logit")
            targets = [ClassifierOutputTarget(int(c)) if f is None else (lambda out, f=f: f(out[None])[0])
                       for c, f in zip(scorer.classes.tolist(), scorer.functions, strict=True)]
            layer = self._layer(model)
            with _AtLayerResolution(model=model, target_layers=[layer]) as cam:
                cam.compute_input_gradient = True      # works with frozen parameters
                maps = cam(input_tensor=x, targets=targets)
        return torch.from_numpy(maps).unsqueeze(1).to(images.device, images.dtype)


class IntegratedGrad:
    """Integrated Gradients (Sundararajan et al. 2017) through Captum, channel-summed.

    Args:
        baseline: ``"blur"`` (default; the blur of :func:`igospp.blur_baseline`, as the
            optimization methods use), ``"black"`` (black pixels in normalised units, from
            ``mean``/``std``), or anything :func:`igospp.explain` accepts as a baseline.
        steps: Riemann steps of Captum's path integral. Default 50.
        attribution: ``"abs"`` (default): the sum over channels of ``|attribution|``;
            ``"positive"``: the positive part of the channel sum.
        score: ``"logit"`` (default) or ``"softmax"``: what is attributed for class targets.
        mean, std: the model's normalisation (for ``"black"``). Default ImageNet's.
        batch_size: path images per model call (Captum's ``internal_batch_size``).
        accelerate: run the path images through a streamlined copy of the model in its
            fastest memory layout (:func:`igospp.accelerate`; equal to float rounding).
            Default ``True``. A model already prepared by :func:`igospp.accelerate` is used
            as it is (prepare once, call many times).
    """

    name = "ig"

    def __init__(self, baseline: BaselineLike | str = "blur", steps: int = 50, attribution: str = "abs",
                 score: str = "logit", mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 batch_size: int | None = None, accelerate: bool = True) -> None:
        if attribution not in ("abs", "positive"):
            raise ValueError(f"attribution must be 'abs' or 'positive', got {attribution!r}.")
        if score not in ("logit", "softmax"):
            raise ValueError(f"score must be 'logit' or 'softmax', got {score!r}.")
        self.baseline, self.steps, self.attribution, self.score = baseline, steps, attribution, score
        self.mean, self.std, self.batch_size = tuple(mean), tuple(std), batch_size
        self.accelerate = accelerate

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        if self.baseline == "blur":
            return resolve_baseline(None, x)
        if self.baseline == "black":
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            return ((0 - mean) / std).expand_as(x).contiguous()
        return resolve_baseline(self.baseline, x)

    def __call__(self, model: torch.nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
        from captum.attr import IntegratedGradients

        with torch.inference_mode(False), torch.enable_grad():
            x, scorer, run = _prepare(model, images, target, self.score, fast=self.accelerate)
            base = self._baseline(x)
            chunk = self.batch_size or default_batch_size(x.device)
            maps = []
            for b in range(x.shape[0]):
                fn = scorer.functions[b]
                if fn is None:
                    forward = (lambda z: run(z).softmax(dim=1)) if self.score == "softmax" else run
                    tgt = int(scorer.classes[b])
                else:
                    forward, tgt = (lambda z, fn=fn: fn(run(z)).unsqueeze(1)), 0
                attr = IntegratedGradients(forward).attribute(x[b:b + 1], base[b:b + 1], target=tgt,
                                                              n_steps=self.steps, internal_batch_size=chunk)
                maps.append(attr.abs().sum(dim=1, keepdim=True) if self.attribution == "abs"
                            else attr.sum(dim=1, keepdim=True).clamp(min=0))
        return torch.cat(maps).detach().to(images.device, images.dtype)


class RISE:
    """RISE (Petsiuk et al. 2018): saliency as the score-weighted average of random masks.

    Args:
        n_masks: number of masks. Default 8000 (the paper's figures).
        cells: the random binary grid is ``cells x cells``. Default 7.
        p: probability that a cell is kept. Default 0.5.
        seed: seed of the masks (drawn on the CPU, so every device gets the same masks).
        batch_size: masked images per model call.
        substrate: what masked-out pixels become, in normalised units. Default 0 (RISE's
            multiplication of the normalised image by the mask).
        accelerate: run the masked images through a streamlined copy of the model in its
            fastest memory layout (:func:`igospp.accelerate`; equal to float rounding).
            Default ``True``. A model already prepared by :func:`igospp.accelerate` is used
            as it is (prepare once, call many times).

    Each grid is upsampled bilinearly to ``(cells + 1) x cell size`` and shifted by a random
    offset below one cell before cropping to the image, as in RISE; saliency is
    ``sum_i f(I * M_i) M_i / (n_masks * p)``. RISE's ``skimage`` resize reflects at the grid's
    border where this one (PyTorch, ``align_corners=False``) clamps; only the outermost half
    cell differs.

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 4)).eval()
        >>> igospp.baselines.RISE(n_masks=16)(model, torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    name = "rise"

    def __init__(self, n_masks: int = 8000, cells: int = 7, p: float = 0.5, seed: int = 0,
                 batch_size: int | None = None, substrate: float = 0.0, accelerate: bool = True) -> None:
        if n_masks < 1 or cells < 1 or not 0 < p <= 1:
            raise ValueError(f"RISE needs n_masks >= 1, cells >= 1 and 0 < p <= 1; got {n_masks}, {cells}, {p}.")
        self.n_masks, self.cells, self.p, self.seed = n_masks, cells, p, seed
        self.batch_size, self.substrate, self.accelerate = batch_size, substrate, accelerate

    def draws(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The seeded random draws: binary grids ``(n_masks, 1, cells, cells)`` and shifts ``(n_masks, 2)``."""
        gen = torch.Generator().manual_seed(self.seed)
        grids = (torch.rand(self.n_masks, 1, self.cells, self.cells, generator=gen) < self.p).float()
        cell_h, cell_w = math.ceil(height / self.cells), math.ceil(width / self.cells)
        shifts = torch.stack([torch.randint(0, cell_h, (self.n_masks,), generator=gen),
                              torch.randint(0, cell_w, (self.n_masks,), generator=gen)], dim=1)
        return grids, shifts

    def masks(self, grids: torch.Tensor, shifts: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Smooth masks ``(n, 1, height, width)`` from grids and shifts (a slice of :meth:`draws`)."""
        cell_h, cell_w = math.ceil(height / self.cells), math.ceil(width / self.cells)
        up = F.interpolate(grids, size=((self.cells + 1) * cell_h, (self.cells + 1) * cell_w),
                           mode="bilinear", align_corners=False)
        return torch.stack([up[i, :, dy:dy + height, dx:dx + width] for i, (dy, dx) in enumerate(shifts.tolist())])

    def __call__(self, model: torch.nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
        x, scorer, run = _prepare(model, images, target, "softmax", fast=self.accelerate)
        batch, _, height, width = x.shape
        chunk = self.batch_size or default_batch_size(x.device)
        sal = torch.zeros(batch, 1, height, width, dtype=x.dtype, device=x.device)
        grids, shifts = self.draws(height, width)
        grids = grids.to(x.device, x.dtype)
        with torch.inference_mode():
            for start in range(0, self.n_masks, chunk):
                stop = min(start + chunk, self.n_masks)
                m = self.masks(grids[start:stop], shifts[start:stop], height, width)
                for b in range(batch):
                    masked = x[b:b + 1] * m + self.substrate * (1 - m)
                    out = check_model_output(run(masked), masked.shape[0])
                    scores = scorer(out, torch.full((m.shape[0],), b, device=x.device))
                    sal[b] += (scores.view(-1, 1, 1, 1) * m).sum(dim=0)
        return (sal / (self.n_masks * self.p)).to(images.device, images.dtype)


def get_method(name: str, resolution: int | tuple[int, int] = 28, **options: Any) -> Any:
    """A comparison method by name (see :data:`METHOD_NAMES`).

    ``resolution`` and ``options`` configure the optimization methods (``Config`` fields,
    e.g. ``iterations=5``); the others take their own keyword options (e.g. ``n_masks`` for
    RISE) and ignore ``resolution``, which is fixed by their nature.

    Example:
        >>> import igospp
        >>> igospp.baselines.get_method("igos", resolution=14, iterations=3).config.mask_size
        (14, 14)
    """
    if name in ("igospp", "igos", "mask", "naive", "insertion"):
        return Optimized(Config.preset(name, resolution=resolution, **options))
    if name == "gradcam":
        return GradCAM(**options)
    if name == "ig":
        return IntegratedGrad(**options)
    if name == "rise":
        return RISE(**options)
    raise ValueError(f"unknown method {name!r}; available: {list(METHOD_NAMES)}.")
