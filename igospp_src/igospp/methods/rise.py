"""RISE (Petsiuk et al. 2018): saliency as the score-weighted average of random masks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from igospp import checks
from igospp.checks import untouched
from igospp.config import resolve_batch_size
from igospp.methods.base import prepare
from igospp.targets import Target, check_model_output

__all__ = ["RISE"]


class RISE:
    """RISE (Petsiuk et al. 2018): saliency as the score-weighted average of random masks.

    Args:
        n_masks: number of masks. Default 8000 (the paper's figures).
        cells: the random binary grid is ``cells x cells``. Default 7.
        p: probability that a cell is kept. Default 0.5.
        seed: seed of the masks (drawn on the CPU, so every device gets the same masks), an
            integer from ``-(2**63)`` to ``2**64 - 1``. Default 0.
        batch_size: masked images per model call.
        substrate: what masked-out pixels become, in normalized units. Default 0 (RISE's
            multiplication of the normalized image by the mask).
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
        >>> igospp.methods.RISE(n_masks=16)(model, torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    name = "rise"

    def __init__(self, n_masks: int = 8000, cells: int = 7, p: float = 0.5, seed: int = 0,
                 batch_size: int | None = None, substrate: float = 0.0, accelerate: bool = True) -> None:
        self.n_masks = checks.positive_int("RISE.n_masks", n_masks)
        self.cells = checks.positive_int("RISE.cells", cells)
        self.p = checks.number("RISE.p", p, low=0.0, strict=True, high=1.0, high_strict=False)
        self.seed = checks.seed("RISE.seed", seed)
        self.batch_size = None if batch_size is None else checks.positive_int("RISE.batch_size", batch_size)
        self.substrate = checks.number("RISE.substrate", substrate)
        self.accelerate = checks.flag("RISE.accelerate", accelerate)

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
        """Saliency ``(B, 1, H, W)`` of ``images`` ``(B, C, H, W)`` for ``target`` (as in :func:`igospp.explain`).

        ``model`` is left as it was found (:func:`igospp.checks.untouched`).
        """
        with untouched(model):
            return self._saliency(model, images, target)

    def _saliency(self, model: torch.nn.Module, images: torch.Tensor, target: Target) -> torch.Tensor:
        x, scorer, run = prepare(model, images, target, "softmax", fast=self.accelerate)
        batch, _, height, width = x.shape
        chunk = resolve_batch_size(self.batch_size, x.device)
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
