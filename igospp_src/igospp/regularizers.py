r"""The regularizer :math:`g(M) = \lambda_1 \|1 - M\|_1 + \lambda_2\,\mathrm{TV}(M)` (eq. 1) and bilateral TV (eq. 7).

Conventions of the authors' code, kept here:

* every term is a **mean** (over cells or neighbour pairs), not a sum, so the weights
  carry over between resolutions only approximately;
* TV uses forward differences at mask resolution with exponent ``beta`` (2) and no 1/2;
* BTV is ``0.5 * (TV at mask resolution + bilateral TV of the upsampled mask)``: the
  supplementary material's "BTV and TV ... averaged";
* at ``M = 1`` every term has an exact zero gradient (PyTorch's ``abs`` has gradient 0
  at 0), so the first step of every method is the pure integrated gradient.
"""

from __future__ import annotations

import torch

from igospp.composition import upsample

__all__ = ["l1_term", "tv", "bilateral_tv", "image_weights", "regularizer"]


def l1_term(mask: torch.Tensor) -> torch.Tensor:
    r"""Per-image :math:`\mathrm{mean}\,|1 - M|` over the mask cells.

    Args:
        mask: ``(B, 1, h, w)``.

    Returns:
        ``(B,)``. Its gradient is ``-1/(h w)`` per cell below 1 and exactly 0 at 1.

    Example:
        >>> import torch, igospp
        >>> igospp.l1_term(torch.tensor([[[[1.0, 0.5], [0.0, 1.0]]]]))
        tensor([0.3750])
    """
    return (1 - mask).abs().flatten(1).mean(dim=1)


def _pair_mean(diff: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dimension; 0 when there are no neighbour pairs."""
    if diff.numel() == 0:
        return diff.new_zeros(diff.shape[0])
    return diff.flatten(1).mean(dim=1)


def tv(mask: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    r"""Total variation at mask resolution, as in the authors' ``tv_norm``.

    .. math::

        \mathrm{TV}(M) = \mathrm{mean}_{i,j} |M_{i,j} - M_{i+1,j}|^\beta
                       + \mathrm{mean}_{i,j} |M_{i,j} - M_{i,j+1}|^\beta

    Args:
        mask: ``(B, 1, h, w)``.
        beta: exponent. Default 2.

    Returns:
        ``(B,)``. 0 for a constant mask; a single interior 0 in a mask of ones gives
        ``4 / (s (s - 1))`` on an ``s x s`` grid. A direction with no neighbour pairs
        (``h = 1`` or ``w = 1``) contributes 0.

    Example:
        >>> import torch, igospp
        >>> m = torch.ones(1, 1, 5, 5); m[0, 0, 2, 2] = 0
        >>> igospp.tv(m)          # 4 / (5 * 4)
        tensor([0.2000])
    """
    vertical = (mask[..., :-1, :] - mask[..., 1:, :]).abs().pow(beta)
    horizontal = (mask[..., :, :-1] - mask[..., :, 1:]).abs().pow(beta)
    return _pair_mean(vertical) + _pair_mean(horizontal)


def image_weights(image: torch.Tensor, sigma: float = 0.01,
                  form: str = "official") -> tuple[torch.Tensor, torch.Tensor]:
    r"""Bilateral weights of vertical and horizontal neighbour pairs of ``image``.

    ``"official"`` (the authors' code; the two directions differ):

    * vertical: :math:`w = \exp(-(\mathrm{mean}_c\,\Delta I_c)^2 / \sigma)`, the channel
      mean of the signed difference, squared;
    * horizontal: :math:`w = \mathrm{mean}_c \exp(-(\Delta I_c)^2 / \sigma)`, per channel,
      then averaged.

    ``"symmetric"`` (eq. 7 of the paper, one color distance for both directions):
    :math:`w = \exp(-\mathrm{mean}_c (\Delta I_c)^2 / \sigma)`. It equals the official
    vertical weight on grey edges, so one ``sigma`` means the same in both forms.

    ``sigma`` divides the squared difference directly (the code's convention; the paper
    writes :math:`\sigma^2`).

    Args:
        image: ``(B, C, H, W)`` the (normalized) image.
        sigma: > 0. Default 0.01.
        form: ``"official"`` or ``"symmetric"``.

    Returns:
        ``(w_vertical (B, 1, H-1, W), w_horizontal (B, 1, H, W-1))``.

    Example:
        >>> import torch, igospp
        >>> image = torch.zeros(1, 3, 1, 3); image[..., 2] = 0.05   # a faint edge between columns 1 and 2
        >>> igospp.image_weights(image)[1]                          # exp(-0.05^2 / 0.01): 1 on flat, 0.78 on the edge
        tensor([[[[1.0000, 0.7788]]]])
    """
    dv = image[..., :-1, :] - image[..., 1:, :]
    dh = image[..., :, :-1] - image[..., :, 1:]
    if form == "official":
        wv = torch.exp(-dv.mean(dim=1, keepdim=True).pow(2) / sigma)
        wh = torch.exp(-dh.pow(2) / sigma).mean(dim=1, keepdim=True)
    elif form == "symmetric":
        wv = torch.exp(-dv.pow(2).mean(dim=1, keepdim=True) / sigma)
        wh = torch.exp(-dh.pow(2).mean(dim=1, keepdim=True) / sigma)
    else:
        raise ValueError(f"form must be 'official' or 'symmetric', got {form!r}.")
    return wv, wh


def bilateral_tv(image: torch.Tensor, mask: torch.Tensor, beta: float = 2.0, sigma: float = 0.01,
                 form: str = "official") -> torch.Tensor:
    r"""Bilateral total variation (eq. 7), averaged with the plain TV as the authors' code does.

    .. math::

        \mathrm{BTV}(M) = \tfrac12\Big(\mathrm{TV}(M) + \sum_{d \in \{v, h\}}
            \mathrm{mean}_u\, w_d(u)\, |\nabla_d\, \mathrm{Up}(M)(u)|^\beta\Big)

    where ``Up`` upsamples the mask to the image size and ``w_d`` are the
    :func:`image_weights`: mask changes across image edges cost almost nothing, changes
    inside a region of one color cost the full TV.

    Args:
        image: ``(B, C, H, W)`` normalized image (its forward differences give the weights).
        mask: ``(B, 1, h, w)`` mask at any resolution.
        beta: exponent. Default 2.
        sigma: bilateral width. Default 0.01.
        form: ``"official"`` (default) or ``"symmetric"``, see :func:`image_weights`.

    Returns:
        ``(B,)``.

    Example:
        >>> import torch, igospp
        >>> image = torch.zeros(1, 3, 8, 8); image[..., 4:] = 1.0   # an edge between columns 3 and 4
        >>> on_edge = torch.ones(1, 1, 8, 8); on_edge[..., 4:] = 0.0   # the mask jumps on that edge
        >>> inside = torch.ones(1, 1, 8, 8); inside[..., 2:] = 0.0     # the same jump in a flat region
        >>> igospp.tv(on_edge), igospp.tv(inside)
        (tensor([0.1429]), tensor([0.1429]))
        >>> igospp.bilateral_tv(image, on_edge), igospp.bilateral_tv(image, inside)
        (tensor([0.0714]), tensor([0.1429]))
    """
    u = upsample(mask, tuple(image.shape[-2:]))
    wv, wh = image_weights(image, sigma, form)
    bil_v = _pair_mean(wv * (u[..., :-1, :] - u[..., 1:, :]).abs().pow(beta))
    bil_h = _pair_mean(wh * (u[..., :, :-1] - u[..., :, 1:]).abs().pow(beta))
    return 0.5 * (tv(mask, beta) + bil_v + bil_h)


def regularizer(image: torch.Tensor, mask: torch.Tensor, *, l1: float, l2: float, smoothness: str = "btv",
                beta: float = 2.0, sigma: float = 0.01, form: str = "official") -> torch.Tensor:
    r"""Per-image :math:`g(M) = \lambda_1\,\mathrm{mean}|1-M| + \lambda_2\,S(M)`, ``S`` = TV or BTV.

    Args:
        image: ``(B, C, H, W)`` normalized image (used by BTV only).
        mask: ``(B, 1, h, w)``.
        l1, l2: the weights :math:`\lambda_1, \lambda_2`.
        smoothness: ``"tv"`` or ``"btv"``.
        beta, sigma, form: see :func:`tv` and :func:`bilateral_tv`.

    Returns:
        ``(B,)``.

    Example:
        >>> import torch, igospp
        >>> m = torch.ones(1, 1, 5, 5); m[0, 0, 2, 2] = 0.0
        >>> igospp.regularizer(torch.zeros(1, 3, 5, 5), m, l1=1.0, l2=20.0, smoothness="tv")   # 1/25 + 20 * 4/20
        tensor([4.0400])
    """
    smooth = bilateral_tv(image, mask, beta, sigma, form) if smoothness == "btv" else tv(mask, beta)
    return l1 * l1_term(mask) + l2 * smooth
