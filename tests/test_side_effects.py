"""No entry point changes the caller's model: norm statistics, parameter gradients and modes survive every call.

The model below is the worst case: in training mode (its batch norm and instance norm update their
running statistics on every forward pass), with trainable parameters that already hold gradients
(one of them ``None``), as in the middle of a training loop. After each entry point, every buffer,
every ``.grad`` and every module's ``training`` flag must be bit-identical to before.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import igospp
import igospp.methods
import igospp.metrics
from igospp.checks import untouched


class NormNet(nn.Module):
    """A seeded five-class classifier with a batch norm and an instance norm that track running statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.instance = nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
        self.head = nn.Linear(4 * 2 * 2, 5)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.instance(self.bn(self.conv(x))))
        return self.head(nn.functional.adaptive_avg_pool2d(h, 2).flatten(1))


def _training_model() -> NormNet:
    """A :class:`NormNet` in training mode after one training step: non-trivial statistics and gradients."""
    model = NormNet().train()
    batch = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    model(batch).logsumexp(dim=1).sum().backward()
    model.head.bias.grad = None               # a trainable parameter without a gradient stays without one
    return model


def _state(model: nn.Module) -> dict[str, dict[str, object]]:
    """Copies of everything a call could change: buffers, gradients, which tensor each gradient is, modes."""
    return {
        "buffers": {name: b.clone() for name, b in model.named_buffers()},
        "grads": {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()},
        "grad_ids": {name: id(p.grad) for name, p in model.named_parameters() if p.grad is not None},
        "modes": {name: m.training for name, m in model.named_modules()},
    }


def _assert_same_state(now: dict[str, dict[str, object]], before: dict[str, dict[str, object]],
                       identity: bool = True) -> None:
    assert now["modes"] == before["modes"]
    assert now["buffers"].keys() == before["buffers"].keys()
    for name, value in before["buffers"].items():
        assert torch.equal(now["buffers"][name], value), f"buffer {name} changed"
    for name, value in before["grads"].items():
        if value is None:
            assert now["grads"][name] is None, f"{name}.grad was None and was written"
        else:
            assert now["grads"][name] is not None and torch.equal(now["grads"][name], value), f"{name}.grad changed"
    if identity:
        assert now["grad_ids"] == before["grad_ids"], "a .grad tensor was replaced"


_TINY = {"resolution": 4, "iterations": 2, "ig_steps": 2, "low_score_threshold": None, "progress": False}

#: Every entry point that runs the caller's model: (id, optional package it needs, call(model, images)).
ENTRY_POINTS: list[tuple[str, str | None, Callable[[nn.Module, torch.Tensor], object]]] = [
    ("explain", None, lambda m, x: igospp.explain(m, x, config=igospp.Config.igospp(**_TINY))),
    ("explain-not-accelerated", None,
     lambda m, x: igospp.explain(m, x, config=igospp.Config.igos(accelerate=False, **_TINY))),
    ("Optimized", None,
     lambda m, x: igospp.methods.build("mask", 4, igospp.methods.MethodOptions(iterations=1))(m, x)),
    ("insertion_deletion", None, lambda m, x: igospp.metrics.insertion_deletion(
        m, x, torch.rand(x.shape[0], 1, 4, 4, generator=torch.Generator().manual_seed(2)), n_steps=4)),
    ("insertion_deletion-not-accelerated", None, lambda m, x: igospp.metrics.insertion_deletion(
        m, x, torch.rand(x.shape[0], 1, 4, 4, generator=torch.Generator().manual_seed(2)), n_steps=4,
        accelerate=False)),
    ("RISE", None, lambda m, x: igospp.methods.RISE(n_masks=6, batch_size=4)(m, x)),
    ("IntegratedGrad", "captum", lambda m, x: igospp.methods.IntegratedGrad(steps=3, batch_size=2)(m, x)),
    ("GradCAM", "pytorch_grad_cam", lambda m, x: igospp.methods.GradCAM(layer="bn")(m, x)),
    ("accelerate", None, lambda m, x: igospp.accelerate(m, x, torch.zeros(x.shape[0], 5))),
]


@pytest.mark.parametrize(("needs", "call"), [row[1:] for row in ENTRY_POINTS], ids=[row[0] for row in ENTRY_POINTS])
def test_entry_point_leaves_norm_statistics_gradients_and_modes_untouched(needs, call):
    if needs is not None:
        pytest.importorskip(needs)
    model = _training_model()
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    before = _state(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", igospp.TrainingModeWarning)   # the model is in training mode on purpose
        call(model, images)
    _assert_same_state(_state(model), before)


def test_the_model_still_trains_as_before_after_an_explanation():
    """The restored statistics are the model's own: its next training-mode pass gives the same output."""
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    reference, explained = _training_model(), _training_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", igospp.TrainingModeWarning)
        igospp.explain(explained, images, config=igospp.Config.igospp(**_TINY))
    for model in (reference, explained):
        model(images).sum().backward()       # the next training step accumulates onto the old gradients
    _assert_same_state(_state(explained), _state(reference), identity=False)


def test_untouched_restores_on_an_exception():
    model = _training_model()
    before = _state(model)
    with pytest.raises(RuntimeError, match="interrupted"), untouched(model):
        model(torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))).sum().backward()
        model.eval()
        raise RuntimeError("interrupted")
    _assert_same_state(_state(model), before)
