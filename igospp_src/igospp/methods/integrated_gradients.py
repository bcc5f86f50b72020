"""Integrated Gradients (Sundararajan et al. 2017) through Captum, channel-summed."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from igospp import checks
from igospp._optional import require
from igospp.checks import untouched
from igospp.config import resolve_batch_size
from igospp.inputs import BaselineLike, resolve_baseline
from igospp.methods.base import prepare
from igospp.models import IMAGENET_MEAN, IMAGENET_STD
from igospp.targets import Target

__all__ = ["IntegratedGrad"]


class IntegratedGrad:
    """Integrated Gradients (Sundararajan et al. 2017) through Captum, channel-summed.

    Args:
        baseline: ``"blur"`` (default; the blur of :func:`igospp.blur_baseline`, as the
            optimization methods use), ``"black"`` (black pixels in normalized units, from
            ``mean``/``std``), or anything :func:`igospp.explain` accepts as a baseline.
        steps: Riemann steps of Captum's path integral. Default 50.
        attribution: ``"abs"`` (default): the sum over channels of ``|attribution|``;
            ``"positive"``: the positive part of the channel sum.
        score: ``"logit"`` (default) or ``"softmax"``: what is attributed for class targets.
        mean, std: the model's normalization (for ``"black"``). Default ImageNet's.
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
        self.baseline = baseline
        self.steps = checks.positive_int("IntegratedGrad.steps", steps)
        self.attribution = checks.choice("IntegratedGrad.attribution", attribution, ("abs", "positive"))
        self.score = checks.choice("IntegratedGrad.score", score, ("logit", "softmax"))
        self.mean, self.std = tuple(mean), tuple(std)
        self.batch_size = None if batch_size is None else checks.positive_int("IntegratedGrad.batch_size", batch_size)
        self.accelerate = checks.flag("IntegratedGrad.accelerate", accelerate)

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        if self.baseline == "blur":
            return resolve_baseline(None, x)
        if self.baseline == "black":
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            return ((0 - mean) / std).expand_as(x).contiguous()
        return resolve_baseline(self.baseline, x)

    def __call__(self, model: torch.nn.Module, images: torch.Tensor, target: Target = None) -> torch.Tensor:
        """Attribution maps ``(B, 1, H, W)`` of ``images`` ``(B, C, H, W)`` for ``target`` (see :func:`igospp.explain`).

        ``model`` is left as it was found (:func:`igospp.checks.untouched`).
        """
        IntegratedGradients = require("captum.attr", "methods", "Integrated Gradients").IntegratedGradients

        with untouched(model), torch.inference_mode(False), torch.enable_grad():
            x, scorer, run = prepare(model, images, target, self.score, fast=self.accelerate)
            base = self._baseline(x)
            chunk = resolve_batch_size(self.batch_size, x.device)
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
