"""The paper's comparisons tested on records: paired differences, verdicts and the confidence split.

Every comparison the paper makes is between two methods (or two masks) on the same images: iGOS++
against I-GOS in Table 1, against each ablation in Table 3, the product mask against each of its
two factors in the supplementary Table 5. :func:`compare` tests such comparisons on the records
of :func:`igospp.studies.benchmark.evaluate`: for each pair, resolution and metric it takes the
per-image differences ``a - b`` over the images both have, their mean with a Student-t
confidence interval (:func:`igospp.studies.stats.paired_difference`) and the number of images on
which the difference has the paper's sign, and gives a verdict (:func:`verdict`):

* **reproduced**: the interval excludes zero on the side of the paper's difference;
* **contradicted**: it excludes zero on the other side;
* **inconclusive**: it includes zero; no difference is claimed.

The paper's difference is read from its own table (:mod:`igospp.studies.paper`), under the
authors' scoring rule (``legacy_*``: the numbers the paper prints); the trapezoid can be
compared the same way (``rule="trapezoid"``).

The paper's failure case says that optimized masks fail on images the network is unsure of;
:func:`split_by_confidence` splits records by the clean image's probability of the explained
class, so that every comparison can be repeated on each side.

Example:
    >>> from igospp.studies.reproduction import Pair, compare
    >>> recs = [dict(key=k, method=m, resolution="28", legacy_insertion_auc=v, legacy_deletion_auc=0.1)
    ...         for k, m, v in [("a", "igospp", 0.7), ("b", "igospp", 0.6), ("c", "igospp", 0.8),
    ...                         ("a", "igos", 0.5), ("b", "igos", 0.45), ("c", "igos", 0.55)]]
    >>> (c,) = compare(recs, [Pair("igospp", "igos", 28)], {("igospp", 28): (0.09, 0.73),
    ...                ("igos", 28): (0.11, 0.60)}, metrics=("insertion",))
    >>> round(c.difference.mean, 3), c.holds, c.verdict
    (0.2, 3, 'reproduced')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from igospp import checks
from igospp.studies.stats import PairedDifference, paired_difference

__all__ = ["Pair", "Comparison", "VERDICTS", "verdict", "value", "per_image", "compare", "split_by_confidence",
           "comparisons_markdown", "paper_pairs", "mask_pairs", "report", "MASK_FIELDS"]

#: The three verdicts, in the order tables count them.
VERDICTS: tuple[str, ...] = ("reproduced", "contradicted", "inconclusive")

#: The rows of the supplementary Table 5 and where a record of iGOS++ keeps each: ``Mxy`` is the
#: record's own score, ``Mx`` and ``My`` the masks scored alone (the record's ``masks``).
MASK_FIELDS: dict[str, str] = {"Mxy": "", "Mx": "masks.deletion_mask.", "My": "masks.insertion_mask."}


def verdict(diff: PairedDifference, paper_sign: int) -> str:
    """Whether a paired difference ``a - b`` reproduces the paper's direction (see the module's documentation).

    Args:
        diff: ``a - b`` over the same images (:func:`igospp.studies.stats.paired_difference`).
        paper_sign: ``+1`` when the paper finds ``a > b``, ``-1`` when it finds ``a < b``.

    Returns:
        ``"reproduced"``, ``"contradicted"`` or ``"inconclusive"``.

    Raises:
        ValueError: ``paper_sign`` is not ``+1`` or ``-1``.

    Example:
        >>> from igospp.studies.stats import paired_difference
        >>> verdict(paired_difference([0.7, 0.8, 0.75], [0.5, 0.6, 0.52]), +1)
        'reproduced'
        >>> verdict(paired_difference([0.7, 0.8, 0.75], [0.5, 0.6, 0.52]), -1)
        'contradicted'
        >>> verdict(paired_difference([0.7, 0.2], [0.5, 0.6]), +1)
        'inconclusive'
    """
    if isinstance(paper_sign, bool) or paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be +1 or -1, got {paper_sign!r}.")
    if not diff.excludes_zero:
        return "inconclusive"
    return "reproduced" if (diff.mean > 0) == (paper_sign > 0) else "contradicted"


@dataclass(frozen=True)
class Pair:
    """One comparison of the paper: ``a`` against ``b`` at a mask resolution.

    Attributes:
        a, b: method names of :data:`igospp.methods.REGISTRY` (``"igospp"``, ``"igos"``...), or
            for the supplementary Table 5 ``"Mxy"``, ``"Mx"``, ``"My"`` (:data:`MASK_FIELDS`:
            iGOS++'s records).
        resolution: the mask resolution of ``a`` (``28``).
        resolution_b: that of ``b``; ``None`` (default): ``resolution``. Methods whose
            resolution is fixed (Grad-CAM, IG, RISE) match any resolution: pass it for the
            paper's key, e.g. ``Pair("igospp", "gradcam", 224, 7)``.
    """

    a: str
    b: str
    resolution: int
    resolution_b: int | None = None

    @property
    def other_resolution(self) -> int:
        """``resolution_b``, or ``resolution`` when it is ``None``."""
        return self.resolution if self.resolution_b is None else self.resolution_b


@dataclass(frozen=True)
class Comparison:
    """The test of one :class:`Pair` on one metric.

    Attributes:
        pair: what is compared.
        metric: ``"deletion"`` or ``"insertion"``.
        field: the record field compared (``"legacy_insertion_auc"``...).
        paper_difference: ``a - b`` in the paper's table, ``None`` when it lacks either value.
        difference: the per-image differences' mean and interval.
        holds: images on which ``a - b`` has the paper's sign (``None`` without a paper value).
        verdict: one of :data:`VERDICTS`, or ``"no paper value"``.
    """

    pair: Pair
    metric: str
    field: str
    paper_difference: float | None
    difference: PairedDifference
    holds: int | None
    verdict: str


def value(record: Mapping[str, Any], field: str) -> float:
    """A number of a record by its field name, dotted into nested objects (``"masks.deletion_mask.insertion_auc"``).

    Raises:
        ValueError: the record lacks the field or holds something else than a finite number there.

    Example:
        >>> value({"masks": {"deletion_mask": {"insertion_auc": 0.5}}}, "masks.deletion_mask.insertion_auc")
        0.5
    """
    node: Any = record
    for part in field.split("."):
        if not isinstance(node, Mapping) or node.get(part) is None:
            raise ValueError(f"the record of {record.get('method')!r} for {record.get('key', record.get('path'))!r} "
                             f"has no {field!r} (the two masks are only in iGOS++'s records, legacy scores "
                             "only under the 'igospp' protocol).")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise ValueError(f"{field!r} must be a finite number, got {node!r}.")
    return float(node)


def per_image(records: Sequence[Mapping[str, Any]], name: str, resolution: int | str | None,
              field: str) -> dict[str, float]:
    """One number per image: ``field`` of the records of ``name`` at ``resolution``, keyed by the image.

    Args:
        records: the records of one run (:func:`igospp.studies.benchmark.load_records`).
        name: a method of :data:`igospp.methods.REGISTRY`, or ``"Mxy"``, ``"Mx"``, ``"My"``
            (:data:`MASK_FIELDS`: read from iGOS++'s records).
        resolution: the mask resolution (``28``, ``"28"`` or ``"28x28"``); ``None``: any. Methods
            whose resolution is fixed (Grad-CAM, IG, RISE) match any resolution.
        field: the record field, dotted into nested objects (:func:`value`).

    Returns:
        ``{image key: value}``; the key is the record's ``key`` (its ``path`` in older records).

    Raises:
        ValueError: two records of one image (records of several runs, or of several resolutions
            with ``resolution=None``), or a record lacking the field.

    Example:
        >>> recs = [dict(key="a", method="igos", resolution="28", insertion_auc=0.5),
        ...         dict(key="a", method="igos", resolution="7", insertion_auc=0.4)]
        >>> per_image(recs, "igos", 7, "insertion_auc")
        {'a': 0.4}
    """
    from igospp.methods import REGISTRY

    method, prefix = ("igospp", MASK_FIELDS[name]) if name in MASK_FIELDS else (name, "")
    spec = REGISTRY.get(method)
    any_resolution = resolution is None or (spec is not None and not spec.takes_resolution)
    wanted = str(resolution).split("x")[0]
    out: dict[str, float] = {}
    for r in records:
        if r["method"] != method or not (any_resolution or str(r["resolution"]).split("x")[0] == wanted):
            continue
        key = str(r.get("key") or r.get("path") or r.get("image"))
        if key in out:
            raise ValueError(f"two records of {method!r} at resolution {resolution} for the image {key!r}; "
                             "compare the records of one run (one model and protocol) at one resolution.")
        out[key] = value(r, prefix + field)
    return out


def compare(records: Sequence[Mapping[str, Any]], pairs: Sequence[Pair],
            paper: Mapping[tuple[str, int], tuple[float, float]], *,
            metrics: Sequence[str] = ("deletion", "insertion"), rule: str = "legacy",
            confidence: float = 0.95) -> list[Comparison]:
    """Test the paper's comparisons on records (see the module's documentation).

    Args:
        records: the records of one model and protocol (:func:`igospp.studies.benchmark.load_records`).
        pairs: the comparisons, e.g. ``[Pair("igospp", "igos", 224), Pair("igospp", "igos", 28)]``.
        paper: the paper's table for the paper's signs: ``(name, resolution) -> (deletion, insertion)``
            (:data:`igospp.studies.paper.TABLE1`...); methods of fixed resolution may be keyed at
            the resolution the paper reports them (``("gradcam", 7)``): give it as ``resolution_b``.
        metrics: ``"deletion"`` and/or ``"insertion"`` (default both), in the order of the result.
        rule: ``"legacy"`` (default: the authors' logged score, what the paper prints) or
            ``"trapezoid"`` (the exact area).
        confidence: the intervals' coverage, in (0, 1); default 0.95.

    Returns:
        One :class:`Comparison` per pair and metric, pairs first, over the images that have
        both records; pairs without any such image are left out.

    Raises:
        ValueError: a bad argument, or a record lacking the field compared.
    """
    metrics = [checks.choice("metrics", m, ("deletion", "insertion")) for m in metrics]
    rule = checks.choice("rule", rule, ("legacy", "trapezoid"))
    confidence = checks.probability("confidence", confidence)
    out = []
    for pair in pairs:
        if not isinstance(pair, Pair):
            raise TypeError(f"pairs must hold igospp.studies.reproduction.Pair, got {type(pair).__name__}.")
        for metric in metrics:
            field_name = f"{'legacy_' if rule == 'legacy' else ''}{metric}_auc"
            va = per_image(records, pair.a, pair.resolution, field_name)
            vb = per_image(records, pair.b, pair.other_resolution, field_name)
            common = sorted(set(va) & set(vb))
            if not common:
                continue
            diff = paired_difference([va[k] for k in common], [vb[k] for k in common], confidence)
            k = metric == "insertion"
            pa, pb = paper.get((pair.a, pair.resolution)), paper.get((pair.b, pair.other_resolution))
            paper_diff = None if pa is None or pb is None else pa[k] - pb[k]
            if paper_diff is None or paper_diff == 0:
                holds, word = None, "no paper value"
            else:
                sign = 1 if paper_diff > 0 else -1
                holds = sum((va[c] - vb[c]) * sign > 0 for c in common)
                word = verdict(diff, sign)
            out.append(Comparison(pair, metric, field_name, paper_diff, diff, holds, word))
    return out


def split_by_confidence(records: Sequence[Mapping[str, Any]], threshold: float = 0.5
                        ) -> dict[str, list[Mapping[str, Any]]]:
    """Records split by the network's confidence on the clean image: ``{"high": [...], "low": [...]}``.

    An image is *high* when the softmax probability of the class explained, on the clean image
    (the record's ``target.probability``), is above ``threshold``; every record of an image
    goes to the same side.

    Args:
        records: records of :func:`igospp.studies.benchmark.evaluate`.
        threshold: in (0, 1); default 0.5.

    Raises:
        ValueError: a bad threshold, or a record without ``target.probability``.

    Example:
        >>> recs = [dict(key="a", target=dict(probability=0.9)), dict(key="b", target=dict(probability=0.2))]
        >>> {side: [r["key"] for r in rs] for side, rs in split_by_confidence(recs).items()}
        {'high': ['a'], 'low': ['b']}
    """
    threshold = checks.probability("threshold", threshold)
    out: dict[str, list[Mapping[str, Any]]] = {"high": [], "low": []}
    for r in records:
        out["high" if value(r, "target.probability") > threshold else "low"].append(r)
    return out


def comparisons_markdown(comparisons: Sequence[Comparison], label: Callable[[str], str] | None = None,
                         digits: int = 4) -> str:
    """A markdown table of comparisons: pair, resolution, metric, the paper's and our difference, interval, verdict.

    Args:
        comparisons: from :func:`compare`.
        label: display name of a method (default :func:`igospp.methods.display_name`, masks as they are).
        digits: decimals of the differences.
    """
    from igospp.methods import REGISTRY, display_name

    def name(n: str) -> str:
        return label(n) if label else (display_name(n) if n in REGISTRY else n)

    lines = ["| comparison | resolution | AUC | paper | here | 95 % interval (paired t) | images in the paper's "
             "direction | verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        res = (f"{c.pair.resolution}" if c.pair.resolution_b in (None, c.pair.resolution)
               else f"{c.pair.resolution} vs {c.pair.resolution_b}")
        paper_d = "--" if c.paper_difference is None else f"{c.paper_difference:+.{digits}f}"
        holds = "--" if c.holds is None else f"{c.holds} of {c.difference.n}"
        interval = c.difference.interval(digits) if c.difference.n > 1 else "-- (one image)"
        lines.append(f"| {name(c.pair.a)} - {name(c.pair.b)} | {res} | {c.metric} | {paper_d} | "
                     f"{c.difference.mean:+.{digits}f} | {interval} | {holds} | {c.verdict} |")
    return "\n".join(lines) + "\n"


def paper_pairs(records: Sequence[Mapping[str, Any]], paper: Mapping[tuple[str, int], tuple[float, float]],
                reference: str = "igospp") -> list[Pair]:
    """The comparisons of ``reference`` with every other method of ``records`` that the paper's table has.

    For each resolution at which ``reference`` has records, one :class:`Pair` per other method
    of the table with records: at the same resolution for the methods that take one (also where
    the paper has no value there: :func:`compare` then says so), at the paper's resolution for
    the others (Grad-CAM at 7 x 7 in Table 1). Methods are in :data:`igospp.methods.REGISTRY`
    order, resolutions from the finest.

    Example:
        >>> from igospp.studies import paper
        >>> recs = [dict(method=m, resolution=r) for m, r in
        ...         [("igospp", "28"), ("igos", "28"), ("gradcam", "7"), ("naive", "28")]]
        >>> [(p.b, p.resolution, p.resolution_b) for p in paper_pairs(recs, paper.TABLE1)]
        [('gradcam', 28, 7), ('igos', 28, None)]
    """
    from igospp.methods import REGISTRY

    found = {(r["method"], int(str(r["resolution"]).split("x")[0])) for r in records}
    resolutions = sorted({res for m, res in found if m == reference}, reverse=True)
    in_paper = {k[0] for k in paper}
    methods = [m for m in REGISTRY if m != reference and m in in_paper and any(f[0] == m for f in found)]
    pairs = []
    for res in resolutions:
        for m in methods:
            if REGISTRY[m].takes_resolution:
                if (m, res) in found:
                    pairs.append(Pair(reference, m, res))
            else:
                keys = [k for k in paper if k[0] == m]
                if keys:
                    pairs.append(Pair(reference, m, res, keys[0][1]))
    return pairs


def mask_pairs(records: Sequence[Mapping[str, Any]]) -> list[Pair]:
    """The supplementary Table 5's comparisons: the product ``Mxy`` against ``Mx`` and ``My``, at each
    resolution of the iGOS++ records that hold the two masks, from the finest.

    Example:
        >>> recs = [dict(method="igospp", resolution="28", masks={}), dict(method="igos", resolution="7", masks=None)]
        >>> [(p.a, p.b, p.resolution) for p in mask_pairs(recs)]
        [('Mxy', 'Mx', 28), ('Mxy', 'My', 28)]
    """
    resolutions = sorted({int(str(r["resolution"]).split("x")[0]) for r in records
                          if r["method"] == "igospp" and r.get("masks") is not None}, reverse=True)
    return [Pair("Mxy", other, res) for res in resolutions for other in ("Mx", "My")]


def report(records: Sequence[Mapping[str, Any]], paper: Mapping[tuple[str, int], tuple[float, float]], *,
           reference: str = "igospp", pairs: Sequence[Pair] | None = None, rule: str = "legacy",
           confidence: float = 0.95, split: float | None = None) -> str:
    """The paper's comparisons of ``reference`` on ``records`` as markdown, with the verdicts counted.

    Args:
        records, paper, reference: see :func:`paper_pairs` and :func:`compare`.
        pairs: the comparisons; ``None`` (default): :func:`paper_pairs` of ``reference``.
        rule, confidence: see :func:`compare`.
        split: also report the images above and at or below this clean-image probability
            (:func:`split_by_confidence`); ``None`` (default): all images only.

    Returns:
        A markdown section per image set: a line counting the verdicts, then the table.
    """
    pairs = paper_pairs(records, paper, reference) if pairs is None else list(pairs)
    sets = [("all images", list(records))]
    if split is not None:
        sides = split_by_confidence(records, split)
        sets += [(f"clean-image probability > {split:g}", sides["high"]),
                 (f"clean-image probability <= {split:g}", sides["low"])]
    out = []
    for title, recs in sets:
        found = compare(recs, pairs, paper, rule=rule, confidence=confidence)
        n = len({str(r.get("key", r.get("path"))) for r in recs})
        counts = ", ".join(f"{sum(c.verdict == v for c in found)} {v}" for v in VERDICTS)
        missing = sum(c.verdict not in VERDICTS for c in found)
        counts += f", {missing} without a paper value" if missing else ""
        out.append(f"**{title}** ({n} image{'' if n == 1 else 's'}): {len(found)} comparisons, {counts}.\n\n"
                   + (comparisons_markdown(found) if found else "(no comparison: no image has both records)\n"))
    return "\n".join(out)
