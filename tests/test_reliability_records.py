"""Reliability of evaluate's records (issue 13): no lost, stale, merged or silently dropped record.

* records are keyed by the image's path under the folder, not by its stem (case 1);
* a record is reused only with this run's settings and image content, else a clear error before
  any work, or ``overwrite=True`` (case 2);
* an image that cannot be loaded is skipped, reported and counted (case 8);
* invalid records are named in a warning, left out of summaries and recomputed; summaries say
  how many images each row averages (case 9);
* (image, method) pairs are claimed, so runs on one folder share the work (case 12);
* properties: garbage files never crash evaluate; a run killed at a random point and resumed
  gives the records of an uninterrupted run; two concurrent runs compute each record once.

The tiny five-class model of conftest.py and tiny settings keep each test to seconds; the
kill and concurrency tests run evaluate in subprocesses (tests/evaluate_worker.py).
"""

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import igospp
from igospp.methods import MethodOptions
from igospp.models import ModelBundle
from igospp.studies import benchmark
from igospp.studies.benchmark import (
    PERFORMANCE_ONLY,
    InvalidRecordWarning,
    SettingsMismatchError,
    evaluate,
    load_records,
    load_skipped,
    record_problem,
    summarize,
)

from .conftest import CLASSES, tiny_bundle
from .evaluate_worker import FAST as WORKER_FAST

FAST = MethodOptions(iterations=1, ig_steps=2, rise_masks=4, ig_path_steps=2)
ARGS = dict(model=tiny_bundle(), methods=["rise", "igospp"], resolutions=[4], options=FAST, progress=False)
TIMINGS = ("seconds", "metric_seconds")
WORKER = Path(__file__).with_name("evaluate_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def record_name(key, job):
    """``<stem>-<first 10 hex digits of sha1(key)>__<job>.json``: the record file of an image and a job."""
    return f"{Path(key).stem}-{hashlib.sha1(key.encode()).hexdigest()[:10]}__{job}.json"


def results(out):
    """``{file name: record without its timings}`` of a run's records folder."""
    return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in TIMINGS}
            for p in sorted((Path(out) / "records").glob("*.json"))}


def claims(out):
    return sorted((Path(out) / "records" / ".claims").glob("*.claim"))


@pytest.fixture(scope="module")
def base_run(photos, tmp_path_factory):
    """A finished run: rise and iGOS++ at 4 x 4 on chelsea.png and coffee.png (4 records)."""
    out = tmp_path_factory.mktemp("base") / "out"
    run = evaluate(photos, out, **ARGS)
    assert len(run.written) == 4
    return out


@pytest.fixture
def copied_run(base_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(base_run, out)
    return out


# ------------------------------------------------------------------------------- case 1: keys
def test_files_that_share_a_stem_get_one_record_each(photos, tmp_path):
    folder = tmp_path / "val"
    for sub in ("n02123045", "n07920052"):
        (folder / sub).mkdir(parents=True)
    shutil.copy(photos / "chelsea.png", folder / "n02123045" / "img1.png")
    shutil.copy(photos / "coffee.png", folder / "n07920052" / "img1.png")
    Image.open(photos / "chelsea.png").convert("RGB").save(folder / "n07920052" / "img1.jpg", quality=90)
    run = evaluate(folder, tmp_path / "out", **dict(ARGS, methods=["rise"]))
    keys = ["n02123045/img1.png", "n07920052/img1.jpg", "n07920052/img1.png"]
    assert sorted(p.name for p in run.written) == sorted(record_name(k, "rise") for k in keys)
    records = {r["key"]: r for r in load_records(tmp_path / "out")}
    assert sorted(records) == keys
    for key, r in records.items():
        assert r["image"] == "img1" and r["path"] == str(folder / key)
        assert r["image_sha256"] == hashlib.sha256((folder / key).read_bytes()).hexdigest()
    assert records["n02123045/img1.png"]["synset"] == "n02123045"
    assert summarize(list(records.values())).rows[0]["n"] == 3


# ------------------------------------------------------------------ case 2: settings of a resume
#: Settings that change what a record holds: (evaluate's arguments replaced, the difference named).
MISMATCHES = [
    (dict(options=FAST.replace(iterations=2)), "iterations: 1 in the record, 2 now (2 records)"),
    (dict(options=FAST.replace(ig_steps=3)), "ig_steps: 2 in the record, 3 now (2 records)"),
    (dict(options=FAST.replace(rise_masks=8)), "n_masks: 4 in the record, 8 now (2 records)"),
    (dict(seed=1), "seed: 0 in the record, 1 now (4 records)"),
    (dict(protocol="rise"), "protocol: 'igospp' in the record, 'rise' now (4 records)"),
    (dict(model="another model"), "model: 'tiny' in the record, 'tiny-b' now (4 records)"),
    (dict(images="chelsea.png changed"),
     "image_sha256: the image file's content changed since the record was made (2 records)"),
]


@pytest.mark.parametrize("change, difference", MISMATCHES)
def test_a_resume_with_other_settings_is_refused_before_any_work(photos, copied_run, tmp_path, monkeypatch, change,
                                                                 difference):
    def no_computation(*args, **kwargs):
        raise AssertionError("evaluate computed before comparing the records' settings")

    monkeypatch.setattr(benchmark, "run_method", no_computation)
    if change.get("model") == "another model":
        change = dict(change, model=ModelBundle("tiny-b", tiny_bundle().model, (32, 32), class_names=CLASSES))
    if change.get("images") == "chelsea.png changed":
        shutil.copytree(photos, tmp_path / "images")
        Image.open(photos / "chelsea.png").rotate(90).save(tmp_path / "images" / "chelsea.png")
        change = dict(change, images=tmp_path / "images")
    before = results(copied_run)
    with pytest.raises(SettingsMismatchError) as info:
        evaluate(**{"images": photos, "out": copied_run, **ARGS, **change})
    message = str(info.value)
    assert difference in message
    assert "overwrite=True" in message and "--overwrite" in message and "another output folder" in message
    assert isinstance(info.value, ValueError) and sum(info.value.differences.values()) >= 2
    assert results(copied_run) == before                                  # nothing written


def test_overwrite_recomputes_only_the_records_made_otherwise(photos, copied_run):
    run = evaluate(photos, copied_run, **dict(ARGS, options=FAST.replace(iterations=2)), overwrite=True)
    assert sorted(p.name for p in run.written) == sorted(record_name(f"{n}.png", "igospp4")
                                                         for n in ("chelsea", "coffee"))
    assert run.reused == 2                                                # RISE does not read iterations
    assert {r["method"]: r["method_config"]["iterations"] for r in load_records(copied_run)
            if r["method"] == "igospp"} == {"igospp": 2}
    again = evaluate(photos, copied_run, **dict(ARGS, options=FAST.replace(iterations=2)))
    assert (again.written, again.reused) == ([], 4)


def test_speed_only_settings_do_not_block_a_resume(photos, copied_run):
    assert PERFORMANCE_ONLY == ("batch_size", "progress", "track_scores")
    record = next((copied_run / "records").glob("*igospp4.json"))
    edited = json.loads(record.read_text())
    edited["method_config"].update(progress=True, track_scores=not edited["method_config"]["track_scores"])
    record.write_text(json.dumps(edited))
    run = evaluate(photos, copied_run, **dict(ARGS, options=FAST.replace(batch_size=3)))
    assert (run.written, run.reused) == ([], 4)


# ---------------------------------------------------------------------- case 8: unreadable images
def test_an_image_that_fails_to_load_is_skipped_reported_and_counted(photos, tmp_path, monkeypatch):
    load = igospp.images.ImageRecord.load

    def flaky(self):
        if self.key == "coffee.png":
            raise OSError("image file is truncated (3 bytes not processed)")
        return load(self)

    monkeypatch.setattr(igospp.images.ImageRecord, "load", flaky)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match=r"skipped image '.*coffee\.png': OSError: image file is truncated"):
        run = evaluate(photos, out, **ARGS)
    entry = {"file": str(photos / "coffee.png"), "key": "coffee.png",
             "reason": "OSError: image file is truncated (3 bytes not processed)"}
    assert run.skipped_images == [entry] and load_skipped(out) == [entry]
    assert sorted(p.name for p in run.written) == sorted(record_name("chelsea.png", j) for j in ("rise", "igospp4"))
    summary = summarize(load_records(out), skipped=load_skipped(out))
    assert summary.skipped == [entry] and "1 image file(s) could not be read and are in no row: coffee.png" in \
        summary.to_markdown()
    assert "# note: 1 image file(s) could not be read" in summary.to_csv()
    monkeypatch.setattr(igospp.images.ImageRecord, "load", load)             # the file is readable again
    healed = evaluate(photos, out, **ARGS)
    assert (len(healed.written), healed.reused, healed.skipped_images, load_skipped(out)) == (2, 2, [], [])


# ------------------------------------------------------------------------ case 9: invalid records
#: Broken record files: (what, the file's text made from a valid record, the problem named).
CORRUPTIONS = [
    ("an empty object", lambda r: "{}", "missing 'model', 'device'"),
    ("a list", lambda r: "[]", "not a record: the JSON is a list, not an object"),
    ("unrelated JSON", lambda r: '{"a": 1}', "missing 'model'"),
    ("cut mid-write", lambda r: json.dumps(r)[:40], "not valid JSON"),
    ("an empty file", lambda r: "", "not valid JSON"),
    ("a null AUC", lambda r: json.dumps(r | {"deletion_auc": None}), "deletion_auc must be a finite number, got None"),
    ("a NaN AUC", lambda r: json.dumps(r | {"insertion_auc": float("nan")}),
     "insertion_auc must be a finite number, got nan"),
    ("a string AUC", lambda r: json.dumps(r | {"deletion_auc": "0.1"}),
     "deletion_auc must be a finite number, got '0.1'"),
    ("an older igospp's record", lambda r: json.dumps({k: v for k, v in r.items() if k not in ("key", "image_sha256")}),
     "missing 'key', 'image_sha256' (a record of an igospp older than the 'key' field"),
    ("curves cut short", lambda r: json.dumps(r | {"curves": dict(r["curves"], deletion=r["curves"]["deletion"][:-1])}),
     "curves must hold three lists of finite numbers of one length"),
    ("no protocol name", lambda r: json.dumps(r | {"protocol": {}}), "protocol must be an object with a 'name'"),
    ("one mask of two", lambda r: json.dumps(r | {"masks": {"deletion_mask": {}}}),
     "masks must be null or an object with the objects 'deletion_mask' and 'insertion_mask'"),
    ("a mask's null AUC", lambda r: json.dumps(r | {"masks": {
        "deletion_mask": {"deletion_auc": 0.1, "insertion_auc": 0.5},
        "insertion_mask": {"deletion_auc": 0.2, "insertion_auc": None}}}),
     "masks.insertion_mask.insertion_auc must be a finite number, got None"),
    ("final scores without insertion", lambda r: json.dumps(r | {"final_scores": {"deletion": 0.2}}),
     "final_scores must be null or an object with finite 'deletion' and 'insertion'"),
]


@pytest.mark.parametrize("what, corrupt, problem", CORRUPTIONS, ids=[row[0] for row in CORRUPTIONS])
def test_an_invalid_record_is_named_left_out_and_recomputed(photos, copied_run, what, corrupt, problem):
    path = copied_run / "records" / record_name("chelsea.png", "rise")
    good = json.loads(path.read_text())
    path.write_text(corrupt(good))
    with pytest.warns(InvalidRecordWarning) as warned:
        records = load_records(copied_run)
    assert len(warned) == 1
    assert "left out 1 invalid record file(s)" in str(warned[0].message)
    assert f"records/{path.name}: {problem}" in str(warned[0].message)
    assert len(records) == 3 and all(record_problem(r) is None for r in records)
    summary = summarize(records)
    assert [(r["method"], r["n"]) for r in summary.rows] == [("rise", 1), ("igospp", 2)]
    assert summary.notes == ["RISE 32x32 averages 1 of the 2 images (missing: chelsea.png); compare rows over the "
                             "same images (paired())."]
    with pytest.warns(InvalidRecordWarning, match=f"recomputing 1 invalid record file.*{path.name}: "):
        run = evaluate(photos, copied_run, **ARGS)                          # not counted as done
    assert (run.written, run.reused) == ([path], 3)
    assert {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMINGS} == \
           {k: v for k, v in good.items() if k not in TIMINGS}


def test_summaries_refuse_invalid_records_and_say_what_each_row_averages(copied_run):
    records = load_records(copied_run)
    broken = dict(records[0], deletion_auc=None)
    with pytest.raises(ValueError, match=r"records\[0\] \(.*\) is not a valid record: deletion_auc must be a finite "
                                         r"number, got None"):
        summarize([broken] + records[1:])
    with pytest.raises(ValueError, match=r"records\[1\] is not a valid record: not a record: the JSON is a list"):
        summarize([records[0], []])
    full = summarize(records)
    assert (full.n_images, full.notes, [r["n"] for r in full.rows]) == (2, [], [2, 2])
    partial = summarize([r for r in records if not (r["method"] == "igospp" and r["key"] == "coffee.png")])
    assert partial.n_images == 2 and [r["n"] for r in partial.rows] == [2, 1]
    note = ("iGOS++ 4x4 averages 1 of the 2 images (missing: coffee.png); compare rows over the same images "
            "(paired()).")
    assert partial.notes == [note]
    assert f"**Note:** {note}" in partial.to_markdown() and f"# note: {note}" in partial.to_csv()


def test_json_beside_explain_figures_that_is_no_record_is_ignored_quietly(tmp_path):
    (tmp_path / "notes.json").write_text('{"a": 1}')
    with pytest.raises(FileNotFoundError, match="no readable records"):
        load_records(tmp_path)                                             # no warning for someone else's JSON


# ------------------------------------------------------------------------------- case 12: claims
def _dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


#: A claim found on chelsea.png's RISE job: (who holds it, its age in hours, stale_claim_hours, taken over).
CLAIMS = [
    ("a live process of this host", 0, 6, False),
    ("a live process of this host", 7, 6, True),      # older than stale_claim_hours: taken over whatever the host
    ("a dead process of this host", 0, 6, True),
    ("this process's id", 0, 6, True),                # a process that reused the id of a killed one
    ("another host", 0, 6, False),
    ("another host", 7, 6, True),
    ("another host", 7, 24, False),
    ("unreadable, fresh", 0, 6, False),               # its writer may be writing it
    ("unreadable, old", 0.1, 6, True),
]


@pytest.mark.parametrize("holder, age_hours, stale_hours, taken_over", CLAIMS)
def test_claimed_pairs_are_left_to_their_live_holder(photos, tmp_path, holder, age_hours, stale_hours, taken_over):
    out = tmp_path / "out"
    name = record_name("chelsea.png", "rise")
    claim = out / "records" / ".claims" / f"{name[:-5]}.claim"
    claim.parent.mkdir(parents=True)
    host, pid = socket.gethostname(), os.getppid()
    if holder == "a dead process of this host":
        pid = _dead_pid()
    elif holder == "this process's id":
        pid = os.getpid()
    elif holder == "another host":
        host = "elsewhere.example"
    text = "{\"host\": " if holder.startswith("unreadable") else \
        json.dumps({"host": host, "pid": pid, "started": time.time(), "token": "abc"})
    claim.write_text(text)
    past = time.time() - age_hours * 3600
    os.utime(claim, (past, past))
    run = evaluate(photos, out, **dict(ARGS, methods=["rise"]), stale_claim_hours=stale_hours)
    mine = {p.name for p in run.written}
    assert record_name("coffee.png", "rise") in mine
    assert (name in mine, run.claimed_elsewhere) == (taken_over, 0 if taken_over else 1)
    assert claims(out) == ([] if taken_over else [claim])
    if not taken_over:
        assert claim.read_text() == text                                   # left as it was


def test_claims_are_released_when_the_run_fails(photos, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(benchmark, "run_method", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        evaluate(photos, tmp_path, **ARGS)
    assert claims(tmp_path) == [] and not list((tmp_path / "records").glob("*.json"))


# -------------------------------------------------------------------------------------- properties
def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_garbage_files_in_the_image_folder_never_crash_evaluate(tmp_path, seed):
    rng = np.random.default_rng(seed)
    folder = tmp_path / "images"
    photo = igospp.sample_images(["chelsea"])["chelsea"][::6, ::6]
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(photo).save(jpeg, format="JPEG")
    Image.fromarray(photo).save(png, format="PNG")
    good = {"good.png": png.getvalue(), "sub/png_content.jpg": png.getvalue(), "x.png/inside.png": png.getvalue()}
    garbage = {
        "noise.png": rng.bytes(int(rng.integers(1, 4000))),
        "sub/noise.jpg": rng.bytes(int(rng.integers(1, 4000))),
        "truncated.jpg": jpeg.getvalue()[:int(len(jpeg.getvalue()) * rng.uniform(0.2, 0.9))],
        "png_header_only.png": png.getvalue()[:8] + rng.bytes(int(rng.integers(0, 200))),
        "empty.png": b"",
    }
    for key, data in {**good, **garbage}.items():
        _write(folder / key, data)
    out = tmp_path / "out"
    args = dict(ARGS, methods=["rise"])
    with pytest.warns(UserWarning, match="skipped"):
        run = evaluate(folder, out, **args)                                # a folder named x.png is searched
    assert sorted(s["key"] for s in run.skipped_images) == sorted(garbage)
    assert sorted(s["key"] for s in load_skipped(out)) == sorted(garbage)
    assert sorted(r["key"] for r in load_records(out)) == sorted(good)
    summary = summarize(load_records(out), skipped=load_skipped(out))
    assert f"{len(garbage)} image file(s) could not be read" in summary.to_markdown()
    with pytest.warns(UserWarning, match="skipped"):
        again = evaluate(folder, out, **args)
    assert (again.written, again.reused, len(again.skipped_images)) == ([], len(good), len(garbage))


def _start(images, out, result, *flags, log):
    env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(WORKER), str(images), str(out), str(result), *flags], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc, log, timeout=300):
    proc.wait(timeout=timeout)
    assert proc.returncode == 0, Path(log.name).read_text()[-3000:]


def _wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """Three small photos: rise and iGOS++ at 4 x 4 make six records."""
    folder = tmp_path_factory.mktemp("small")
    for name, image in igospp.sample_images(["chelsea", "coffee", "rocket"]).items():
        Image.fromarray(image[::5, ::5]).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def uninterrupted(small_folder, tmp_path_factory):
    """The records of an uninterrupted worker run on ``small_folder``."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    with open(tmp / "log", "w") as log:
        _finish(_start(small_folder, tmp / "out", tmp / "result.json", log=log), log)
    reference = results(tmp / "out")
    assert len(reference) == 6 and json.loads((tmp / "result.json").read_text())["reused"] == 0
    return reference


def test_worker_settings_are_the_tests(uninterrupted):
    assert MethodOptions(**WORKER_FAST) == FAST
    assert {r["method_config"].get("iterations") for r in uninterrupted.values()} >= {1}


@pytest.mark.parametrize("seed", [0, 1])
def test_killing_evaluate_at_a_random_point_and_resuming_gives_the_uninterrupted_records(small_folder, uninterrupted,
                                                                                        tmp_path, seed):
    rng = np.random.default_rng(seed)
    after = int(rng.integers(1, len(uninterrupted)))        # records written when the kill is sent
    extra = float(rng.uniform(0.0, 0.25))                   # then this long (< the delay of each method call)
    out = tmp_path / "out"
    with open(tmp_path / "log", "w") as log:
        proc = _start(small_folder, out, tmp_path / "killed.json", "--delay", "0.3", log=log)
        try:
            _wait_until(lambda: len(results(out)) >= after or proc.poll() is not None, 300, f"{after} records")
            time.sleep(extra)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, Path(log.name).read_text()[-3000:]
    kept = set(results(out))
    assert after <= len(kept) < len(uninterrupted)
    held = claims(out)
    assert len(held) <= 1                                   # the pair it was computing, if any: a dead claim
    with open(tmp_path / "log2", "w") as log:
        _finish(_start(small_folder, out, tmp_path / "resumed.json", log=log), log)
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    assert sorted(resumed["written"]) == sorted(set(uninterrupted) - kept)
    assert (resumed["reused"], resumed["claimed_elsewhere"]) == (len(kept), 0)
    assert all(f"{claim.stem}.json" in resumed["written"] for claim in held)   # taken over from the dead process
    assert results(out) == uninterrupted
    assert claims(out) == []


def test_two_concurrent_runs_share_the_work_and_write_each_record_once(small_folder, uninterrupted, tmp_path):
    out, go = tmp_path / "out", tmp_path / "go"
    logs = [open(tmp_path / f"log{i}", "w") for i in (0, 1)]
    procs = []
    try:
        for i in (0, 1):
            procs.append(_start(small_folder, out, tmp_path / f"result{i}.json", "--delay", "0.3", "--ready",
                                str(tmp_path / f"ready{i}"), "--go", str(go), log=logs[i]))
        _wait_until(lambda: all((tmp_path / f"ready{i}").exists() for i in (0, 1)), 300, "both workers")
        go.write_text("")
        for proc, log in zip(procs, logs, strict=True):
            _finish(proc, log)
    finally:
        for proc in procs:
            proc.kill()
        for log in logs:
            log.close()
    runs = [json.loads((tmp_path / f"result{i}.json").read_text()) for i in (0, 1)]
    first, second = (set(r["written"]) for r in runs)
    assert not first & second                                  # no record computed twice
    assert first | second == set(uninterrupted)
    assert first and second                                    # both worked
    for r in runs:
        assert len(r["written"]) + r["reused"] + r["claimed_elsewhere"] == len(uninterrupted)
    assert results(out) == uninterrupted                        # no corruption
    assert claims(out) == [] and not [p for p in (out / "records").iterdir() if p.name.endswith(".tmp")]


def test_a_rerun_with_the_same_settings_reuses_the_record_of_every_method(photos, tmp_path):
    methods = [m for m in igospp.methods.REGISTRY if m != "gradcam"]   # Grad-CAM needs a known layer
    args = dict(ARGS, methods=methods, n=1)
    first = evaluate(photos, tmp_path, **args)
    assert len(first.written) == len(methods)
    again = evaluate(photos, tmp_path, **args)                  # method_config as run_method wrote it, for each
    assert (again.written, again.reused) == ([], len(first.written))
