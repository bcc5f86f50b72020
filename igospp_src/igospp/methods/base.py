"""What every comparison method shares: the calling convention and the optimization methods as one of them.

Every method is a callable ``method(model, images, target=None) -> saliency`` returning a
``(B, 1, h, w)`` tensor, **high = salient**, at the method's natural resolution, so the
insertion/deletion metric ranks it where the paper does. Targets follow
:func:`igospp.explain`: ``None`` (top-1 class), an int, one entry per image, or a callable on the
model output.
"""

from __future__ import annotations

import torch

from igospp.acceleration import accelerate
from igospp.config import Config
from igospp.explain import explain
from igospp.inputs import BaselineLike, check_images, model_device
from igospp.targets import Scorer, Target, forward_clean, resolve_target

__all__ = ["Optimized", "prepare"]


def prepare(model: torch.nn.Module, images: torch.Tensor, target: Target,
             score: str, fast: bool = False) -> tuple[torch.Tensor, Scorer, torch.nn.Module]:
    """Checked images on the model's device, the target's scorer, and the model to run.

    With ``fast``, that model is a streamlined copy in its fastest memory layout
    (:func:`igospp.accelerate`); otherwise it is ``model`` itself.
    """
    images = check_images(images)
    device, dtype = model_device(model, images)
    x = images.detach().to(device, dtype)
    with torch.no_grad():
        out = forward_clean(model, x)
    return x, resolve_target(target, out, score), accelerate(model, x, out, enabled=fast)


class Optimized:
    """Mask, I-GOS, iGOS++ (or any :class:`~igospp.Config`) as a comparison method.

    Returns ``1 - mask`` at the mask's resolution (what the authors' metric ranks).

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> method = igospp.methods.Optimized(igospp.Config.igos(resolution=4, iterations=1, ig_steps=2))
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
