"""Paired comparisons: closed-form intervals and the words they allow (the verdicts: test_reproduction.py)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import igospp.studies.paper as paper
from igospp.studies.benchmark import paired, summarize
from igospp.studies.stats import mean_se, paired_difference
from igospp_book import table


def test_interval_is_the_student_t_interval_of_the_differences():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.302652729...
    d = paired_difference([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert d.mean == pytest.approx(2.0)
    assert (d.low, d.high) == pytest.approx((2 - half, 2 + half))
    assert (d.n, d.n_positive, d.n_negative, d.confidence) == (3, 3, 0, 0.95)
    assert not d.excludes_zero and d.word() == "not distinguishable"
    wider = paired_difference([2.0, 3.0, 4.0], [1.0, 1.0, 1.0], confidence=0.99)
    assert wider.low < d.low and wider.high > d.high


def test_constant_differences_give_a_zero_width_interval_and_a_direction():
    d = paired_difference([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert d.low == pytest.approx(0.1) and d.high == pytest.approx(0.1)
    assert d.excludes_zero and d.word() == "higher" and d.word("up", "down") == "up"
    assert paired_difference([0.4, 0.5], [0.5, 0.6]).word() == "lower"


def test_one_pair_has_no_interval_and_claims_nothing():
    d = paired_difference([0.9], [0.1])
    assert math.isnan(d.low) and math.isnan(d.high)
    assert not d.excludes_zero and d.word() == "not distinguishable"


def test_identical_methods_are_never_different():
    d = paired_difference([0.3, 0.5, 0.7], [0.3, 0.5, 0.7])
    assert d.mean == 0 and not d.excludes_zero and d.n_positive == d.n_negative == 0


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=30), st.floats(-0.5, 0.5))
def test_the_interval_contains_the_mean_and_shifts_with_the_data(values, shift):
    a = torch.tensor(values, dtype=torch.float64)
    d = paired_difference(a + shift, a)
    assert d.low <= d.mean <= d.high
    assert d.mean == pytest.approx(shift, abs=1e-9)


def test_mean_se_is_the_sample_standard_error():
    mean, se = mean_se([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and se == pytest.approx(torch.tensor([1.0, 2, 3, 4]).std().item() / 2)
    assert math.isnan(mean_se([1.0])[1])


@pytest.mark.parametrize("a, b, confidence, message", [
    ([1.0, 2.0], [1.0], 0.95, "must pair up"),
    ([], [], 0.95, "empty"),
    ([1.0, float("nan")], [1.0, 2.0], 0.95, "NaN"),
    (["x"], [1.0], 0.95, "sequence of numbers"),
    ([1.0, 2.0], [1.0, 2.0], 1.5, "confidence"),
    ([1.0, 2.0], [1.0, 2.0], True, "confidence"),
])
def test_bad_inputs_are_named(a, b, confidence, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b, confidence)


def _record(path, method, value, res="28"):
    return dict(path=path, image=path, method=method, resolution=res, insertion_auc=value, deletion_auc=0.1,
                legacy_insertion_auc=value + 0.01, legacy_deletion_auc=0.09, seconds=1.0, model="m",
                protocol={"name": "igospp", "legacy": True}, images_dir="x", device="cpu")


def test_evaluation_pairs_records_by_image_and_resolution():
    records = [_record("a", "igospp", 0.7), _record("b", "igospp", 0.6), _record("c", "igospp", 0.9),
               _record("a", "igos", 0.5), _record("b", "igos", 0.5), _record("a", "igos", 0.0, res="7")]
    d = paired(records, "igospp", "igos", resolution="28x28")
    assert d.n == 2 and d.mean == pytest.approx(0.15)            # image c has no I-GOS record
    assert paired(records, "igospp", "igos", "legacy_insertion_auc", resolution=28).mean == pytest.approx(0.15)
    assert paired(records, "igospp", "igos", resolution=28, resolution_b=7).n == 1
    with pytest.raises(ValueError, match="no image has records of both"):
        paired(records, "igospp", "rise", resolution=28)
    with pytest.raises(ValueError, match="has no 'legacy_insertion_auc'"):
        paired([dict(r, legacy_insertion_auc=None) for r in records], "igospp", "igos", "legacy_insertion_auc", 28)


def test_summaries_carry_the_authors_rule_beside_the_trapezoid():
    rows = summarize([_record("a", "igospp", 0.7), _record("b", "igospp", 0.5)]).rows
    assert rows[0]["insertion_mean"] == pytest.approx(0.6)
    assert rows[0]["legacy_insertion_mean"] == pytest.approx(0.61)
    no_legacy = summarize([dict(_record("a", "igospp", 0.7), legacy_insertion_auc=None)]).rows[0]
    assert no_legacy["legacy_insertion_mean"] is None


def test_book_tables_are_markdown_pipe_tables():
    out = table([["iGOS++", 0.12345, None, "a|b"]], ["method", "AUC", "paper", "note"]).data
    assert out.splitlines() == ["| method | AUC | paper | note |", "|---|---|---|---|",
                                "| iGOS++ | 0.123 | -- | a\\|b |"]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        table([[1]], ["a", "b"])


def test_paper_tables_are_consistent_with_each_other():
    # Table 3 and Table 5 repeat Table 1's iGOS++ and I-GOS rows, except the one known slip of Table 5.
    assert paper.TABLE5[("Mxy", 224)] == paper.TABLE1[("igospp", 224)]
    assert paper.TABLE5[("Mxy", 28)][0] == paper.TABLE1[("igospp", 28)][0]
    assert paper.TABLE5[("Mxy", 28)][1] == paper.TABLE1[("igospp", 7)][1] != paper.TABLE1[("igospp", 28)][1]
    assert len(paper.TABLE7_LAMBDAS) == len(paper.TABLE7["naive"]) == len(paper.TABLE7["igospp"]) == 4
    assert all(a < b for a, b in zip(paper.TABLE7["igospp"], paper.TABLE7["naive"], strict=True))   # the paper's claim
