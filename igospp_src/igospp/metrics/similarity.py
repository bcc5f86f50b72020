"""How alike two saliency maps are, per image: Spearman rank correlation and SSIM.

The sanity checks (:mod:`igospp.studies.sanity`) compare the maps of a trained model with those
of randomized copies by these two measures, on maps min-max normalized to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["rank_correlation", "ssim"]


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 1:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be saliency maps of shape (B, 1, h, w), got {shape}.")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}; "
                         "upsample the coarser map first (igospp.upsample).")
    return a.detach().double().cpu(), b.detach().double().cpu()


def rank_correlation(a: torch.Tensor, b: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps, (B,), ties given their average rank.

    Args:
        a, b: saliency maps (B, 1, h, w) of the same shape.
        absolute: compare absolute values (for signed attributions).

    Returns:
        (B,) float64; NaN where a map is constant (its ranking is undefined).

    Example:
        >>> import torch
        >>> from igospp.metrics import rank_correlation, ssim
        >>> a = torch.arange(16.).reshape(1, 1, 4, 4)
        >>> rank_correlation(a, a ** 2).item(), rank_correlation(a, -a).item()
        (1.0, -1.0)
    """
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    out = torch.full((a.shape[0],), float("nan"), dtype=torch.float64)
    for i in range(a.shape[0]):
        x, y = a[i].flatten().numpy(), b[i].flatten().numpy()
        if absolute:
            x, y = np.abs(x), np.abs(y)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        out[i] = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    return out


def _normalize(t: torch.Tensor) -> torch.Tensor:
    lo = t.amin(dim=(1, 2, 3), keepdim=True)
    span = t.amax(dim=(1, 2, 3), keepdim=True) - lo
    return torch.where(span > 0, (t - lo) / span.clamp_min(1e-300), torch.zeros_like(t))


def _window_radius(sigma: float) -> int:
    """Half-width of the Gaussian SSIM window: truncated at 3.5 std, as scikit-image does."""
    return int(3.5 * sigma + 0.5)


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5, normalize: bool = True) -> torch.Tensor:
    """Structural similarity of each pair of maps, (B,), with a Gaussian window.

    The standard SSIM (Wang et al., 2004; K1 = 0.01, K2 = 0.03, data range 1) with a Gaussian
    window of std ``sigma`` truncated at 3.5 std (as scikit-image's ``gaussian_weights=True``),
    averaged over the positions where the window fits inside the map.

    Args:
        a, b: saliency maps (B, 1, h, w) of the same shape, at least 7 x 7.
        sigma: std of the window, in pixels.
        normalize: min-max normalize each map to [0, 1] first (a constant map becomes 0).

    Example:
        >>> import torch
        >>> from igospp.metrics import rank_correlation, ssim
        >>> a = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> ssim(a, a).tolist()
        [1.0, 1.0]
    """
    a, b = _pair(a, b)
    if normalize:
        a, b = _normalize(a), _normalize(b)
    radius = _window_radius(sigma)
    size = 2 * radius + 1
    if min(a.shape[-2:]) < size:
        raise ValueError(f"maps of {tuple(a.shape[-2:])} are smaller than the {size} x {size} window of "
                         f"sigma={sigma}; upsample them or use a smaller sigma.")
    g = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def filt(t: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(t, window)

    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))
