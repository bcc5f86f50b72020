"""Where a map puts its mass: the top fraction of its pixels (the paper's "pixel ratio" of Figs. 5 and 11)."""

from __future__ import annotations

import torch

from igospp import checks

__all__ = ["top_fraction"]


def top_fraction(saliency: torch.Tensor, fraction: float) -> torch.Tensor:
    """The ``fraction`` of pixels with the highest saliency, per image, as a {0, 1} mask (the paper's "pixel ratio").

    Figs. 11 and 5 of the paper insert the top 6 % of the iGOS++ pixels into the blurred baseline
    (``igospp.phi(baseline, image, 1 - keep)``) and delete the top 12 %. Exactly
    ``round(fraction * H * W)`` pixels are selected; ties are broken by position.

    Args:
        saliency: (B, 1, H, W) maps (higher = more salient).
        fraction: share of pixels, in (0, 1].

    Returns:
        (B, 1, H, W) float mask, 1 on the selected pixels.

    Example:
        >>> import torch
        >>> from igospp.metrics import top_fraction
        >>> top_fraction(torch.tensor([[[[0.1, 0.9], [0.5, 0.2]]]]), 0.5).tolist()
        [[[[0.0, 1.0], [1.0, 0.0]]]]
    """
    if not isinstance(saliency, torch.Tensor) or saliency.dim() != 4 or saliency.shape[1] != 1:
        shape = tuple(saliency.shape) if isinstance(saliency, torch.Tensor) else type(saliency).__name__
        raise ValueError(f"saliency must be a (B, 1, H, W) tensor, got {shape}.")
    fraction = checks.number("fraction", fraction, low=0.0, strict=True, high=1.0, high_strict=False)
    flat = saliency.flatten(1)
    k = max(1, round(fraction * flat.shape[1]))
    keep = torch.zeros_like(flat)
    keep.scatter_(1, flat.topk(k, dim=1).indices, 1.0)
    return keep.view_as(saliency)
