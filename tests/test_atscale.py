"""tools/atscale.py, the at-scale runs: their definitions, the nested random stages, the adversarial photos, bad input.

The runs themselves read the project's ImageNet sample, which no test may need; these tests use
the bundled photos written to a folder.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import igospp
from igospp.methods import REGISTRY
from igospp.studies.benchmark import load_records

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("atscale", ROOT / "tools" / "atscale.py")
atscale = importlib.util.module_from_spec(SPEC)
sys.modules["atscale"] = atscale            # its dataclasses look their module up
SPEC.loader.exec_module(atscale)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("photos")
    for name, image in igospp.sample_images().items():
        Image.fromarray(image).save(out / f"{name}.png")
    return out


def test_every_run_names_registered_methods_and_models():
    for name, run in atscale.RUNS.items():
        assert run.model in igospp.models.MODELS, name
        assert set(run.methods) <= set(REGISTRY), name
        assert all(1 <= r <= 224 for r in run.resolutions), name
    assert atscale.RUNS["table1_lite0"].methods == ("igospp", "igos", "gradcam", "ig", "rise")


def test_stages_are_nested_random_subsets(folder):
    """--photos K takes the first K of one seeded order: each stage holds the previous one."""
    stages = [[r.name for r in igospp.image_folder(folder, n=k, seed=0)] for k in (3, 6, 10)]
    assert set(stages[0]) < set(stages[1]) < set(stages[2])
    assert stages[0] != [r.name for r in igospp.image_folder(folder)][:3]     # not the first files by name


def test_adversarial_photos_are_written_once_and_fool_the_model(folder, tmp_path):
    out = atscale.make_adversarial(folder, tmp_path / "adv", "efficientnet_lite0", 2, device="cpu")
    written = sorted(out.iterdir())
    assert [p.suffix for p in written] == [".png", ".png"]
    before = [p.stat().st_mtime_ns for p in written]
    atscale.make_adversarial(folder, out, "efficientnet_lite0", 2, device="cpu")    # kept, not redone
    assert [p.stat().st_mtime_ns for p in written] == before
    bundle = igospp.load_model("efficientnet_lite0", device="cpu")
    for p in written:
        image = np.asarray(Image.open(p))
        assert image.shape == (224, 224, 3) and image.dtype == np.uint8
        (top, *_), = bundle.top_k(bundle.preprocess(image), 1)
        assert top[0] == atscale.ATTACK["target_class"]                     # after the 8-bit rounding


def test_a_run_writes_records_summarize_reads(folder, tmp_path, monkeypatch):
    monkeypatch.setitem(atscale.RUNS, "tiny", atscale.Run("a test", "efficientnet_lite0", ("gradcam",), (7,)))
    assert atscale.main(["tiny", "--images", str(folder), "--photos", "2", "--out", str(tmp_path / "run")]) == 0
    records = load_records(tmp_path / "run")
    assert [r["method"] for r in records] == ["gradcam", "gradcam"] and all(r["n_images"] == 2 for r in records)


def test_threads_are_the_processes_and_recorded(folder, tmp_path, monkeypatch):
    monkeypatch.setitem(atscale.RUNS, "tiny", atscale.Run("a test", "efficientnet_lite0", ("gradcam",), (7,)))
    before = torch.get_num_threads()
    try:
        atscale.main(["tiny", "--images", str(folder), "--photos", "1", "--out", str(tmp_path), "--threads", "1"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert [r["versions"]["cpu_threads"] for r in load_records(tmp_path)] == ["1"]


@pytest.mark.parametrize("argv, message", [
    (["table9"], "run must be one of table1_lite0"),
    (["table1_lite0", "--images", "/no/such/folder"], "--images '/no/such/folder' is not a folder"),
    (["table1_lite0", "--photos", "0"], "--photos must be a positive number of photos, got 0"),
    (["table1_lite0", "--threads", "0"], "--threads must be a positive number of threads, got 0"),
])
def test_bad_input_is_named(argv, message, folder):
    if "--images" not in argv:
        argv = [*argv, "--images", str(folder)]
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "atscale.py"), *argv], capture_output=True, text=True)
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_list_counts_the_records(capsys):
    assert atscale.main(["--list"]) == 0
    assert set(atscale.RUNS) <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}


def test_the_gpu_script_parses_and_names_a_run():
    text = (ROOT / "benchmarks" / "gpu_atscale.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu_atscale.sh")]).returncode == 0
    assert "table1_lite0" in text and "--batch-images" in text
