"""Adversarial examples for the paper's Fig. 4: MI-FGSM (Dong et al., 2018).

The momentum iterative fast gradient sign method takes ``steps`` signed-gradient steps of
size ``epsilon / steps``, each along an accumulated, L1-normalized gradient (momentum
``decay``), and keeps the image within ``epsilon`` of the original in the L-infinity norm and
inside the valid range. Targeted (the paper targets "Persian cat"), it descends the
cross-entropy of the target class; untargeted, it ascends that of the true class.

Budgets are usually stated in pixel units (e.g. 16/255) while models take normalized
inputs: :func:`normalized_budget` converts a pixel budget and the [0, 1] range into the
model's units for a given mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from igospp import checks
from igospp.inputs import check_images, model_device
from igospp.targets import forward_clean

__all__ = ["mi_fgsm", "normalized_budget"]

Bound = float | torch.Tensor


def normalized_budget(epsilon: float, mean: Sequence[float], std: Sequence[float]
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A pixel-unit budget and the pixel range [0, 1] in the units of ``(x - mean) / std``.

    Returns:
        ``(epsilon, low, high)``, each of shape (C, 1, 1), for :func:`mi_fgsm`.

    Example:
        >>> import igospp.studies.attacks as attacks
        >>> eps, low, high = attacks.normalized_budget(0.1, [0.5], [0.25])
        >>> eps.flatten().tolist(), low.flatten().tolist(), high.flatten().tolist()
        ([0.4000000059604645], [-2.0], [2.0])
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    if mean_t.shape != std_t.shape or (std_t <= 0).any():
        raise ValueError("mean and std must have one entry per channel, and std must be positive.")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon!r}.")
    return epsilon / std_t, (0 - mean_t) / std_t, (1 - mean_t) / std_t


def _as_bound(value: Bound | None, name: str, x: torch.Tensor) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    try:
        torch.broadcast_shapes(t.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the images {tuple(x.shape)}; "
                         "give a number or a (C, 1, 1) tensor.") from None
    return t


def mi_fgsm(model: torch.nn.Module, images: torch.Tensor, target: int | Sequence[int] | torch.Tensor, *,
            targeted: bool = True, epsilon: Bound = 16 / 255, steps: int = 10, decay: float = 1.0,
            low: Bound | None = None, high: Bound | None = None) -> torch.Tensor:
    """Momentum iterative FGSM.

    Args:
        model: the classifier to attack, mapping (B, C, H, W) to (B, K) logits (eval mode).
        images: (B, C, H, W) clean inputs, in the model's units.
        target: the class (int, or one per image). With ``targeted=True`` the class to reach,
            otherwise the true class to move away from.
        targeted: targeted (default, as in the paper) or untargeted attack.
        epsilon: L-infinity budget in the model's units; a number or a (C, 1, 1) tensor (see
            :func:`normalized_budget`). Default 16/255, for inputs in [0, 1].
        steps: iterations; each moves every pixel by ``epsilon / steps``.
        decay: momentum factor mu (1.0 in Dong et al.).
        low, high: valid input range (numbers or (C, 1, 1) tensors); ``None``: unbounded.

    Returns:
        The adversarial images (B, C, H, W), detached, on the images' device.

    Example:
        >>> import torch, igospp.studies.attacks as attacks
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
        >>> x = torch.rand(2, 3, 2, 2)
        >>> adv = attacks.mi_fgsm(model, x, 2, epsilon=0.5, low=0.0, high=1.0)
        >>> bool((adv - x).abs().max() <= 0.5 + 1e-6), model(adv).argmax(1).tolist()
        (True, [2, 2])
    """
    images = check_images(images)
    steps = checks.positive_int("steps", steps)
    decay = checks.number("decay", decay, low=0.0)
    device, dtype = model_device(model, images)
    x0 = images.detach().to(device, dtype)
    with torch.no_grad():
        num_classes = forward_clean(model, x0).shape[1]
    classes = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if classes.numel() == 1:
        classes = classes.expand(x0.shape[0])
    if classes.numel() != x0.shape[0]:
        raise ValueError(f"target has {classes.numel()} entries but there are {x0.shape[0]} images.")
    if ((classes < 0) | (classes >= num_classes)).any():
        raise ValueError(f"target classes must be in [0, {num_classes}), got {classes.tolist()}.")
    eps = _as_bound(epsilon, "epsilon", x0)
    if eps is None or not (eps > 0).all():
        raise ValueError(f"epsilon must be positive, got {epsilon!r}.")
    lo, hi = _as_bound(low, "low", x0), _as_bound(high, "high", x0)
    alpha = eps / steps
    sign = -1.0 if targeted else 1.0
    momentum = torch.zeros_like(x0)
    x = x0.clone()
    with torch.inference_mode(False), torch.enable_grad():
        for _ in range(steps):
            x.requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(x), classes, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
            momentum = decay * momentum + grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
            with torch.no_grad():
                x = x.detach() + sign * alpha * momentum.sign()
                x = torch.min(torch.max(x, x0 - eps), x0 + eps)
                if lo is not None:
                    x = torch.max(x, lo)
                if hi is not None:
                    x = torch.min(x, hi)
    return x.detach().to(images.device, images.dtype)
