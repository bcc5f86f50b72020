"""The comparison runner (igospp.studies.benchmark): jobs, options, the record, resuming, shards, summaries.

A seeded five-class model on 32 x 32 images stands in for the ImageNet classifier, so every
method and the metric run in a fraction of a second; the command line's end-to-end runs on the
real model are in test_cli.py.
"""

import hashlib
import json
import shutil

import pytest
import torch

import igospp
from igospp.cli import main
from igospp.methods import REGISTRY, MethodOptions, build
from igospp.studies import benchmark, paper
from igospp.studies.benchmark import (
    DEFAULT_METHODS,
    RECORD_KEYS,
    Job,
    evaluate,
    jobs,
    load_records,
    paired,
    summarize,
)

from .conftest import tiny_bundle

FAST = MethodOptions(iterations=1, ig_steps=2, rise_masks=4, ig_path_steps=2)
IGOSPP_FLAGS = ["--iterations", "1", "--ig-steps", "2"]        # FAST's settings that iGOS++ reads


def _read(paths):
    return [json.loads(p.read_text()) for p in sorted(paths)]


def record_name(key, job):
    """The record file of an image (its path under the image folder) and a job: ``<stem>-<sha1 of key>__<job>.json``."""
    return f"{key.rsplit('/', 1)[-1].rsplit('.', 1)[0]}-{hashlib.sha1(key.encode()).hexdigest()[:10]}__{job}.json"


def test_jobs_take_methods_and_resolutions_from_the_registry():
    for name, spec in REGISTRY.items():
        expected = [Job(name, 4), Job(name, 7)] if spec.takes_resolution else [Job(name, None)]
        assert jobs([name], [4, 7]) == expected, name
    assert [j.key for j in jobs(["gradcam", "igospp_nobtv"], [7, 28])] == ["gradcam", "igospp_nobtv7", "igospp_nobtv28"]
    # The default run is the paper's Table 1, in the registry's order.
    assert DEFAULT_METHODS == tuple(m for m in REGISTRY if any(key[0] == m for key in paper.TABLE1))


def test_options_reach_the_methods_that_use_them():
    opts = MethodOptions(iterations=3, mask_iterations=50, ig_steps=5, rise_masks=10, ig_path_steps=7, batch_size=3,
                         seed=4)
    mask = build("mask", 28, opts).config
    assert "ig_steps" not in REGISTRY["mask"].uses
    assert mask.ig_steps == build("mask", 28).config.ig_steps          # Mask keeps its plain gradient
    assert mask.iterations == 50                                        # mask_iterations replaces iterations
    igos = build("igos", 28, opts).config
    assert (igos.iterations, igos.ig_steps, igos.batch_size, igos.seed) == (3, 5, 3, 4)
    rise = build("rise", options=opts)
    assert (rise.n_masks, rise.batch_size, rise.seed) == (10, 3, 4)
    ig = build("ig", options=opts)
    assert (ig.steps, ig.batch_size) == (7, 3)


def test_ablations_are_igospp_with_one_field_replaced():
    base = build("igospp", 4, FAST).config.to_dict()
    for name, field in (("igospp_nonoise", "noise_std"), ("igospp_fixedstep", "line_search"),
                        ("igospp_nobtv", "smoothness")):
        config = build(name, 4, FAST).config.to_dict()
        assert {k for k in base if config[k] != base[k]} == {field}, name


#: Bad arguments of evaluate: (arguments replaced, error type, a part of the message). "FILE" in
#: ``out`` stands for a file made by the test (an output folder that cannot be created).
BAD_EVALUATE_INPUTS = [
    (dict(shard=(2, 2)), ValueError, "shard[0] must be an integer >= 0 and <= 1, got 2"),
    (dict(shard=(0, 0)), ValueError, "shard[1] must be a positive integer, got 0"),
    (dict(shard="0/2"), ValueError, "shard must be a pair (k, n)"),
    (dict(batch_images=0), ValueError, "batch_images must be a positive integer, got 0"),
    (dict(n=0), ValueError, "n must be a positive integer, got 0"),
    (dict(seed=1.5), ValueError, "seed must be an integer"),
    (dict(protocol="bogus"), ValueError, "protocol must be one of ('igospp', 'rise')"),
    (dict(methods=["lime"]), ValueError, "methods must be one of"),
    (dict(methods=[]), ValueError, "methods must name at least one method"),
    (dict(methods="rise"), TypeError, "methods must be a list of names"),
    (dict(resolutions=[0]), ValueError, "resolutions must be a positive integer, got 0"),
    (dict(resolutions=[64]), ValueError, "resolutions must be an integer >= 1 and <= 32, got 64"),
    (dict(options={"iterations": 1}), TypeError, "options must be an igospp.methods.MethodOptions, got dict"),
    (dict(progress="no"), ValueError, "progress must be True or False"),
    (dict(overwrite="yes"), ValueError, "overwrite must be True or False, got 'yes'"),
    (dict(overwrite=1), ValueError, "overwrite must be True or False, got 1"),
    (dict(stale_claim_hours=0), ValueError, "stale_claim_hours must be a finite number > 0"),
    (dict(stale_claim_hours=float("nan")), ValueError, "stale_claim_hours must be a finite number"),
    (dict(model=3), TypeError, "model must be a model name or an igospp.ModelBundle, got int"),
    (dict(images="no/such/folder"), FileNotFoundError, "images 'no/such/folder' is not a folder"),
    (dict(out="FILE/out"), OSError, "cannot be created"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_EVALUATE_INPUTS)
def test_evaluate_names_the_bad_argument_and_writes_nothing(photos, tmp_path, monkeypatch, kwargs, error, message):
    def no_computation(*args, **kwargs):
        raise AssertionError("evaluate computed something before checking its arguments")

    monkeypatch.setattr(benchmark, "run_method", no_computation)
    args = dict(images=photos, out=tmp_path, model=tiny_bundle(), methods=["rise", "igospp"], resolutions=[4],
                options=FAST, progress=False)
    if kwargs.get("out") == "FILE/out":
        (tmp_path / "FILE").write_text("a file, not a folder")
        kwargs = dict(kwargs, out=tmp_path / "FILE" / "out")
    with pytest.raises(error) as info:
        evaluate(**{**args, **kwargs})
    assert message in str(info.value)
    assert not (tmp_path / "records").exists()


def test_evaluate_writes_records_resumes_and_shards(photos, tmp_path):
    args = dict(model=tiny_bundle(), methods=["rise", "igospp"], resolutions=[4], options=FAST, progress=False)
    run = evaluate(photos, tmp_path / "run", **args)
    written = run.written
    assert sorted(p.name for p in written) == sorted(record_name(f"{name}.png", job) for name in ("chelsea", "coffee")
                                                     for job in ("rise", "igospp4"))
    assert (run.reused, run.skipped_images, run.claimed_elsewhere) == (0, [], 0)
    records = _read(written)
    assert all(list(r) == list(RECORD_KEYS) for r in records)
    igospp4 = next(r for r in records if r["method"] == "igospp")
    assert igospp4["resolution"] == "4" and igospp4["requested_resolution"] == 4 and igospp4["shard"] == "0/1"
    assert igospp4["stats"]["backward_images"] == 1 * 4 * 2 and igospp4["method_config"]["iterations"] == 1
    rise = next(r for r in records if r["method"] == "rise")
    assert rise["resolution"] == "32" and rise["requested_resolution"] is None and rise["stats"] is None
    assert (rise["masks"], rise["final_scores"]) == (None, None)
    assert rise["method_config"] == dict(rise["method_config"], method="rise", n_masks=4)

    again = evaluate(photos, tmp_path / "run", **args)
    assert (again.written, again.reused) == ([], 4)                              # nothing left to do
    before = json.loads(written[0].read_text())
    written[0].unlink()                                                          # an interrupted run resumes
    resumed = evaluate(photos, tmp_path / "run", **args)
    assert (resumed.written, resumed.reused) == ([written[0]], 3)
    after = json.loads(written[0].read_text())
    timings = ("seconds", "metric_seconds")
    assert {k: v for k, v in after.items() if k not in timings} == {k: v for k, v in before.items() if k not in timings}

    rows = summarize(load_records(tmp_path / "run")).rows
    assert [(r["method"], r["name"], r["resolution"], r["n"]) for r in rows] == [
        ("rise", "RISE", "32x32", 2), ("igospp", "iGOS++", "4x4", 2)]            # the registry's order and names

    args["methods"] = ["rise"]
    shards = [evaluate(photos, tmp_path / "sharded", shard=(k, 2), **args).written for k in (0, 1)]
    assert [[p.name for p in s] for s in shards] == [[record_name("chelsea.png", "rise")],
                                                     [record_name("coffee.png", "rise")]]
    sharded = _read(shards[0] + shards[1])
    assert [r["shard"] for r in sharded] == ["0/2", "1/2"]
    assert [r["insertion_auc"] for r in sharded] == [r["insertion_auc"] for r in records if r["method"] == "rise"]
    batched = _read(evaluate(photos, tmp_path / "batched", batch_images=2, **args).written)
    assert [r["batch_images"] for r in batched] == [2, 2]


def test_igospp_records_score_each_mask_alone(photos, tmp_path):
    """The paper's supplementary Table 5: iGOS++ records hold the AUCs of 1 - Mx and 1 - My alone."""
    bundle = tiny_bundle()
    x = bundle.preprocess([igospp.read_image(photos / "chelsea.png"), igospp.read_image(photos / "coffee.png")])
    top = bundle.model(x).argmax(1).tolist()
    _, result, info = benchmark.run_method(bundle, x, Job("igospp", 4), top, "igospp", FAST)
    exp = info["explanation"]
    for name, mask in (("deletion_mask", exp.deletion_mask), ("insertion_mask", exp.insertion_mask)):
        alone = igospp.metrics.insertion_deletion(bundle.model, x, 1 - mask, target=top, protocol="igospp")
        assert torch.equal(info["masks"][name].deletion_auc, alone.deletion_auc)
        assert torch.equal(info["masks"][name].legacy_insertion_auc, alone.legacy_insertion_auc)
    # Mx and My are different masks, and neither is the product the record's own AUCs score.
    assert not torch.equal(exp.deletion_mask, exp.insertion_mask)
    assert not torch.equal(info["masks"]["insertion_mask"].insertion_auc, result.insertion_auc)
    assert benchmark.run_method(bundle, x, Job("igos", 4), top, "igospp", FAST)[2]["masks"] is None
    assert benchmark.run_method(bundle, x, Job("rise", None), top, "igospp", FAST)[2]["masks"] is None

    records = _read(evaluate(photos, tmp_path, model=bundle, methods=["igospp", "igos"], resolutions=[4],
                             options=FAST, progress=False).written)
    for r in records:
        i = 0 if r["key"] == "chelsea.png" else 1
        assert r["target"]["index"] == top[i]
        # evaluate explains one image per call: the same call here gives the history the record ends
        _, _, info = benchmark.run_method(bundle, x[i:i + 1], Job(r["method"], 4), top[i:i + 1], "igospp", FAST)
        history = info["explanation"].history                    # the paper's Table 7 loss is their difference
        assert r["final_scores"] == {"deletion": float(history.deletion[-1, 0]),
                                     "insertion": float(history.insertion[-1, 0])}
        if r["method"] == "igos":
            assert r["masks"] is None
            continue
        assert set(r["masks"]) == {"deletion_mask", "insertion_mask"}
        assert set(r["masks"]["deletion_mask"]) == {"deletion_auc", "insertion_auc", "legacy_deletion_auc",
                                                   "legacy_insertion_auc"}


def test_batch_size_reaches_the_method_and_the_metric(photos, tmp_path, metric_batch_sizes):
    seen = metric_batch_sizes
    written = evaluate(photos, tmp_path, model=tiny_bundle(), n=1, methods=["igospp", "rise", "ig"], resolutions=[4],
                       options=FAST.replace(batch_size=3), progress=False).written
    assert seen == [3, 3, 3, 3, 3]              # igospp: its product, then Mx and My alone; rise; ig
    assert {r["method"]: r["method_config"]["batch_size"] for r in _read(written)} == {"igospp": 3, "rise": 3, "ig": 3}


def test_explain_and_evaluate_write_the_same_record(photos, tmp_path, monkeypatch):
    monkeypatch.setattr("igospp.cli.load_model", lambda name, device="auto": tiny_bundle())
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(photos / "chelsea.png", folder)
    settings = ["--resolution", "4", *IGOSPP_FLAGS, "--batch-size", "3"]
    assert main(["explain", str(folder / "chelsea.png"), "--method", "igospp", "--out", str(tmp_path / "ex"),
                 *settings]) == 0
    assert main(["evaluate", "--images", str(folder), "--methods", "igospp", "--resolutions", "4", *IGOSPP_FLAGS,
                 "--batch-size", "3", "--no-progress", "--out", str(tmp_path / "ev")]) == 0
    explained = json.loads((tmp_path / "ex" / "chelsea_igospp4.json").read_text())
    evaluated = json.loads((tmp_path / "ev" / "records" / record_name("chelsea.png", "igospp4")).read_text())
    assert list(explained) == list(evaluated) == list(RECORD_KEYS)
    timings = ("seconds", "metric_seconds")
    assert {k: v for k, v in explained.items() if k not in timings} == \
           {k: v for k, v in evaluated.items() if k not in timings}               # the same result, the same record
    # summarize reads the folder of igospp explain as it reads that of igospp evaluate
    rows = [summarize(load_records(tmp_path / out)).rows for out in ("ex", "ev")]
    assert [[(r["method"], r["resolution"], r["n"], r["deletion_mean"], r["legacy_insertion_mean"]) for r in table]
            for table in rows] == [[("igospp", "4x4", 1, explained["deletion_auc"],
                                     explained["legacy_insertion_auc"])]] * 2


def test_load_records_skips_other_json_and_summaries_refuse_mixtures(tmp_path):
    with pytest.raises(FileNotFoundError, match="no records under"):
        load_records(tmp_path / "nowhere")
    (tmp_path / "notes.json").write_text('{"a": 1}')
    with pytest.raises(FileNotFoundError, match="no readable records"):
        load_records(tmp_path)

    a = {"model": "m", "protocol": {"name": "igospp"}, "method": "igos", "resolution": "7", "deletion_auc": 0.1,
         "insertion_auc": 0.5, "seconds": 1.0, "images_dir": "x", "device": "cpu"}
    with pytest.raises(ValueError, match="not comparable"):
        summarize([a, dict(a, protocol={"name": "rise"})])
    with pytest.raises(ValueError, match="records is empty"):
        summarize([])
    one = summarize([a, dict(a, deletion_auc=0.3, seconds=3.0)])
    assert one.rows[0]["deletion_mean"] == pytest.approx(0.2) and one.rows[0]["deletion_se"] == pytest.approx(0.1)
    assert (one.rows[0]["seconds_mean"], one.rows[0]["seconds_se"]) == (pytest.approx(2.0), pytest.approx(1.0))
    slow = summarize([a, dict(a, seconds=2.0), dict(a, seconds=90.0)])      # one heatmap ran while the CPU was busy
    assert slow.rows[0]["seconds_median"] == 2.0 and slow.rows[0]["seconds_mean"] == pytest.approx(31.0)
    assert "of the top-1 class" in one.header()
    other = summarize([a, dict(a, target={"index": 3, "top1": False})])       # igospp explain --target 3
    assert "of the class explained, not the top-1 class in 1 records" in other.header()
    assert one.rows[0]["name"] == "I-GOS"
    with pytest.raises(ValueError, match="metric must be one of"):
        paired([a], "igos", "igos", metric="auc")
    with pytest.raises(ValueError, match="confidence must be"):
        paired([a], "igos", "igos", confidence=95)


def test_paired_differences_pair_images_and_fixed_resolution_methods_match_any_resolution():
    rec = dict(model="m", protocol={"name": "igospp"}, seconds=1.0)
    recs = [rec | dict(key=k, method="igospp", resolution=r, insertion_auc=v)
            for k, r, v in [("a", "28", 0.7), ("b", "28", 0.6), ("a", "7", 0.1), ("b", "7", 0.2)]]
    recs += [rec | dict(key=k, method="gradcam", resolution="7", insertion_auc=v) for k, v in [("a", 0.4), ("b", 0.5)]]
    d = paired(recs, "igospp", "gradcam", resolution=28)          # Grad-CAM's 7 x 7 maps against iGOS++ at 28
    assert (d.mean, d.n, d.n_positive) == (pytest.approx(0.2), 2, 2)
    assert paired(recs, "igospp", "igospp", resolution=28, resolution_b=7).mean == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two records of 'igospp' at resolution None for the image 'a'"):
        paired(recs, "igospp", "gradcam")                           # 28 and 7 together: refused, not overwritten
    with pytest.raises(ValueError, match="no image has records of both"):
        paired(recs, "igospp", "igos", resolution=28)


def test_bundled_photos_need_no_folder(tmp_path):
    run = evaluate("bundled", tmp_path, model=tiny_bundle(), n=1, methods=["rise"], options=FAST, progress=False)
    assert len(run.written) == 1
    assert len(list((tmp_path / "bundled").glob("*.png"))) == len(igospp.SAMPLE_IMAGES)
