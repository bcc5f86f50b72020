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


def test_bench_compare_times_two_settings_of_the_working_tree(tmp_path):
    """--ref worktree with --ref-fields: the faithful passes against the accelerated ones, same library."""
    out = tmp_path / "compare.json"
    run = _run("bench_compare.py", "--ref", "worktree", "--ref-fields", '{"accelerate": false}', "--methods", "igos",
               "--resolutions", "7", "--n", "2", "--iterations", "1", "--ig-steps", "1", "--threads", "1",
               "--out", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["ref_fields"] == {"accelerate": False} and result["new_fields"] == {}
    (row,) = result["rows"]
    assert 0 < row["max_mask_diff"] < 0.05     # float rounding, moved by at most one step of the search


def test_bench_quality_pairs_candidates_with_the_default_and_resumes(tmp_path):
    out = tmp_path / "quality.json"
    args = ("--n", "2", "--resolutions", "7", "--iterations", "2", "--ig-steps", "2", "--threads", "1",
            "--candidate", 'warm={"ls_warm_start": 5.0}', "--out", str(out))
    run = _run("bench_quality.py", *args)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert len(result["rows"]) == 4                                     # 2 photos x (default, warm)
    (entry,) = result["summary"]
    assert entry["candidate"] == "warm" and entry["n"] == 2 and isinstance(entry["passes"], bool)
    for auc in ("legacy_deletion_auc", "legacy_insertion_auc", "deletion_auc", "insertion_auc"):
        e = entry[auc]
        assert e["low"] <= e["difference"] <= e["high"]
        assert e["difference"] == pytest.approx(e["candidate"] - e["default"])
    again = _run("bench_quality.py", *args)
    assert again.returncode == 0 and " s  " not in again.stdout          # nothing recomputed
    assert json.loads(out.read_text())["rows"] == result["rows"]


@pytest.mark.parametrize(("script", "args", "status", "message"), [
    ("bench_quality.py", ["--n", "1", "--candidate", "a={}"], 2, "--n must be at least 2"),
    ("bench_quality.py", ["--candidate", "a=[1]"], 1, "--candidate must be NAME="),
    ("bench_quality.py", ["--candidate", 'a={"ls_warm_start": 0.1}'], 1, "ls_warm_start must be"),
    ("bench_quality.py", [], 2, "give at least one --candidate"),
    ("bench_explain.py", ["--fields", "[1]"], 2, "--fields must be a JSON object of Config fields"),
    ("bench_passes.py", ["--batch-sizes", "0"], 2, "--batch-sizes must be positive"),
    ("bench_passes.py", ["--batch-sizes", "a"], 2, "--batch-sizes must be comma-separated integers"),
    ("bench_passes.py", ["--repeats", "0"], 2, "--repeats must be at least 1"),
    ("bench_compare.py", ["--ref", "no-such-revision"], 1, "is not a commit of this repository"),
    ("bench_compare.py", ["--n", "0"], 2, "--n must be at least 1"),
    ("bench_explain.py", ["--n", "2", "--only", "2"], 2, "--only must be an image index in 0..1"),
    ("bench_processes.py", ["--threads", "3", "--processes", "2"], 2,
     "--threads (3) must be a multiple of --processes (2)"),
    ("bench_processes.py", ["--method", "lime"], 2, "--method must be one of gradcam"),
    ("bench_processes.py", ["--rise-masks", "0"], 2, "--rise-masks must be a positive integer, got 0"),
    ("bench_processes.py", ["--repeats", "0"], 2, "--repeats must be a positive integer, got 0"),
    ("bench_processes.py", ["--photo", "mars"], 2, "--photo must be one of"),
    ("bench_malloc.py", ["--methods", "igospp,lime"], 2, "--methods must be methods of gradcam"),
    ("bench_malloc.py", ["--methods", ""], 2, "--methods must be methods of gradcam"),
    ("bench_malloc.py", ["--repeats", "0"], 2, "--repeats must be a positive integer, got 0"),
    ("bench_malloc.py", ["--photo", "mars"], 2, "--photo must be one of"),
])
def test_bad_arguments_are_named(script, args, status, message):
    """A bad argument stops the script on stderr with a message naming it: exit status 2 for argparse's usage
    errors, 1 for the errors a script raises itself after parsing."""
    run = _run(script, *args)
    assert run.returncode == status and message in run.stderr, run.stderr


def test_gpu_quality_script_candidates_are_valid_config_fields():
    """The GPU script is run where no test can follow it: its candidates must at least be valid settings."""
    import re

    import igospp

    text = (BENCH / "gpu_quality.sh").read_text()
    candidates = re.findall(r"--candidate (\w+)='(\{.*?\})'", text)
    assert len(candidates) >= 4
    for _, fields in candidates:
        igospp.Config(**json.loads(fields))
    assert subprocess.run(["bash", "-n", str(BENCH / "gpu_quality.sh")]).returncode == 0


def test_bench_batch_size_records_the_differences(tmp_path):
    out = tmp_path / "bs.json"
    run = _run("bench_batch_size.py", "--iterations", "1", "--ig-steps", "2", "--resolution", "7",
               "--path-images", "6", "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert r["settings"]["batch_sizes"] == [3, 8] and set(r["forward"]) == {"model", "accelerated"}
    assert 0 <= r["explain"]["max_abs_mask_diff"] < 0.05
    assert all(v < 1e-3 for v in r["metric"]["same_saliency"].values())


def test_bench_processes_times_one_process_against_several_on_the_same_work(tmp_path):
    out = tmp_path / "processes.json"
    run = _run("bench_processes.py", "--threads", "2", "--processes", "2", "--method", "igos", "--resolution", "7",
               "--iterations", "1", "--ig-steps", "1", "--repeats", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    (one,), (split,) = result["runs"]["one"], result["runs"]["split"]
    assert (one["processes"], one["threads"], one["heatmaps"]) == (1, 2, 2)
    assert (split["processes"], split["threads"], split["heatmaps"]) == (2, 1, 2)
    assert result["ratio_split_to_one"] == pytest.approx(split["heatmaps_per_second"] / one["heatmaps_per_second"])
    assert len(one["digests"]) == 1 and len(split["digests"]) == 2     # one per process


def test_bench_malloc_times_both_allocators_on_the_same_work_and_checks_the_numbers_agree(tmp_path):
    out = tmp_path / "malloc.json"
    run = _run("bench_malloc.py", "--methods", "igos,rise", "--resolution", "7", "--iterations", "1", "--ig-steps",
               "1", "--rise-masks", "8", "--repeats", "1", "--threads", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert set(result["methods"]) == {"igos", "rise"}
    for m in result["methods"].values():
        (default,), (tuned,) = m["runs"]["default"], m["runs"]["tuned"]
        assert m["identical_saliency"] and default["digests"] == tuned["digests"]
        assert m["ratio_tuned_to_default"] == pytest.approx(default["seconds"] / tuned["seconds"])
        assert default["minor_faults"] > 0 and tuned["system_seconds"] >= 0
    assert result["settings"]["tuned"].startswith("glibc.malloc.")
