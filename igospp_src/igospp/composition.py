r"""The masking operator :math:`\Phi` and the bilinear mask upsampling.

.. math::

    \Phi(I_0, \tilde I_0, M) = I_0 \odot M + \tilde I_0 \odot (1 - M)

A mask value of 1 keeps the image, 0 replaces it with the baseline. Masks live at a
low resolution ``(h, w)`` and are upsampled bilinearly with ``align_corners=True``
(corner cells land exactly on corner pixels), as in the authors' code.
"""

from __future__ import annotations

import torch

__all__ = ["phi", "upsample"]


def _lerp_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Linear interpolation along ``dim`` to ``size`` samples, corners aligned."""
    n = x.shape[dim]
    if n == size:
        return x
    if n == 1:
        return x.expand(*x.shape[:dim], size, *x.shape[dim + 1:])
    src = torch.arange(size, dtype=torch.float64, device=x.device) * ((n - 1) / (size - 1)) if size > 1 else \
        torch.zeros(1, dtype=torch.float64, device=x.device)
    lo = src.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    shape = [1] * x.dim()
    shape[dim] = size
    frac = (src - lo).to(x.dtype).view(shape)
    a, b = x.index_select(dim, lo), x.index_select(dim, hi)
    return a + frac * (b - a)


def upsample(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of ``mask`` to ``size`` with aligned corners (``align_corners=True``).

    Equal to ``F.interpolate(mask, size, mode="bilinear", align_corners=True)`` (the authors'
    ``UpsamplingBilinear2d``) up to rounding, but written as ``a + t (b - a)`` so that
    constants and corner cells are kept **exactly**: a mask of ones upsamples to ones.

    Args:
        mask: ``(B, 1, h, w)`` mask (any number of channels works).
        size: output ``(H, W)``.

    Returns:
        ``(B, 1, H, W)``; a mask already at ``size`` is returned as is. Differentiable.

    Example:
        >>> import torch, igospp
        >>> m = torch.tensor([[[[0.0, 1.0]]]])
        >>> igospp.upsample(m, (1, 5))
        tensor([[[[0.0000, 0.2500, 0.5000, 0.7500, 1.0000]]]])
    """
    height, width = int(size[0]), int(size[1])
    return _lerp_axis(_lerp_axis(mask, height, mask.dim() - 2), width, mask.dim() - 1)


def phi(image: torch.Tensor, baseline: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""The composition :math:`\Phi(I, \tilde I, M) = I \odot M + \tilde I \odot (1 - M)`.

    Args:
        image: ``(B, C, H, W)`` the image kept where the mask is 1.
        baseline: ``(B, C, H, W)`` what shows where the mask is 0.
        mask: ``(B, 1, H, W)`` (broadcast over channels) or a low-resolution
            ``(B, 1, h, w)`` mask, upsampled first with :func:`upsample`.

    Returns:
        ``(B, C, H, W)``. ``phi(I, B, 1) == I`` and ``phi(I, B, 0) == B`` exactly. The
        insertion image of the paper is ``phi(B, I, M)``: salient cells (``M = 0``) show the
        image, the rest the baseline.

    Example:
        >>> import torch, igospp
        >>> I, B = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
        >>> igospp.phi(I, B, torch.full((1, 1, 2, 2), 0.25)).mean().item()
        0.25
    """
    mask = upsample(mask, tuple(image.shape[-2:]))
    return image * mask + baseline * (1 - mask)
