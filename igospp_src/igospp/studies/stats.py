"""Paired comparisons of two methods on the same images, and the words that state them honestly.

Two saliency methods scored on the same photos are compared through their **per-image
differences** ``d_i = a_i - b_i``: the photos vary far more than the methods, and pairing removes
that variation. :func:`paired_difference` gives the mean difference with a Student-t confidence
interval; :meth:`PairedDifference.word` turns it into "lower", "higher" or "not distinguishable"
so that a sentence claims a difference only when the interval excludes zero.

Example:
    >>> from igospp.studies.stats import paired_difference
    >>> d = paired_difference([0.30, 0.25, 0.40, 0.35], [0.20, 0.20, 0.30, 0.30])
    >>> round(d.mean, 4), d.n, d.n_positive, d.excludes_zero, d.word()
    (0.075, 4, 4, True, 'higher')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from igospp import checks

__all__ = ["PairedDifference", "mean_se", "paired_difference"]


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n); NaN for n < 2).

    Example:
        >>> from igospp.studies.stats import mean_se
        >>> mean_se([1.0, 2.0, 3.0])
        (2.0, 0.5773502691896258)
    """
    arr = _as_array(values, "values")
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else float("nan")
    return float(arr.mean()), se


@dataclass(frozen=True)
class PairedDifference:
    """The mean of ``a - b`` over paired observations, with its confidence interval.

    Attributes:
        mean: mean difference ``mean(a - b)``.
        low, high: the confidence interval of the mean difference (NaN with fewer than 2 pairs).
        n: number of pairs.
        n_positive, n_negative: pairs with ``a > b`` and with ``a < b``.
        confidence: the interval's coverage, e.g. 0.95.
        method: how the interval was computed (``"t"``: Student-t on the differences).
    """

    mean: float
    low: float
    high: float
    n: int
    n_positive: int
    n_negative: int
    confidence: float
    method: str = "t"

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of zero (a difference worth stating)."""
        return not (math.isnan(self.low) or math.isnan(self.high)) and (self.low > 0 or self.high < 0)

    def word(self, positive: str = "higher", negative: str = "lower", neither: str = "not distinguishable") -> str:
        """``positive`` when the interval is above zero, ``negative`` when below, else ``neither``.

        Example:
            >>> from igospp.studies.stats import paired_difference
            >>> paired_difference([1.0, 2.0], [1.5, 1.0]).word()
            'not distinguishable'
        """
        if not self.excludes_zero:
            return neither
        return positive if self.mean > 0 else negative

    def interval(self, digits: int = 3) -> str:
        """The interval as text, e.g. ``"[0.012, 0.054]"``."""
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedDifference:
    """Mean of ``a - b`` over pairs with a Student-t confidence interval.

    The interval is ``mean ± t_{(1+confidence)/2, n-1} · sd(a - b) / sqrt(n)``, exact when the
    differences are normal and a good approximation from about ten pairs on; with very few pairs it
    is wide, as it should be.

    Args:
        a, b: ``(n,)`` the two methods' values on the same ``n`` items, in the same order.
        confidence: coverage of the interval, in (0, 1); default 0.95.

    Returns:
        A :class:`PairedDifference`.

    Raises:
        ValueError: when ``a`` and ``b`` differ in length, are empty or hold NaN, or when
            ``confidence`` is not in (0, 1).

    Example:
        >>> from igospp.studies.stats import paired_difference
        >>> d = paired_difference([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])   # differences 1, 2, 3
        >>> round(d.mean, 3), round(d.low, 3), round(d.high, 3)        # 2 ± 4.303 / sqrt(3)
        (2.0, -0.484, 4.484)
    """
    from scipy.stats import t as student_t

    confidence = checks.probability("confidence", confidence)
    x, y = _as_array(a, "a"), _as_array(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair up: got {x.size} and {y.size} values. Pass the two methods' values "
                         "on the same items, in the same order.")
    d = x - y
    n, mean = d.size, float(d.mean())
    if n < 2:
        low = high = float("nan")
    else:
        half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedDifference(mean=mean, low=low, high=high, n=n, n_positive=int((d > 0).sum()),
                            n_negative=int((d < 0).sum()), confidence=float(confidence))


def _as_array(values: Sequence[float], name: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers: {exc}") from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one value.")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; drop or fix those items before comparing.")
    return arr
