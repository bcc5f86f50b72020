"""The blurred baseline image: a heavy Gaussian blur of the image itself.

The authors blur the 224 x 224 photo with OpenCV's ``GaussianBlur`` (51 x 51 kernel,
sigma 50, border ``REFLECT_101``) and use the result as the optimization baseline and as
the substrate of both metrics. Here the blur runs in PyTorch on the normalized tensor
(normalization is affine per channel and the kernel sums to 1, so the order does not
matter), and kernel size and sigma scale with the image's height and width so a
112-pixel or 28-pixel image gets a blur of the same relative extent.

Two small differences from the authors' pipeline remain, both below one grey level: their
blur works on ``uint8`` pixels (rounded, up to 1/255 off a float blur) of a copy of the photo
resized with PIL's default filter (bicubic in Pillow 8), while the image itself goes through a
bilinear resize. Here the baseline is the blur of exactly the image being explained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_kernel1d", "blur_baseline", "scaled_blur_parameters"]


def gaussian_kernel1d(size: int, sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalized 1-D Gaussian taps ``exp(-(i - (size-1)/2)^2 / (2 sigma^2))``, as OpenCV builds them.

    Args:
        size: number of taps, a positive odd integer.
        sigma: standard deviation in pixels, > 0.

    Returns:
        ``(size,)`` tensor summing to 1.

    Example:
        >>> import igospp
        >>> k = igospp.gaussian_kernel1d(51, 50.0)
        >>> round((k[0] / k[25]).item(), 3)     # nearly a box filter
        0.882
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd integer, got {size}.")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).to(dtype)


def scaled_blur_parameters(height: int, width: int, kernel_size: int = 51, sigma: float = 50.0,
                           reference_size: int = 224) -> tuple[tuple[int, float], tuple[int, float]]:
    """Kernel size and sigma per axis for an image of ``height x width``.

    Both scale linearly with the side length relative to ``reference_size``; the size is
    rounded to the nearest odd integer (at least 1) and capped so the reflected border fits.

    Returns:
        ``((size_h, sigma_h), (size_w, sigma_w))``.

    Example:
        >>> import igospp
        >>> igospp.scaled_blur_parameters(224, 112)
        ((51, 50.0), (25, 25.0))
    """
    out = []
    for side in (height, width):
        scale = side / reference_size
        size = max(1, 2 * round((kernel_size * scale - 1) / 2) + 1)  # nearest odd integer
        size = min(size, 2 * side - 1)  # reflect padding needs pad < side
        out.append((size, sigma * scale))
    return out[0], out[1]


def _blur_axis(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    size = kernel.numel()
    if size == 1:
        return x
    channels = x.shape[1]
    pad = size // 2
    if dim == 2:  # vertical
        x = F.pad(x, (0, 0, pad, pad), mode="reflect")
        weight = kernel.view(1, 1, size, 1)
    else:
        x = F.pad(x, (pad, pad, 0, 0), mode="reflect")
        weight = kernel.view(1, 1, 1, size)
    return F.conv2d(x, weight.expand(channels, 1, *weight.shape[2:]), groups=channels)


def blur_baseline(images: torch.Tensor, kernel_size: int = 51, sigma: float = 50.0,
                  reference_size: int = 224) -> torch.Tensor:
    """Gaussian-blurred copy of ``images``: the default baseline of iGOS++ and I-GOS.

    Args:
        images: ``(B, C, H, W)`` images (normalized or not: the blur commutes with a
            per-channel affine normalization).
        kernel_size: kernel size at ``reference_size`` pixels, odd. Default 51 (official).
        sigma: sigma at ``reference_size`` pixels. Default 50 (official).
        reference_size: the side length at which the two values above apply; height and
            width are scaled separately (see :func:`scaled_blur_parameters`). Default 224.

    Returns:
        ``(B, C, H, W)`` blurred images, same dtype and device. Borders are reflected
        without repeating the edge pixel (OpenCV's default ``BORDER_REFLECT_101``).

    Example:
        >>> import torch, igospp
        >>> x = torch.rand(2, 3, 224, 224)
        >>> igospp.blur_baseline(x).shape
        torch.Size([2, 3, 224, 224])
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}.")
    (kh, sh), (kw, sw) = scaled_blur_parameters(images.shape[-2], images.shape[-1],
                                                kernel_size, sigma, reference_size)
    out = _blur_axis(images, gaussian_kernel1d(kh, sh, dtype=images.dtype, device=images.device), 2)
    return _blur_axis(out, gaussian_kernel1d(kw, sw, dtype=images.dtype, device=images.device), 3)
