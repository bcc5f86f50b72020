"""Checks of user input, raised early with a message that names the argument and the fix."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from igospp.blur import blur_baseline
from igospp.config import Config

__all__ = ["BaselineLike", "TrainingModeWarning", "check_images", "model_device", "resolve_baseline",
           "check_resolution", "warn_if_training"]

BaselineLike = None | float | int | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


class TrainingModeWarning(UserWarning):
    """The model is in training mode: dropout makes its scores random, batch statistics make them batch-dependent."""


def _check_finite(name: str, tensor: torch.Tensor) -> None:
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); clean or re-normalize it first.")


def check_images(images: object) -> torch.Tensor:
    """``images`` must be a finite floating ``(B, C, H, W)`` tensor with ``B >= 1``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}. "
                        "Use a model bundle's preprocess() to turn PIL images or arrays into a batch.")
    if images.dim() != 4:
        hint = " For a single image use images.unsqueeze(0)." if images.dim() == 3 else ""
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}.{hint}")
    if images.shape[0] < 1 or images.shape[1] < 1 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"images must be non-empty, got shape {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor (normalized as the model expects), "
                        f"got dtype {images.dtype}.")
    _check_finite("images", images)
    return images


def model_device(model: Callable[..., torch.Tensor], fallback: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter or buffer, else of ``fallback``."""
    if isinstance(model, torch.nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
    return fallback.device, fallback.dtype


_DROPOUT = torch.nn.modules.dropout._DropoutNd
_NORMS = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.instancenorm._InstanceNorm)


def _differs_in_training(module: torch.nn.Module) -> bool:
    """Whether ``module`` computes something else in training mode than in eval mode."""
    if isinstance(module, _DROPOUT):
        return True
    # a norm layer without running statistics uses the batch's statistics in both modes
    return isinstance(module, _NORMS) and bool(module.track_running_stats)


def warn_if_training(model: object) -> None:
    """Warn when a dropout or batch/instance-norm layer of ``model`` is in training mode.

    Norm layers in training mode normalize with the statistics of each batch, so the scores
    depend on the batch and differ from eval mode; the library puts their running statistics
    back after the explanation, but the explanation itself is of another function.

    Args:
        model: the classifier; anything but an ``nn.Module`` is not checked.

    Example:
        >>> import warnings
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4)).train()
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_training(model)
        >>> print(caught[0].message)                                     # doctest: +ELLIPSIS
        the model is in training mode (1): its normalization layers use the statistics of each batch during ...
    """
    if not isinstance(model, torch.nn.Module):
        return
    active = [(name or type(m).__name__, m) for name, m in model.named_modules()
              if m.training and _differs_in_training(m)]
    if not active:
        return
    shown = ", ".join(name for name, _ in active[:3]) + (", ..." if len(active) > 3 else "")
    effects = []
    if any(isinstance(m, _NORMS) for _, m in active):
        effects.append("its normalization layers use the statistics of each batch during the explanation, so the "
                       "scores depend on the batch and differ from eval mode (the library restores the layers' "
                       "running statistics afterwards)")
    if any(isinstance(m, _DROPOUT) for _, m in active):
        effects.append("dropout makes its scores random")
    warnings.warn(
        f"the model is in training mode ({shown}): {'; '.join(effects)}. This breaks the line search and the "
        "explanation is not of the model you deploy: call model.eval() first.",
        TrainingModeWarning,
        stacklevel=3,
    )


def check_resolution(config: Config, height: int, width: int) -> None:
    """Refuse a mask grid finer than the image.

    Args:
        config: the configuration, whose ``mask_size`` is ``(h, w)`` cells.
        height, width: the image's size in pixels.

    Raises:
        ValueError: naming ``Config.resolution`` and the largest grid the image allows.

    Example:
        >>> check_resolution(Config(resolution=7), 224, 224)
    """
    h, w = config.mask_size
    if h > height or w > width:
        raise ValueError(f"Config.resolution {config.resolution!r} is larger than the image ({height} x {width}); "
                         f"choose at most {height} x {width} cells.")


def resolve_baseline(baseline: BaselineLike, images: torch.Tensor, config: Config | None = None) -> torch.Tensor:
    """Turn the ``baseline`` argument into a ``(B, C, H, W)`` tensor like ``images``.

    ``None``: the blur of :func:`igospp.blur_baseline` with the config's kernel (default
    :class:`Config`'s); a number: a
    constant image (in normalized units); a tensor of the images' shape, or ``(C, H, W)`` /
    ``(1, C, H, W)`` shared by all images; a callable ``f(images) -> tensor`` of the images' shape.
    """
    if baseline is None:
        config = config or Config()
        out = blur_baseline(images, config.blur_kernel_size, config.blur_sigma, config.blur_reference_size)
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        out = torch.full_like(images, float(baseline))
    elif isinstance(baseline, torch.Tensor):
        out = baseline.to(device=images.device, dtype=images.dtype)
        if out.dim() == 3:
            out = out.unsqueeze(0)
        if out.dim() == 4 and out.shape[0] == 1 and images.shape[0] > 1 and out.shape[1:] == images.shape[1:]:
            out = out.expand_as(images)
        if out.shape != images.shape:
            raise ValueError(f"baseline has shape {tuple(baseline.shape)} but images have shape "
                             f"{tuple(images.shape)}; give one baseline per image (same shape), or one "
                             f"(C, H, W) baseline for all.")
    elif callable(baseline):
        out = baseline(images)
        if not isinstance(out, torch.Tensor) or out.shape != images.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the baseline callable must return a tensor shaped like the images "
                             f"{tuple(images.shape)}; it returned {got}.")
        out = out.to(device=images.device, dtype=images.dtype)
    else:
        raise TypeError(f"baseline must be None (blur), a number, a tensor or a callable; "
                        f"got {type(baseline).__name__}.")
    _check_finite("baseline", out)
    return out.detach().contiguous()
