"""The benchmark scripts run and report what they claim (no timing is asserted: speed is measured, not tested)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_bench_passes_reports_every_variant_and_its_difference(tmp_path):
    out = tmp_path / "passes.json"
    run = _run("bench_passes.py", "--batch-sizes", "1", "--repeats", "1", "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {(r["pass_kind"], r["memory_format"]) for r in rows} >= {
        (kind, fmt) for kind in ("forward", "forward+grad") for fmt in ("contiguous", "channels_last", "cl_input_only")}
    reference = [r for r in rows if r["memory_format"] == "contiguous" and r["precision"] == "fp32"]
    assert all(r["max_abs_diff"] == 0 and r["ratio_to_fp32_contiguous"] == 1 for r in reference)
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    assert all(r["max_abs_diff"] < 1e-3 for r in fp32), "a layout change must not change the numbers"


def test_bench_compare_times_two_revisions_and_compares_their_masks(tmp_path):
    """The same revision against itself: identical masks (the library is deterministic given a seed)."""
    out = tmp_path / "compare.json"
    run = _run("bench_compare.py", "--ref", "HEAD", "--new", "HEAD", "--methods", "igos", "--resolutions", "7",
               "--n", "2", "--iterations", "1", "--ig-steps", "1", "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert len(row["ref_seconds"]) == len(row["new_seconds"]) == 2
    assert row["max_mask_diff"] == 0.0


@pytest.mark.parametrize(("script", "args", "message"), [
    ("bench_passes.py", ["--batch-sizes", "0"], "--batch-sizes must be positive"),
    ("bench_passes.py", ["--batch-sizes", "a"], "--batch-sizes must be comma-separated integers"),
    ("bench_passes.py", ["--repeats", "0"], "--repeats must be at least 1"),
    ("bench_compare.py", ["--ref", "no-such-revision"], "is not a commit of this repository"),
    ("bench_compare.py", ["--n", "0"], "--n must be at least 1"),
    ("bench_explain.py", ["--n", "2", "--only", "2"], "--only must be an image index in 0..1"),
])
def test_bad_arguments_are_named(script, args, message):
    run = _run(script, *args)
    assert run.returncode != 0 and message in run.stderr + run.stdout
