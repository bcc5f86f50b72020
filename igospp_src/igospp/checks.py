"""Argument checks, in one place: each names the argument, says what was wrong and returns the clean value.

Every public entry point of the library checks its arguments with these functions, so a bad
value fails early with the same kind of message everywhere:

>>> from igospp import checks
>>> checks.positive_int("batch_size", 8)
8
>>> checks.positive_int("batch_size", 0)
Traceback (most recent call last):
...
ValueError: batch_size must be a positive integer, got 0.
>>> checks.number("sigma", 0.5, low=0.0, strict=True)
0.5
>>> checks.choice("score", "prob", ("softmax", "logit"))
Traceback (most recent call last):
...
ValueError: score must be one of ('softmax', 'logit'), got 'prob'.

It also holds :func:`untouched`, the guard under which every entry point that runs the caller's
model leaves that model as it found it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Collection, Iterator
from typing import Any

import torch

__all__ = ["integer", "positive_int", "number", "choice", "flag", "probability", "seed", "SEED_RANGE", "untouched"]

#: The seeds ``torch.Generator.manual_seed`` accepts: ``[-(2**63), 2**64 - 1]`` (a negative seed is
#: taken modulo ``2**64``).
SEED_RANGE: tuple[int, int] = (-(2**63), 2**64 - 1)


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not ``bool``) in ``[low, high]``.

    Args:
        name: the argument's name, as the caller spells it (e.g. ``"Config.iterations"``).
        value: the value to check.
        low: smallest allowed value, or ``None`` for no bound. Default ``None``.
        high: largest allowed value, or ``None`` for no bound. Default ``None``.

    Raises:
        ValueError: naming ``name``, the bound and the value.

    >>> integer("shard", 3, low=0, high=3)
    3
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok:
        value = int(value)
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        if low == 1 and high is None:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        bound = "" if low is None else f" >= {low}"
        if high is not None:
            bound += (" and" if bound else "") + f" <= {high}"
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}.")
    return value


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is an integer of at least 1 (shorthand for :func:`integer` with ``low=1``).

    >>> positive_int("iterations", 20)
    20
    """
    return integer(name, value, low=1)


def number(name: str, value: Any, *, low: float = -math.inf, strict: bool = False,
           high: float | None = None, high_strict: bool = True) -> float:
    """``value`` as a ``float`` if it is a finite real number above ``low`` (and below ``high``).

    Args:
        name: the argument's name.
        value: the value to check (``bool`` is refused).
        low: lower bound. Default ``-inf``.
        strict: ``True``: ``value > low``; ``False`` (default): ``value >= low``.
        high: upper bound, or ``None`` (default) for none.
        high_strict: ``True`` (default): ``value < high``; ``False``: ``value <= high``.

    >>> number("l2", 20, low=0.0)
    20.0
    >>> number("fraction", 1, low=0.0, strict=True, high=1.0, high_strict=False)
    1.0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if strict else value >= low
        if ok and high is not None:
            ok = value < high if high_strict else value <= high
    if not ok:
        bound = "" if low == -math.inf else (f" > {low}" if strict else f" >= {low}")
        if high is not None:
            bound += (" and" if bound else "") + (f" < {high}" if high_strict else f" <= {high}")
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}.")
    return float(value)


def probability(name: str, value: Any) -> float:
    """``value`` as a ``float`` strictly between 0 and 1.

    >>> probability("confidence", 0.95)
    0.95
    """
    return number(name, value, low=0.0, strict=True, high=1.0)


def choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    >>> choice("smoothness", "btv", ("tv", "btv"))
    'btv'
    """
    if value not in choices:
        shown = tuple(choices) if not isinstance(choices, tuple) else choices
        raise ValueError(f"{name} must be one of {shown}, got {value!r}.")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``.

    >>> flag("line_search", True)
    True
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return value


def seed(name: str, value: Any) -> int:
    """``value`` as an ``int`` if ``torch.Generator.manual_seed`` accepts it (see :data:`SEED_RANGE`).

    Args:
        name: the argument's name (e.g. ``"Config.seed"``).
        value: the seed: a Python or NumPy integer (not ``bool``) in ``[-(2**63), 2**64 - 1]``.

    Raises:
        ValueError: naming ``name``, the range and the value.

    >>> seed("Config.seed", 2**64 - 1)
    18446744073709551615
    >>> seed("Config.seed", 2**70)
    Traceback (most recent call last):
    ...
    ValueError: Config.seed must be an integer from -(2**63) to 2**64 - 1 (what torch.Generator.manual_seed ...
    """
    low, high = SEED_RANGE
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and low <= int(value) <= high
    if not ok:
        raise ValueError(f"{name} must be an integer from -(2**63) to 2**64 - 1 (what torch.Generator.manual_seed "
                         f"accepts), got {value!r}.")
    return int(value)


#: The buffers through which a normalization layer in training mode remembers the batches it saw.
_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def untouched(model: object) -> Iterator[None]:
    """Run the block, then put ``model``'s mutable state back as it was (also when the block raises).

    A model in training mode updates the running statistics of its batch norms on every forward
    pass, and a backward pass (Grad-CAM's, through pytorch-grad-cam) writes the ``.grad`` of its
    trainable parameters and switches the model to eval mode. Under this guard none of this
    outlives the call: on exit, every module's ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` buffer holds its values from before (the same tensor objects,
    bit-identical), every parameter's ``.grad`` is again ``None`` or the same tensor with its
    old values, and every module's ``training`` flag is restored.

    Args:
        model: the caller's model. Anything that is not a ``torch.nn.Module`` (a plain function)
            has no such state, and the guard does nothing.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
        >>> before = net[1].running_mean.clone()
        >>> with untouched(net):
        ...     net(torch.randn(4, 2)).sum().backward()
        >>> torch.equal(net[1].running_mean, before), net[0].weight.grad is None, net.training
        (True, True, True)
    """
    if not isinstance(model, torch.nn.Module):
        yield
        return
    modules = list(model.modules())
    modes = [(m, m.training) for m in modules]
    with torch.no_grad():
        buffers = [(m, name, m._buffers[name], m._buffers[name].clone()) for m in modules for name in _NORM_BUFFERS
                   if isinstance(m._buffers.get(name), torch.Tensor)]
        grads = [(p, p.grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()]
    try:
        yield
    finally:
        # In place inside inference mode: allowed on normal tensors and on inference tensors alike.
        with torch.inference_mode():
            for m, name, tensor, saved in buffers:
                tensor.copy_(saved)
                m._buffers[name] = tensor
            for p, grad, saved in grads:
                if grad is not None:
                    grad.copy_(saved)
                p.grad = grad
        for m, training in modes:
            m.training = training
