"""The igospp command line, end to end on bundled photos with small iteration counts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import igospp
from igospp.cli import main

FAST = ["--iterations", "1", "--ig-steps", "2"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, image in igospp.sample_images(["chelsea", "coffee"]).items():
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


def test_explain_writes_every_output(photos, tmp_path, capsys):
    rc = main(["explain", str(photos / "chelsea.png"), "--resolution", "7", "--out", str(tmp_path), *FAST])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{photos / 'chelsea.png'}: Egyptian cat (p=0.") and "igospp7: deletion" in line
    stem = tmp_path / "chelsea_igospp7"
    for suffix in ("_overlay.png", "_heatmap.png", "_curves.png", "_saliency.npy", "_mask.npy", ".json"):
        assert Path(f"{stem}{suffix}").is_file(), suffix
    assert np.load(f"{stem}_mask.npy").shape == (7, 7)
    assert Image.open(f"{stem}_overlay.png").size == (224, 224)
    record = json.loads(Path(f"{stem}.json").read_text())
    assert record["target"]["name"] == "Egyptian cat" and 0 < record["target"]["probability"] < 1
    assert record["protocol"]["name"] == "igospp" and record["config"]["iterations"] == 1
    assert 0 <= record["deletion_auc"] <= 1 and record["legacy_insertion_auc"] is not None
    assert record["timings"]["method_seconds"] > 0 and record["stats"]["backward_images"] == 1 * 4 * 2
    assert record["versions"]["torch"] and record["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_explain_targets_by_index_and_name(photos, tmp_path, capsys):
    assert main(["explain", str(photos / "chelsea.png"), "--method", "gradcam", "--target", "tabby",
                 "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "chelsea_gradcam.json").read_text())["target"]["index"] == 281
    assert main(["explain", str(photos / "coffee.png"), "--method", "igos", "--resolution", "4", "--target", "967",
                 "--out", str(tmp_path), *FAST]) == 0
    assert "espresso" in capsys.readouterr().out
    assert main(["explain", str(photos / "chelsea.png"), "--target", "cat", "--out", str(tmp_path)]) == 2
    assert "matches several classes" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["explain", "missing.png"], "image 'missing.png' does not exist"),
    (["explain", "{photo}", "--method", "lime"], "unknown method 'lime'"),
    (["explain", "{photo}", "--model", "alexnet"], "unknown model 'alexnet'"),
    (["explain", "{photo}", "--resolution", "300"], "larger than the model's input"),
    (["explain", "{photo}", "--resolution", "0"], "--resolution must be a positive integer"),
    (["explain", "{photo}", "--target", "1000"], "out of range"),
    (["evaluate", "--images", "{folder}", "--shard", "2/2"], "0 <= K < N"),
    (["evaluate", "--images", "{folder}", "--methods", "igospp,lime"], "unknown method"),
    (["evaluate", "--images", "{folder}", "--resolutions", "7,x"], "comma-separated integers"),
    (["evaluate", "--images", "{folder}", "--resolutions", "500"], "exceed the model's input size"),
    (["evaluate", "--images", "nowhere"], "is not a folder"),
    (["summarize", "nowhere"], "no records"),
])
def test_errors_are_one_line_with_status_2(photos, args, message, capsys):
    args = [a.format(photo=photos / "chelsea.png", folder=photos) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("igospp: error:") and message in err and "\n" not in err


def test_console_script_and_no_gpu(photos):
    exe = Path(sys.executable).with_name("igospp")
    if not exe.exists():
        pytest.skip("the igospp console script is not installed in this environment")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"igospp {igospp.__version__}"
    if not igospp.models.torch.cuda.is_available():
        out = subprocess.run([str(exe), "explain", str(photos / "chelsea.png"), "--device", "cuda"],
                             capture_output=True, text=True)
        assert out.returncode == 2 and "CUDA is not available" in out.stderr and "Traceback" not in out.stderr


def test_evaluate_resumes_shards_and_summarizes(photos, tmp_path, capsys):
    args = ["evaluate", "--images", str(photos), "--methods", "igospp,gradcam,rise", "--resolutions", "4",
            "--rise-masks", "8", "--no-progress", *FAST]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "wrote 6 new record(s)" in out and "| iGOS++ | 4x4 | 2 |" in out and "| Grad-CAM | 7x7 | 2 |" in out
    assert "| RISE | 224x224 | 2 |" in out and "protocol: igospp" in out
    records = sorted((tmp_path / "run" / "records").glob("*.json"))
    assert len(records) == 6
    rec = json.loads(records[0].read_text())
    assert {"deletion_auc", "insertion_auc", "seconds", "protocol", "curves", "target", "versions"} <= set(rec)
    csv = (tmp_path / "run" / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("# model: efficientnet_lite0") and csv[1].startswith("method,name,resolution,n")
    assert len(csv) == 2 + 3

    records[0].unlink()                                                   # an interrupted run resumes
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert "wrote 1 new record(s)" in capsys.readouterr().out

    shard_args = ["evaluate", "--images", str(photos), "--methods", "gradcam", "--no-progress",
                  "--out", str(tmp_path / "sharded")]
    assert main([*shard_args, "--shard", "0/2"]) == 0 and main([*shard_args, "--shard", "1/2"]) == 0
    assert "once every shard has finished" in capsys.readouterr().out
    assert main(["summarize", str(tmp_path / "sharded")]) == 0
    assert "| Grad-CAM | 7x7 | 2 |" in capsys.readouterr().out


def test_shard_auto_reads_torchrun_and_slurm(monkeypatch):
    from igospp.cli import _shard

    for var in ("WORLD_SIZE", "RANK", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var, raising=False)
    assert _shard("auto") == (0, 1) and _shard("3/8") == (3, 8)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "6")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "5")
    assert _shard("auto") == (1, 4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert _shard("auto") == (1, 2)


def test_mask_keeps_its_plain_gradient_when_ig_steps_is_given():
    from igospp.evaluation import Job, _options

    assert "ig_steps" not in _options(Job("mask", 28), {"ig_steps": 5, "iterations": 3})
    assert _options(Job("igos", 28), {"ig_steps": 5, "iterations": 3}) == {"ig_steps": 5, "iterations": 3}
    assert _options(Job("rise", None), {"rise_masks": 10, "ig_steps": 5}) == {"n_masks": 10}


def test_summaries_refuse_mixed_protocols(tmp_path):
    from igospp.evaluation import summarize

    a = {"model": "m", "protocol": {"name": "igospp"}, "method": "igos", "resolution": "7", "deletion_auc": 0.1,
         "insertion_auc": 0.5, "seconds": 1.0, "images_dir": "x", "device": "cpu"}
    with pytest.raises(ValueError, match="not comparable"):
        summarize([a, dict(a, protocol={"name": "rise"})])
    one = summarize([a, dict(a, deletion_auc=0.3)])
    assert one.rows[0]["deletion_mean"] == pytest.approx(0.2) and one.rows[0]["deletion_se"] == pytest.approx(0.1)


def test_atomic_writes_leave_ordinary_files_and_no_temporaries(tmp_path):
    import os
    import stat

    from igospp.storage import read_json, write_json

    path = write_json(tmp_path / "sub" / "r.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert read_json(path) == {"a": 1} and read_json(tmp_path / "missing.json") is None
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_ablations_are_igospp_with_one_field_replaced_and_bundled_photos_need_no_folder(tmp_path, capsys):
    from igospp.evaluation import ABLATIONS, Job, _options, jobs

    assert {j.key for j in jobs(["igospp_nobtv", "gradcam"], [7, 28])} == {"igospp_nobtv7", "igospp_nobtv28",
                                                                         "gradcam"}
    with pytest.raises(ValueError, match="unknown method.*igospp_nonoise"):
        jobs(["igospp_nothing"], [7])
    assert _options(Job("mask", 28), {"iterations": 3, "mask_iterations": 50}) == {"iterations": 50}
    assert _options(Job("igos", 28), {"iterations": 3, "mask_iterations": 50}) == {"iterations": 3}
    args = ["evaluate", "--images", "bundled", "--n", "1", "--methods", ",".join(ABLATIONS), "--resolutions", "4",
            "--no-progress", "--out", str(tmp_path), *FAST]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("iGOS++ (no noise)", "iGOS++ (fix step size)", "iGOS++ (no BTV)"):
        assert f"| {name} | 4x4 | 1 |" in out
    assert len(list((tmp_path / "bundled").glob("*.png"))) == len(igospp.SAMPLE_IMAGES)
    configs = {r["method"]: r["method_config"] for r in
               (json.loads(p.read_text()) for p in (tmp_path / "records").glob("*.json"))}
    base = igospp.Config.igospp(4, iterations=1, ig_steps=2).to_dict()
    for name, (_, changes) in ABLATIONS.items():
        differ = {k for k in base if configs[name][k] != base[k] and k != "seed"}
        assert differ == set(changes), name
    assert main(["evaluate", "--images", "nowhere", "--methods", "gradcam"]) == 2
    assert "'bundled' for the bundled photos" in capsys.readouterr().err


def test_paper_tables_render_beside_reproduced_rows():
    import igospp.paper as paper

    row = dict(method="gradcam", name="Grad-CAM", resolution="7x7", n=1, deletion_mean=0.2,
               deletion_se=float("nan"), insertion_mean=0.5, insertion_se=float("nan"))
    last = paper.side_by_side([row], paper.TABLE2).splitlines()[-1]
    assert last == "| Grad-CAM | 7x7 | 1 | -- | 0.2000 | 0.1527 | -- | 0.5000 | 0.5938 |"    # matched by method alone
    row = dict(row, method="mask", name="Mask")
    assert "| 0.1753 |" in paper.side_by_side([row], paper.TABLE2, coarse={7: 14})
    assert "| -- |" in paper.side_by_side([row], paper.TABLE2)
    # Table 3 repeats Table 1's I-GOS and iGOS++ rows.
    assert all(paper.TABLE3[k] == paper.TABLE1[k] for k in paper.TABLE3 if k in paper.TABLE1)
