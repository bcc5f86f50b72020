"""The numbers the paper reports, for putting reproduced results beside them.

Transcribed from the AAAI 2021 paper (main text and supplementary material); "--" cells of the
paper are absent. Keys of the comparison tables (:data:`TABLE1`, :data:`TABLE2`, :data:`TABLE3`,
:data:`TABLE6`, :data:`TABLE7`) are ``(method, resolution)`` (or the method alone) with the
method names of :data:`igospp.methods.REGISTRY`, whose display names (:func:`igospp.methods.display_name`)
label the rows; values are ``(deletion AUC, insertion AUC)`` unless said otherwise.

Example:
    >>> import igospp.studies.paper as paper
    >>> paper.TABLE1[("igospp", 28)]
    (0.0929, 0.7284)
    >>> paper.methods(paper.TABLE1)
    ['gradcam', 'ig', 'rise', 'mask', 'igos', 'igospp']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from igospp.methods import REGISTRY, display_name

__all__ = ["TABLE1", "TABLE2", "TABLE3", "TABLE5", "TABLE6", "TABLE7", "TABLE7_LAMBDAS", "TABLE_MODELS",
           "methods", "side_by_side"]

#: Table 1: ResNet50, ImageNet validation, (deletion, insertion) per method and mask resolution.
TABLE1: dict[tuple[str, int], tuple[float, float]] = {
    ("gradcam", 7): (0.1675, 0.6521),
    ("ig", 224): (0.0907, 0.2921),
    ("rise", 224): (0.1196, 0.5637),
    ("mask", 224): (0.0468, 0.4962), ("mask", 28): (0.1151, 0.5559), ("mask", 7): (0.2259, 0.6003),
    ("igos", 224): (0.0420, 0.5846), ("igos", 28): (0.1059, 0.5986), ("igos", 7): (0.1607, 0.6632),
    ("igospp", 224): (0.0328, 0.7261), ("igospp", 28): (0.0929, 0.7284), ("igospp", 7): (0.1810, 0.7332),
}

#: Table 2: VGG19 (its coarse resolution is 14 x 14).
TABLE2: dict[tuple[str, int], tuple[float, float]] = {
    ("gradcam", 14): (0.1527, 0.5938),
    ("ig", 224): (0.0663, 0.2551),
    ("rise", 224): (0.1082, 0.5139),
    ("mask", 224): (0.0482, 0.4158), ("mask", 28): (0.1056, 0.5335), ("mask", 14): (0.1753, 0.5647),
    ("igos", 224): (0.0336, 0.5246), ("igos", 28): (0.0899, 0.5701), ("igos", 14): (0.1213, 0.6387),
    ("igospp", 224): (0.0344, 0.6537), ("igospp", 28): (0.0796, 0.7066), ("igospp", 14): (0.1123, 0.7061),
}

#: Table 3: the ablation on ResNet50 at 224 x 224 and 28 x 28.
TABLE3: dict[tuple[str, int], tuple[float, float]] = {
    ("igos", 224): (0.0420, 0.5846), ("igos", 28): (0.1059, 0.5986),
    ("insertion", 224): (0.0760, 0.6192), ("insertion", 28): (0.1321, 0.7231),
    ("naive", 224): (0.0322, 0.6175), ("naive", 28): (0.2037, 0.5103),
    ("igospp_nonoise", 224): (0.0490, 0.5943), ("igospp_nonoise", 28): (0.0904, 0.7108),
    ("igospp_fixedstep", 224): (0.0332, 0.5695), ("igospp_fixedstep", 28): (0.1052, 0.7060),
    ("igospp_nobtv", 224): (0.0245, 0.6742), ("igospp_nobtv", 28): (0.0813, 0.6825),
    ("igospp", 224): (0.0328, 0.7261), ("igospp", 28): (0.0929, 0.7284),
}

#: Table 6: seconds per heatmap on ResNet50 (GTX 1080 Ti, 8-core CPU, 5,000 images); RISE has no
#: resolution; the gradient-based methods take under one second.
TABLE6: dict[tuple[str, int | None], float] = {
    ("igospp", 28): 16.67, ("igospp", 224): 12.25,
    ("igos", 28): 1.50, ("igos", 224): 1.48,
    ("mask", 28): 14.66, ("mask", 224): 17.03,
    ("rise", None): 61.77,
}

#: Table 5 (supplementary): iGOS++'s deletion mask ``Mx``, insertion mask ``My`` and their product ``Mxy``
#: scored alone, ResNet50, at 224 x 224 and 28 x 28. As printed: the ``Mxy`` insertion at 28 x 28 (0.7332)
#: differs from Table 1's iGOS++ at 28 x 28 (0.7284) and equals Table 1's 7 x 7 value, probably a slip in
#: the paper; its ``Mxy`` deletion at 28 x 28 (0.0929) does match Table 1.
TABLE5: dict[tuple[str, int], tuple[float, float]] = {
    ("Mx", 224): (0.0268, 0.5008), ("My", 224): (0.0594, 0.7184), ("Mxy", 224): (0.0328, 0.7261),
    ("Mx", 28): (0.1011, 0.5536), ("My", 28): (0.1788, 0.6912), ("Mxy", 28): (0.0929, 0.7332),
}

#: Table 7 (supplementary): the final value of ``f_c(Phi(I, B, M)) - f_c(Phi(I, B, 1 - M))`` (lower is better)
#: at 28 x 28, averaged over 500 images, for the naive method and iGOS++, at the ``(lambda1, lambda2)`` of
#: :data:`TABLE7_LAMBDAS`, in that order.
TABLE7_LAMBDAS: tuple[tuple[float, float], ...] = ((1, 2), (1, 20), (10, 20), (10, 200))
TABLE7: dict[str, tuple[float, ...]] = {
    "naive": (-0.869, -0.374, 0.346, 0.693),
    "igospp": (-0.971, -0.649, 0.158, 0.654),
}

TABLE_MODELS = {"TABLE1": "ResNet50", "TABLE2": "VGG19", "TABLE3": "ResNet50", "TABLE5": "ResNet50",
                "TABLE6": "ResNet50", "TABLE7": "ResNet50"}


def methods(table: Mapping[Any, Any]) -> list[str]:
    """The methods of a comparison table, in :data:`igospp.methods.REGISTRY` order.

    Args:
        table: a table keyed by ``(method, resolution)`` or by method (:data:`TABLE1`,
            :data:`TABLE2`, :data:`TABLE3`, :data:`TABLE6`, :data:`TABLE7`).

    Raises:
        ValueError: when a key is not a registry name (:data:`TABLE5`'s masks, for instance).

    >>> methods(TABLE3)[1:4]
    ['insertion', 'naive', 'igospp_nonoise']
    """
    names = {key[0] if isinstance(key, tuple) else key for key in table}
    unknown = sorted(names - set(REGISTRY))
    if unknown:
        raise ValueError(f"table has keys {unknown} that are not methods of igospp.methods.REGISTRY.")
    return [name for name in REGISTRY if name in names]


def _resolution(row: dict[str, Any]) -> int | None:
    first = str(row["resolution"]).split("x")[0]
    return int(first) if first.isdigit() else None


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "--"
    return f"{mean:.4f}" if se is None or math.isnan(se) else f"{mean:.4f} ± {se:.4f}"


def side_by_side(rows: list[dict[str, Any]], paper: dict[tuple[str, int], tuple[float, float]],
                 coarse: dict[int, int] | None = None) -> str:
    """A markdown table of reproduced rows (from :class:`igospp.studies.benchmark.Summary`) beside the paper's numbers.

    The paper's numbers are the authors' logged scores, so each metric is shown under that rule
    (``legacy_*``, what the paper compares) beside the exact trapezoid; rows without a logged score
    show "--" there. Rows are labelled with the methods' display names.

    Args:
        rows: ``Summary.rows`` (``method``, ``resolution``, ``n``, ``deletion_mean``, ``deletion_se``,
            ``insertion_mean``, ``insertion_se`` and optionally the ``legacy_*`` means and errors).
        paper: one of :data:`TABLE1`, :data:`TABLE2`, :data:`TABLE3`.
        coarse: compare a reproduced resolution with another of the paper, e.g. ``{7: 14}`` to put
            7 x 7 results beside VGG19's 14 x 14 column. Methods whose resolution is fixed (those
            of the registry that take none: Grad-CAM, IG, RISE) are matched by method alone.

    Example:
        >>> import igospp.studies.paper as paper
        >>> row = dict(method="igospp", resolution="28x28", n=3, deletion_mean=0.1,
        ...            deletion_se=0.01, insertion_mean=0.6, insertion_se=0.02, legacy_deletion_mean=0.098,
        ...            legacy_deletion_se=0.01, legacy_insertion_mean=0.61, legacy_insertion_se=0.02)
        >>> print(paper.side_by_side([row], paper.TABLE1).splitlines()[-1])
        | iGOS++ | 28x28 | 3 | 0.0980 ± 0.0100 | 0.1000 ± 0.0100 | 0.0929 | 0.6100 ± 0.0200 | 0.6000 ± 0.0200 | 0.7284 |
    """
    coarse = coarse or {}
    fixed = {m: v for (m, _), v in paper.items() if m in REGISTRY and not REGISTRY[m].takes_resolution}
    lines = ["| method | resolution | images | deletion, authors' rule | deletion, trapezoid | deletion (paper) "
             "| insertion, authors' rule | insertion, trapezoid | insertion (paper) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        res = _resolution(r)
        ref = fixed.get(r["method"]) if r["method"] in fixed else paper.get((r["method"], coarse.get(res, res)))
        pd, pi = ("--", "--") if ref is None else (f"{ref[0]:.4f}", f"{ref[1]:.4f}")
        cells = [_fmt(r.get(f"legacy_{k}_mean"), r.get(f"legacy_{k}_se")) + " | " + _fmt(r[f"{k}_mean"], r[f"{k}_se"])
                 + " | " + p for k, p in (("deletion", pd), ("insertion", pi))]
        lines.append(f"| {display_name(r['method'])} | {r['resolution']} | {r['n']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"
