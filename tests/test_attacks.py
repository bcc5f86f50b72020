"""MI-FGSM: the budget is respected, one step is FGSM, the momentum is Dong et al.'s, targets are reached."""

import pytest
import torch

import igospp.studies.attacks as attacks

from .conftest import SmoothModel


def linear():
    """A seeded linear classifier, its parameters drawn as PyTorch's default U(-1/sqrt(48), 1/sqrt(48))."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((2 * torch.rand(p.shape, generator=g) - 1) / 48**0.5)
    return model


def test_one_step_without_momentum_is_targeted_fgsm():
    model, x = linear(), torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x_ = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x_), torch.tensor([1, 1]), reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_)
    expected = x - 0.03 * grad.sign()
    assert torch.allclose(attacks.mi_fgsm(model, x, 1, epsilon=0.03, steps=1, decay=0.0), expected)
    untargeted = attacks.mi_fgsm(model, x, 1, targeted=False, epsilon=0.03, steps=1, decay=0.0)
    assert torch.allclose(untargeted, x + 0.03 * grad.sign())


def test_momentum_accumulates_l1_normalised_gradients():
    model, x = SmoothModel(dtype=torch.float32), torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    eps, steps, mu = 0.2, 3, 0.7
    xs, g = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        xs.requires_grad_(True)
        (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(xs), torch.tensor([4])), xs)
        g = mu * g + grad / grad.abs().mean()
        xs = (xs.detach() - eps / steps * g.sign()).clamp(x - eps, x + eps)
    assert torch.allclose(attacks.mi_fgsm(model, x, 4, epsilon=eps, steps=steps, decay=mu), xs, atol=1e-6)


def test_budget_and_valid_range_are_respected_and_the_target_is_reached():
    model, x = linear(), torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    adv = attacks.mi_fgsm(model, x, 3, epsilon=0.4, steps=10, low=0.0, high=1.0)
    assert (adv - x).abs().max() <= 0.4 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (model(adv).argmax(1) == 3).all()
    eps, low, high = attacks.normalized_budget(16 / 255, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    adv = attacks.mi_fgsm(model, x, [0, 1, 2, 3], epsilon=eps, low=low, high=high)
    assert ((adv - x).abs() <= eps + 1e-6).all() and (adv >= low - 1e-6).all() and (adv <= high + 1e-6).all()


def test_bad_arguments_are_named():
    model, x = linear(), torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        attacks.mi_fgsm(model, x, 1, steps=0)
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 5\)"):
        attacks.mi_fgsm(model, x, 7)
    with pytest.raises(ValueError, match="target has 3 entries but there are 2 images"):
        attacks.mi_fgsm(model, x, [1, 2, 3])
    with pytest.raises(ValueError, match="epsilon must be positive"):
        attacks.mi_fgsm(model, x, 1, epsilon=0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        attacks.mi_fgsm(model, x, 1, epsilon=torch.ones(4, 1, 1))
    with pytest.raises(ValueError, match="std must be positive"):
        attacks.normalized_budget(0.1, [0.5, 0.5], [0.2, 0.0])
