"""igospp.studies.reproduction: the paper's comparisons as paired differences, verdicts and the confidence split."""

import math

import pytest

from igospp.studies import paper
from igospp.studies.reproduction import (
    Pair,
    compare,
    comparisons_markdown,
    split_by_confidence,
    value,
    verdict,
)
from igospp.studies.stats import paired_difference


def record(key, method, resolution, deletion, insertion, probability=0.9, masks=None):
    return dict(key=key, method=method, resolution=str(resolution), deletion_auc=deletion + 0.01,
                insertion_auc=insertion + 0.01, legacy_deletion_auc=deletion, legacy_insertion_auc=insertion,
                target=dict(index=1, probability=probability), masks=masks)


def masks(mx, my):
    """Mx and My scored alone: (deletion, insertion) each, the authors' rule and the trapezoid alike."""
    return {name: dict(deletion_auc=d, insertion_auc=i, legacy_deletion_auc=d, legacy_insertion_auc=i)
            for name, (d, i) in (("deletion_mask", mx), ("insertion_mask", my))}


def test_a_closed_form_case():
    """Differences 1, 2, 3: mean 2, interval 2 ± t(0.975, 2) sd / sqrt(3) = 2 ± 4.303 / sqrt(3)."""
    recs = [record(k, "igospp", 28, 0.1, 0.5 + d) for k, d in zip("abc", (1.0, 2.0, 3.0), strict=True)]
    recs += [record(k, "igos", 28, 0.1, 0.5) for k in "abc"]
    table = {("igospp", 28): (0.09, 0.73), ("igos", 28): (0.11, 0.60)}
    (c,) = compare(recs, [Pair("igospp", "igos", 28)], table, metrics=["insertion"])
    assert c.field == "legacy_insertion_auc" and c.paper_difference == pytest.approx(0.13)
    assert c.difference.mean == pytest.approx(2.0) and c.difference.n == 3
    assert c.difference.high - 2.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert (c.holds, c.verdict) == (3, "inconclusive")                   # the interval [-0.48, 4.48] holds 0
    (trap,) = compare(recs, [Pair("igospp", "igos", 28)], table, metrics=["insertion"], rule="trapezoid")
    assert trap.field == "insertion_auc" and trap.difference.mean == pytest.approx(2.0)


def test_verdicts_follow_the_interval_and_the_papers_sign():
    up = paired_difference([0.7, 0.8, 0.75, 0.72], [0.5, 0.6, 0.52, 0.55])
    assert (verdict(up, +1), verdict(up, -1)) == ("reproduced", "contradicted")
    assert verdict(paired_difference([0.7, 0.2], [0.5, 0.6]), +1) == "inconclusive"
    for bad in (0, 2, True, "+1", None):
        with pytest.raises(ValueError, match="paper_sign must be"):
            verdict(up, bad)


def test_deletion_is_compared_with_the_papers_sign_too():
    """The paper's iGOS++ deletes better (lower) than I-GOS at 224: a negative difference reproduces it."""
    recs = [record(k, "igospp", 224, 0.03 + e, 0.7) for k, e in zip("abcd", (0.0, 0.01, 0.0, 0.01), strict=True)]
    recs += [record(k, "igos", 224, 0.05 + e, 0.6) for k, e in zip("abcd", (0.0, 0.0, 0.01, 0.01), strict=True)]
    deletion, insertion = compare(recs, [Pair("igospp", "igos", 224)], paper.TABLE1)
    assert deletion.metric == "deletion" and deletion.paper_difference < 0 and deletion.difference.mean < 0
    assert (deletion.holds, deletion.verdict) == (4, "reproduced")
    assert insertion.difference.mean == pytest.approx(0.1) and insertion.verdict == "reproduced"


def test_fixed_resolution_methods_match_any_resolution_and_the_paper_key_is_resolution_b():
    recs = [record(k, "igospp", 28, 0.09, 0.7 + e) for k, e in zip("abc", (0.0, 0.01, 0.02), strict=True)]
    recs += [record(k, "gradcam", 7, 0.17, 0.6) for k in "abc"]
    (c,) = compare(recs, [Pair("igospp", "gradcam", 28, 7)], paper.TABLE1, metrics=["insertion"])
    assert c.paper_difference == pytest.approx(0.7284 - 0.6521) and c.verdict == "reproduced"
    assert "| iGOS++ - Grad-CAM | 28 vs 7 | insertion | +0.0763 |" in comparisons_markdown([c])


def test_table5_compares_the_product_with_each_mask_of_the_same_records():
    recs = [record(k, "igospp", 28, 0.09 + e, 0.72, masks=masks((0.10, 0.55 + e), (0.18, 0.69)))
            for k, e in zip("abcd", (0.0, 0.01, 0.02, 0.0), strict=True)]
    out = compare(recs, [Pair("Mxy", "Mx", 28), Pair("Mxy", "My", 28)], paper.TABLE5)
    got = {(c.pair.b, c.metric): (round(c.difference.mean, 4), c.verdict) for c in out}
    assert got[("Mx", "insertion")] == (round(0.72 - 0.5575, 4), "reproduced")     # Mxy inserts better than Mx
    assert got[("My", "deletion")][1] == "reproduced"                                # and deletes better than My
    assert "| Mxy - Mx | 28 | insertion |" in comparisons_markdown(out)


def test_only_images_with_both_records_are_paired_and_pairs_without_any_are_left_out():
    recs = [record("a", "igospp", 28, 0.1, 0.7), record("b", "igospp", 28, 0.1, 0.8),
            record("b", "igos", 28, 0.1, 0.6), record("c", "igos", 28, 0.1, 0.5)]
    out = compare(recs, [Pair("igospp", "igos", 28), Pair("igospp", "mask", 28)], paper.TABLE1, metrics=["insertion"])
    assert [(c.pair.b, c.difference.n) for c in out] == [("igos", 1)]
    assert out[0].verdict == "inconclusive"                                          # one pair: no interval


def test_a_pair_the_paper_lacks_has_no_verdict():
    recs = [record(k, "igospp", 56, 0.1, 0.7 + e) for k, e in zip("ab", (0.0, 0.1), strict=True)]
    recs += [record(k, "igos", 56, 0.1, 0.5) for k in "ab"]
    (c,) = compare(recs, [Pair("igospp", "igos", 56)], paper.TABLE1, metrics=["insertion"])
    assert (c.paper_difference, c.holds, c.verdict) == (None, None, "no paper value")


def test_the_confidence_split_keeps_each_image_on_one_side():
    recs = [record("a", "igospp", 28, 0.1, 0.7, probability=0.9), record("a", "igos", 28, 0.1, 0.6, probability=0.9),
            record("b", "igospp", 28, 0.1, 0.7, probability=0.5), record("c", "igos", 28, 0.1, 0.6, probability=0.1)]
    split = split_by_confidence(recs)
    assert {side: [(r["key"], r["method"]) for r in rs] for side, rs in split.items()} == {
        "high": [("a", "igospp"), ("a", "igos")], "low": [("b", "igospp"), ("c", "igos")]}   # 0.5 is not above
    assert [r["key"] for r in split_by_confidence(recs, threshold=0.05)["low"]] == []


BAD = [
    (lambda recs: compare(recs, [Pair("igospp", "igos", 28)], paper.TABLE1, metrics=["area"]), ValueError,
     "metrics must be one of"),
    (lambda recs: compare(recs, [Pair("igospp", "igos", 28)], paper.TABLE1, rule="exact"), ValueError,
     "rule must be one of"),
    (lambda recs: compare(recs, [Pair("igospp", "igos", 28)], paper.TABLE1, confidence=95), ValueError,
     "confidence"),
    (lambda recs: compare(recs, [("igospp", "igos", 28)], paper.TABLE1), TypeError, "pairs must hold"),
    (lambda recs: compare(recs, [Pair("Mxy", "Mx", 28)], paper.TABLE5), ValueError,
     "has no 'masks.deletion_mask.legacy_deletion_auc' .*only in iGOS\\+\\+'s records"),
    (lambda recs: compare(recs + recs[:1], [Pair("igospp", "igos", 28)], paper.TABLE1), ValueError,
     "two records of 'igospp' at resolution 28 for the image 'a'"),
    (lambda recs: split_by_confidence(recs, threshold=1.5), ValueError, "threshold"),
    (lambda recs: split_by_confidence([{"key": "a", "target": {}}]), ValueError, "has no 'target.probability'"),
    (lambda recs: value({"x": True}, "x"), ValueError, "'x' must be a finite number, got True"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[row[2][:30] for row in BAD])
def test_bad_inputs_are_named(call, error, message):
    recs = [record("a", "igospp", 28, 0.1, 0.7), record("a", "igos", 28, 0.1, 0.6)]
    with pytest.raises(error, match=message):
        call(recs)
