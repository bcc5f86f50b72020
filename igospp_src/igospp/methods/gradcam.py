"""Grad-CAM (Selvaraju et al. 2017) through pytorch-grad-cam, at the layer's resolution."""

from __future__ import annotations

import torch

from igospp._optional import require
from igospp.checks import untouched
from igospp.methods.base import prepare
from igospp.targets import Target

__all__ = ["GradCAM", "gradcam_layer"]


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
    normalized per image by pytorch-grad-cam, **not** upsampled: ``(B, 1, 7, 7)`` for ResNet50
    and EfficientNet-Lite0. Class targets score the logit (Grad-CAM's definition).

    Example:
        >>> import torch, igospp
        >>> bundle = igospp.load_model("efficientnet_lite0", device="cpu")
        >>> x = bundle.preprocess(igospp.sample_images(["coffee"])["coffee"])
        >>> igospp.methods.GradCAM()(bundle.model, x).shape
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
        """Maps ``(B, 1, h, w)`` at the layer's resolution for ``target`` (as in :func:`igospp.explain`).

        pytorch-grad-cam switches the model to eval mode and writes the ``.grad`` of its trainable
        parameters; both are undone on return (:func:`igospp.checks.untouched`), so a model being
        trained keeps its mode and its accumulated gradients.
        """
        _GradCAM = require("pytorch_grad_cam", "methods", "Grad-CAM").GradCAM
        ClassifierOutputTarget = require("pytorch_grad_cam.utils.model_targets", "methods",
                                         "Grad-CAM").ClassifierOutputTarget

        class _AtLayerResolution(_GradCAM):
            def get_target_width_height(self, input_tensor):
                act = self.activations_and_grads.activations[0]
                return act.shape[-1], act.shape[-2]

        with untouched(model), torch.inference_mode(False), torch.enable_grad():
            x, scorer, _ = prepare(model, images, target, "logit")
            targets = [ClassifierOutputTarget(int(c)) if f is None else (lambda out, f=f: f(out[None])[0])
                       for c, f in zip(scorer.classes.tolist(), scorer.functions, strict=True)]
            layer = self._layer(model)
            with _AtLayerResolution(model=model, target_layers=[layer]) as cam:
                cam.compute_input_gradient = True      # works with frozen parameters
                maps = cam(input_tensor=x, targets=targets)
        return torch.from_numpy(maps).unsqueeze(1).to(images.device, images.dtype)
