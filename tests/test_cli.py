"""The igospp command line: end to end on bundled photos with the real model and tiny settings,
and its plumbing (flags, targets, shards, errors) on a tiny model.

The runner behind ``igospp evaluate`` (records, resuming, shards, summaries) is tested in
test_benchmark.py, the atomic writes in test_storage.py and the paper's tables in test_paper.py.
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import igospp
from igospp.cli import build_parser, main
from igospp.methods import REGISTRY, MethodOptions
from igospp.studies import benchmark
from igospp.studies.benchmark import DEFAULT_METHODS, RECORD_KEYS

from .conftest import tiny_bundle

FAST = ["--iterations", "1", "--ig-steps", "2", "--rise-masks", "4"]


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


def test_batch_size_reaches_the_method_and_the_metric(photos, tmp_path, monkeypatch, tiny):
    seen = []
    metric = benchmark.insertion_deletion

    def spy(*args, **kwargs):
        seen.append(kwargs["batch_size"])
        return metric(*args, **kwargs)

    monkeypatch.setattr(benchmark, "insertion_deletion", spy)
    assert main(["evaluate", "--images", str(photos), "--methods", "mask,rise", "--resolutions", "4", *FAST,
                 "--batch-size", "3", "--no-progress", "--out", str(tmp_path)]) == 0
    assert seen == [3] * 4
    records = [json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json")]
    assert [r["method_config"]["batch_size"] for r in records] == [3] * 4
    assert main(["explain", str(photos / "chelsea.png"), "--method", "rise", *FAST, "--batch-size", "2",
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


# ----------------------------------------------------------------------------- bad inputs: one line, status 2
EXPLAIN = ["explain", "{photo}", "--out", "{out}"]
EVALUATE = ["evaluate", "--images", "{folder}", "--methods", "rise", "--no-progress", "--out", "{out}"]


@pytest.mark.parametrize("argv, message", [
    (["explain", "missing.png"], "image 'missing.png' does not exist"),
    ([*EXPLAIN, "--method", "lime"], "--method must be one of ('gradcam', "),
    ([*EXPLAIN, "--model", "alexnet"], "--model must be one of ('efficientnet_lite0', 'resnet50', 'vgg19'), got "
                                       "'alexnet'. Any timm model works too"),
    ([*EXPLAIN, "--device", "gpu"], "--device: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
    ([*EXPLAIN, "--resolution", "0"], "--resolution must be a positive integer, got 0"),
    ([*EXPLAIN, "--resolution", "33"], "--resolution must be an integer >= 1 and <= 32, got 33"),
    ([*EXPLAIN, "--target", "5"], "--target must be an integer >= 0 and <= 4, got 5"),
    ([*EXPLAIN, "--target", "-1"], "--target must be an integer >= 0 and <= 4, got -1"),
    ([*EXPLAIN, "--target", "dog"], "--target 'dog' matches no class name"),
    ([*EXPLAIN, "--iterations", "0"], "--iterations must be a positive integer, got 0"),
    ([*EXPLAIN, "--iterations", "x"], "argument --iterations: invalid int value: 'x'"),
    ([*EXPLAIN, "--batch-size", "-2"], "--batch-size must be a positive integer, got -2"),
    ([*EXPLAIN, "--seed", "-1"], "--seed must be an integer >= 0, got -1"),
    ([*EXPLAIN, "--protocol", "auc"], "argument --protocol: invalid choice: 'auc'"),
    ([*EVALUATE, "--shard", "2/2"], "--shard K must be an integer >= 0 and <= 1, got 2"),
    ([*EVALUATE, "--shard", "0/0"], "--shard N must be a positive integer, got 0"),
    ([*EVALUATE, "--shard", "half"], "--shard must look like K/N (e.g. 0/4) or be 'auto', got 'half'"),
    ([*EVALUATE, "--methods", "igospp,lime"], "--methods must be one of ('gradcam', "),
    ([*EVALUATE, "--methods", ","], "--methods must list at least one of gradcam, ig, rise"),
    ([*EVALUATE, "--resolutions", "7,x"], "--resolutions must be comma-separated integers, got '7,x'"),
    ([*EVALUATE, "--resolutions", "0"], "--resolutions must be a positive integer, got 0"),
    ([*EVALUATE, "--methods", "mask", "--resolutions", "64"],
     "--resolutions must be an integer >= 1 and <= 32, got 64"),
    ([*EVALUATE, "--n", "0"], "--n must be a positive integer, got 0"),
    ([*EVALUATE, "--batch-images", "0"], "--batch-images must be a positive integer, got 0"),
    ([*EVALUATE, "--rise-masks", "0"], "--rise-masks must be a positive integer, got 0"),
    ([*EVALUATE, "--mask-iterations", "0"], "--mask-iterations must be a positive integer, got 0"),
    (["evaluate", "--images", "nowhere"], "--images 'nowhere' is not a folder (or 'bundled' for the bundled photos)"),
    (["evaluate"], "the following arguments are required: --images"),
    (["summarize", "nowhere"], "no records under 'nowhere'"),
    (["compare"], "argument command: invalid choice: 'compare'"),
])
def test_bad_inputs_print_one_line_naming_the_flag_and_exit_2(photos, tmp_path, capsys, tiny, argv, message):
    argv = [a.format(photo=photos / "chelsea.png", folder=photos, out=tmp_path) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("igospp: error:") and message in err and "\n" not in err, err
    assert captured.out == "" and not list(tmp_path.iterdir())                 # nothing ran, nothing was written
