"""The igospp command line: end to end on bundled photos with the real model and tiny settings,
and its plumbing (flags, targets, shards, errors) on a tiny model.

The runner behind ``igospp evaluate`` (records, resuming, shards, summaries) is tested in
test_benchmark.py, the atomic writes in test_storage.py and the paper's tables in test_paper.py.
"""

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import igospp
from igospp import storage
from igospp.cli import build_parser, main
from igospp.methods import REGISTRY, MethodOptions
from igospp.studies.benchmark import DEFAULT_METHODS, RECORD_KEYS

from .conftest import tiny_bundle

FAST = ["--iterations", "1", "--ig-steps", "2"]                     # iGOS++'s settings, tiny


@pytest.fixture
def tiny(monkeypatch):
    """The command line loads the tiny model whatever ``--model`` names."""
    monkeypatch.setattr("igospp.cli.load_model", lambda name, device="auto": tiny_bundle())


# ----------------------------------------------------------------------------- end to end, the real model
def test_explain_writes_every_output(photos, tmp_path, capsys):
    rc = main(["explain", str(photos / "chelsea.png"), "--resolution", "4", "--out", str(tmp_path), *FAST])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{photos / 'chelsea.png'}: Egyptian cat (p=0.") and "igospp4: deletion" in line
    stem = tmp_path / "chelsea_igospp4"
    for suffix in ("_overlay.png", "_heatmap.png", "_curves.png", "_saliency.npy", "_mask.npy", ".json"):
        assert Path(f"{stem}{suffix}").is_file(), suffix
    assert np.load(f"{stem}_mask.npy").shape == (4, 4)
    assert Image.open(f"{stem}_overlay.png").size == (224, 224)
    record = json.loads(Path(f"{stem}.json").read_text())
    assert list(record) == list(RECORD_KEYS)                                   # the record of igospp evaluate
    assert record["target"] == dict(record["target"], index=285, name="Egyptian cat", top1=True)
    assert 0 < record["target"]["probability"] < 1 and record["resolution"] == "4"
    assert record["protocol"]["name"] == "igospp" and record["method_config"]["iterations"] == 1
    assert 0 <= record["deletion_auc"] <= 1 and record["legacy_insertion_auc"] is not None
    assert record["seconds"] > 0 and record["stats"]["backward_images"] == 1 * 4 * 2
    assert record["versions"]["torch"] and record["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert record["versions"]["glibc_tunables"] == os.environ.get("GLIBC_TUNABLES", "")   # as evaluate's records


def test_evaluate_and_summarize_print_the_table(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["evaluate", "--images", "bundled", "--n", "1", "--methods", "igospp", "--resolutions", "4", *FAST,
                 "--no-progress", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 new record(s)" in printed and "| iGOS++ | 4x4 | 1 |" in printed
    assert "model: efficientnet_lite0; protocol: igospp" in printed
    csv = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("# model: efficientnet_lite0") and csv[1].startswith("method,name,resolution,n")
    assert len(csv) == 2 + 1
    assert main(["summarize", out]) == 0
    assert "| iGOS++ | 4x4 | 1 |" in capsys.readouterr().out


def test_console_script_and_no_gpu(photos):
    exe = Path(sys.executable).with_name("igospp")
    if not exe.exists():
        pytest.skip("the igospp console script is not installed in this environment")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"igospp {igospp.__version__}"
    if not torch.cuda.is_available():
        out = subprocess.run([str(exe), "explain", str(photos / "chelsea.png"), "--device", "cuda"],
                             capture_output=True, text=True)
        assert out.returncode == 2 and "--device" in out.stderr and "CUDA is not available" in out.stderr
        assert "Traceback" not in out.stderr


# ----------------------------------------------------------------------------- the flags, on the tiny model
def test_method_flags_are_the_fields_of_method_options():
    parser = build_parser()
    for command in (["explain", "x.png"], ["evaluate", "--images", "x"]):
        for field in dataclasses.fields(MethodOptions):
            args = parser.parse_args([*command, "--" + field.name.replace("_", "-"), "5"])
            assert getattr(args, field.name) == 5, (command[0], field.name)
    assert parser.parse_args(["evaluate", "--images", "x"]).methods == ",".join(DEFAULT_METHODS)
    assert set(DEFAULT_METHODS) <= set(REGISTRY)


def test_explain_targets_by_index_and_name(photos, tmp_path, capsys, tiny):
    args = [str(photos / "chelsea.png"), "--method", "rise", "--rise-masks", "4", "--out", str(tmp_path)]
    assert main(["explain", *args, "--target", "tabby"]) == 0                    # an exact name
    assert json.loads((tmp_path / "chelsea_rise.json").read_text())["target"]["index"] == 0
    assert main(["explain", *args, "--target", "esp"]) == 0                      # a unique substring
    assert main(["explain", *args, "--target", "4"]) == 0                        # an index
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1].split(" (")[0] for line in printed] == ["tabby", "espresso", "cup"]
    assert main(["explain", *args, "--target", "cat"]) == 2
    assert "--target 'cat' matches several classes ('tiger cat', 'Egyptian cat')" in capsys.readouterr().err


def test_batch_size_reaches_the_method_and_the_metric(photos, tmp_path, metric_batch_sizes, tiny):
    seen = metric_batch_sizes
    assert main(["evaluate", "--images", str(photos), "--methods", "mask,rise", "--resolutions", "4",
                 "--iterations", "1", "--rise-masks", "4", "--batch-size", "3", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    assert seen == [3] * 4
    records = [json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json")]
    assert [r["method_config"]["batch_size"] for r in records] == [3] * 4
    assert main(["explain", str(photos / "chelsea.png"), "--method", "rise", "--rise-masks", "4", "--batch-size", "2",
                 "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "chelsea_rise.json").read_text())
    assert seen[-1] == 2 and record["method_config"]["batch_size"] == 2


@pytest.mark.parametrize("env, printed, records", [
    ({}, "| RISE | 32x32 | 2 |", 2),
    ({"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "5"}, "shard 1/4 done", 1),
    ({"WORLD_SIZE": "2", "RANK": "1", "SLURM_ARRAY_TASK_COUNT": "4"}, "shard 1/2 done", 1),   # torchrun first
])
def test_shard_auto_reads_torchrun_and_slurm(photos, tmp_path, capsys, monkeypatch, tiny, env, printed, records):
    for var in ("WORLD_SIZE", "RANK", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert main(["evaluate", "--images", str(photos), "--methods", "rise", "--rise-masks", "4", "--shard", "auto",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    assert printed in capsys.readouterr().out
    assert len(list((tmp_path / "records").glob("*.json"))) == records


def test_explain_reads_a_16_bit_image_as_its_8_bit_twin(tmp_path, capsys, tiny):
    grey = np.random.default_rng(0).integers(0, 256, size=(40, 48)).astype(np.uint16)
    Image.fromarray(grey.astype(np.uint8)).save(tmp_path / "grey8.png")
    Image.fromarray(grey * 257).save(tmp_path / "grey16.png")                 # PIL mode I;16, the same picture
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "grey8.png"), str(tmp_path / "grey16.png"), "--method", "rise",
                 "--rise-masks", "4", "--out", str(out)]) == 0
    eight, sixteen = (json.loads((out / f"{name}_rise.json").read_text()) for name in ("grey8", "grey16"))
    assert sixteen["target"] == eight["target"] and sixteen["deletion_auc"] == eight["deletion_auc"]


def test_summarize_tests_the_papers_comparisons(photos, tmp_path, capsys, tiny):
    out = tmp_path / "eval"
    assert main(["evaluate", "--images", str(photos), "--methods", "igospp,igos,rise", "--resolutions", "4",
                 "--rise-masks", "4", *FAST, "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["summarize", str(out), "--paper", "table5", "--split-confidence", "0.5"]) == 0
    printed = capsys.readouterr().out
    written = (out / "comparisons.md").read_text()
    assert written in printed and "Paired differences with the paper's Table 5" in written
    # the tiny model at 4 x 4: no paper value at that resolution, so every comparison says so
    assert "**all images** (2 images): 4 comparisons, 0 reproduced, 0 contradicted, 0 inconclusive, 4 without a " \
           "paper value." in written
    assert written.count("| no paper value |") == 3 * 4                       # all images, then each side
    assert "| Mxy - Mx | 4 | deletion |" in written and "**clean-image probability > 0.5**" in written
    assert main(["summarize", str(out), "--paper", "table1"]) == 0
    written = (out / "comparisons.md").read_text()
    assert "| iGOS++ - I-GOS | 4 | insertion |" in written and "| iGOS++ - RISE | 4 vs 224 |" in written


# ----------------------------------------------------------------------------- output folders and OS errors
def test_summarize_proves_its_folder_writable_before_writing(photos, tmp_path, capsys, monkeypatch, tiny):
    out = tmp_path / "eval"
    assert main(["evaluate", "--images", str(photos), "--methods", "rise", "--rise-masks", "4", "--no-progress",
                 "--out", str(out)]) == 0
    for name in ("summary.md", "summary.csv"):
        (out / name).unlink()
    capsys.readouterr()
    mkstemp = storage.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):                                # a read-only mount, even for root
        if Path(dir) == out:
            raise PermissionError(errno.EROFS, "Read-only file system")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(storage.tempfile, "mkstemp", read_only)
    assert main(["summarize", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"igospp: error: summarize's folder {str(out)!r} is not writable (Read-only file " \
                           "system); give a folder you can write to.\n"
    assert captured.out == "" and sorted(p.name for p in out.iterdir()) == ["records"]


def test_an_os_error_during_the_work_is_one_line_and_status_2(photos, tmp_path, capsys, tiny):
    out = tmp_path / "eval"
    (out / "summary.md").mkdir(parents=True)                                   # the summary cannot replace it
    assert main(["evaluate", "--images", str(photos), "--methods", "rise", "--rise-masks", "4", "--no-progress",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("igospp: error: [Errno 21] Is a directory") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_evaluate_refuses_records_made_with_other_settings_unless_overwrite(photos, tmp_path, capsys, tiny):
    run = ["evaluate", "--images", str(photos), "--methods", "rise", "--no-progress", "--out", str(tmp_path)]
    assert main([*run, "--rise-masks", "4"]) == 0
    assert "wrote 2 new record(s), reused 0 (records under " in capsys.readouterr().out
    assert main([*run, "--rise-masks", "4"]) == 0
    assert "wrote 0 new record(s), reused 2 (records under " in capsys.readouterr().out
    assert main([*run, "--rise-masks", "5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "(igospp evaluate --overwrite)" in captured.err
    assert main([*run, "--rise-masks", "5", "--overwrite"]) == 0
    assert "wrote 2 new record(s), reused 0 (records under " in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad inputs: one line, status 2
# Placeholders: {photo} a photo; {given} a folder holding a copy of it as chelsea.png, a truncated copy
# broken.png, a file notes.txt and a run folder run/ whose records/ is a file; {out} a fresh output folder.
# Environment variables per row.
EXPLAIN = ["explain", "{photo}", "--out", "{out}"]
EVALUATE = ["evaluate", "--images", "{folder}", "--methods", "rise", "--no-progress", "--out", "{out}"]
SHARD_VARIABLES = ("WORLD_SIZE", "RANK", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN")
ON_LINUX = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
NO_MPS = pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's MPS")


def bad(argv, message, marks=(), **env):
    """One row of the table: the command line, a fragment of its one-line error, environment variables."""
    return pytest.param(argv, message, env, marks=marks, id=message[:50])


BAD_INPUTS = [
    bad(["explain", "missing.png"], "image 'missing.png' does not exist"),
    bad(["explain", "{given}"], "is a folder, not an image file"),
    bad(["explain", "{given}/broken.png"], "/broken.png' is truncated or corrupt and cannot be decoded in full"),
    bad([*EXPLAIN, "--method", "lime"], "--method must be one of ('gradcam', "),
    bad([*EXPLAIN, "--model", "alexnet"], "--model must be one of ('efficientnet_lite0', 'efficientnet_lite2', "
                                          "'resnet50', 'vgg19'), got 'alexnet'. Any timm model works too"),
    bad([*EXPLAIN, "--device", "gpu"], "--device: device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    bad([*EXPLAIN, "--device", "mps"], "--device: device 'mps' was asked for but ", marks=NO_MPS),
    bad([*EXPLAIN, "--device", "cuda:99"], "--device: device 'cuda:99' "),
    bad([*EXPLAIN, "--resolution", "0"], "--resolution must be a positive integer, got 0"),
    bad([*EXPLAIN, "--resolution", "33"], "--resolution must be an integer >= 1 and <= 32, got 33"),
    bad([*EXPLAIN, "--target", "5"], "--target must be an integer >= 0 and <= 4, got 5"),
    bad([*EXPLAIN, "--target", "-1"], "--target must be an integer >= 0 and <= 4, got -1"),
    bad([*EXPLAIN, "--target", "dog"], "--target 'dog' matches no class name"),
    bad([*EXPLAIN, "--iterations", "0"], "--iterations must be a positive integer, got 0"),
    bad([*EXPLAIN, "--iterations", "x"], "argument --iterations: invalid int value: 'x'"),
    bad([*EXPLAIN, "--batch-size", "-2"], "--batch-size must be a positive integer, got -2"),
    bad([*EXPLAIN, "--seed", "-1"], "--seed must be an integer >= 0 and <= 9223372036854775807, got -1"),
    bad([*EXPLAIN, "--protocol", "auc"], "argument --protocol: invalid choice: 'auc'"),
    # two images that would write the same outputs (case 1)
    bad(["explain", "a/x.png", "b/x.png"], "a/x.png and b/x.png would both write x_igospp28* in --out 'igospp-out'; "
                                           "pass them in separate runs (with different --out) or rename one."),
    bad(["explain", "{photo}", "{given}/chelsea.png", "--method", "rise", "--out", "{out}"],
        "/chelsea.png would both write chelsea_rise* in --out '"),
    bad(["explain", "a/x.png", "b/X.jpg", "--resolution", "7"], "would both write X_igospp7*"),  # case-insensitive
    # output folders (case 10): checked before any work
    bad([*EXPLAIN, "--out", "{given}/notes.txt"], "/notes.txt' is a file, not a folder; give a folder"),
    bad([*EXPLAIN, "--out", "{given}/notes.txt/sub"], "/notes.txt/sub' cannot be created: '"),
    bad([*EXPLAIN, "--out", "/proc/igospp_test"], "--out '/proc/igospp_test' cannot be created (No such file or "
                                                  "directory); give a folder you can write to.", marks=ON_LINUX),
    bad([*EVALUATE, "--out", "{given}/notes.txt"], "--out '"),
    bad([*EVALUATE, "--out", "/proc/igospp_test"], "--out '/proc/igospp_test' cannot be created", marks=ON_LINUX),
    bad([*EVALUATE, "--out", "{given}/run"], "--out's records folder '"),
    # method settings that no chosen method reads (case 11)
    bad([*EXPLAIN, "--method", "ig", "--ig-steps", "5"],
        "--ig-steps is given but --method ig does not use it (Integrated Gradients' steps are --ig-path-steps); it "
        "is used by igos, insertion, naive, igospp_nonoise, igospp_fixedstep, igospp_nobtv, igospp. Drop --ig-steps "
        "or choose one of those methods."),
    bad([*EXPLAIN, "--method", "ig", "--ig-steps", "0"], "--ig-steps must be a positive integer, got 0"),
    bad([*EXPLAIN, "--ig-path-steps", "5"], "--ig-path-steps is given but --method igospp does not use it (the "
                                            "integration steps of I-GOS, iGOS++ and their variants are --ig-steps)"),
    bad([*EXPLAIN, "--method", "gradcam", "--seed", "1"], "--seed is given but --method gradcam does not use it; "
                                                          "it is used by rise, mask, "),
    bad([*EXPLAIN, "--method", "rise", "--resolution", "7"], "--resolution is given but --method rise does not use "
                                                             "it (its resolution is fixed by the method)"),
    bad([*EVALUATE, "--iterations", "2"], "--iterations is given but --methods rise does not use it; it is used by "
                                          "mask, igos"),
    bad([*EVALUATE, "--methods", "igospp,ig", "--mask-iterations", "2"],
        "--mask-iterations is given but --methods igospp,ig does not use it (the other optimization methods' "
        "iterations are --iterations); it is used by mask."),
    bad([*EVALUATE, "--methods", "gradcam,rise", "--resolutions", "7"], "--resolutions is given but --methods "
                                                                        "gradcam,rise does not use it"),
    bad([*EVALUATE, "--methods", "gradcam", "--seed", "3"], "--seed is given but --methods gradcam does not use it"),
    # evaluate's own flags, shards and their environment (case 15)
    bad([*EVALUATE, "--device", "mps"], "--device: device 'mps' was asked for but ", marks=NO_MPS),
    bad([*EVALUATE, "--shard", "2/2"], "--shard K must be an integer >= 0 and <= 1, got 2"),
    bad([*EVALUATE, "--shard", "0/0"], "--shard N must be a positive integer, got 0"),
    bad([*EVALUATE, "--shard", "half"], "--shard must look like K/N (e.g. 0/4) or be 'auto', got 'half'"),
    bad([*EVALUATE, "--shard", "auto"], "--shard auto: the environment variable WORLD_SIZE must be an integer, "
                                        "got 'two'.", WORLD_SIZE="two"),
    bad([*EVALUATE, "--shard", "auto"], "--shard auto: the environment variable RANK must be an integer, got '1.0'.",
        WORLD_SIZE="2", RANK="1.0"),
    bad([*EVALUATE, "--shard", "auto"], "--shard auto: the environment variable SLURM_ARRAY_TASK_ID must be an "
                                        "integer, got ''.", SLURM_ARRAY_TASK_COUNT="4", SLURM_ARRAY_TASK_ID=""),
    bad([*EVALUATE, "--shard", "auto"], "--shard auto: the environment variable SLURM_ARRAY_TASK_COUNT must be an "
                                        "integer, got '4x'.", SLURM_ARRAY_TASK_COUNT="4x", SLURM_ARRAY_TASK_ID="1"),
    bad([*EVALUATE, "--shard", "auto"], "--shard auto: WORLD_SIZE must be a positive integer, got 0",
        WORLD_SIZE="0"),
    bad([*EVALUATE, "--methods", "igospp,lime"], "--methods must be one of ('gradcam', "),
    bad([*EVALUATE, "--methods", ","], "--methods must list at least one of gradcam, ig, rise"),
    bad([*EVALUATE, "--methods", "mask", "--resolutions", "7,x"],
        "--resolutions must be comma-separated integers, got '7,x'"),
    bad([*EVALUATE, "--methods", "mask", "--resolutions", "0"], "--resolutions must be a positive integer, got 0"),
    bad([*EVALUATE, "--methods", "mask", "--resolutions", "64"],
        "--resolutions must be an integer >= 1 and <= 32, got 64"),
    bad([*EVALUATE, "--n", "0"], "--n must be a positive integer, got 0"),
    bad([*EVALUATE, "--batch-images", "0"], "--batch-images must be a positive integer, got 0"),
    bad([*EVALUATE, "--rise-masks", "0"], "--rise-masks must be a positive integer, got 0"),
    bad([*EVALUATE, "--mask-iterations", "0"], "--mask-iterations must be a positive integer, got 0"),
    bad(["evaluate", "--images", "nowhere"], "--images 'nowhere' is not a folder (or 'bundled' for the bundled "
                                             "photos)"),
    bad(["evaluate"], "the following arguments are required: --images"),
    bad(["summarize", "nowhere"], "no records under 'nowhere'"),
    bad(["summarize", "{given}", "--paper", "table4"], "--paper must be one of ('table1', 'table2', 'table3', "),
    bad(["summarize", "{given}", "--paper", "table1", "--split-confidence", "1.5"], "--split-confidence must be"),
    bad(["summarize", "{given}", "--split-confidence", "0.5"], "--split-confidence splits the comparisons of --paper"),
    bad(["compare"], "argument command: invalid choice: 'compare'"),
]


@pytest.mark.parametrize("argv, message, env", BAD_INPUTS)
def test_bad_inputs_print_one_line_naming_the_flag_and_exit_2(photos, tmp_path, capsys, monkeypatch, tiny, argv,
                                                              message, env):
    given, cwd, out = tmp_path / "given", tmp_path / "cwd", tmp_path / "out"
    (given / "run").mkdir(parents=True)
    (given / "run" / "records").write_text("a file where the records folder goes")
    (given / "notes.txt").write_text("a file")
    shutil.copy(photos / "chelsea.png", given)
    (given / "broken.png").write_bytes((photos / "chelsea.png").read_bytes()[:2000])    # a download cut short
    before = sorted((p.relative_to(given), p.is_file() and p.stat().st_mtime_ns) for p in given.rglob("*"))
    cwd.mkdir()
    monkeypatch.chdir(cwd)                                                     # default --out folders land here
    for var in SHARD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    argv = [a.format(photo=photos / "chelsea.png", folder=photos, given=given, out=out) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("igospp: error:") and message in err and "\n" not in err, err
    assert captured.out == ""                                                  # nothing ran ...
    assert not list(cwd.iterdir()) and not out.exists()                        # ... nothing was written
    assert sorted((p.relative_to(given), p.is_file() and p.stat().st_mtime_ns) for p in given.rglob("*")) == before
