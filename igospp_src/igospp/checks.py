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
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any

__all__ = ["integer", "positive_int", "number", "choice", "flag", "probability"]


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
