"""Does a speed option keep the heatmaps' quality? Paired insertion/deletion AUCs against the faithful default.

For every photo and mask resolution, explains the photo with the faithful default
(``Config.preset(method, resolution)``) and with each candidate (the same preset plus the
candidate's ``Config`` fields), scores every heatmap with the insertion and deletion metrics
(``igospp.metrics.insertion_deletion``, protocol ``igospp``: the authors' scoring ``legacy_*``
and the trapezoid AUC), and reports per candidate and resolution the mean of each AUC, the
paired difference candidate - default with its 95 % paired-t interval, the seconds per heatmap
and whether the candidate passes the bar: ``|mean difference| <= --bar`` for all four AUCs.

Usage::

    python benchmarks/bench_quality.py --images ../shared/data/imagenet-sample --n 20 --resolutions 28,224 \\
        --candidate warm='{"ls_warm_start": 5.0}' --candidate crn='{"ls_common_noise": true}'

Every heatmap's scores are written atomically to ``--out`` as soon as they are known, keyed by
method, resolution, photo, candidate fields and the settings that change results; a rerun
resumes and never reuses a score computed with other settings. Timings are of one process on
whatever else the machine is doing: compare speed with ``bench_compare.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_explain import _load_folder
from common import device_name

import igospp
from igospp.storage import write_json
from igospp.studies.stats import paired_difference

AUCS = ("legacy_deletion_auc", "legacy_insertion_auc", "deletion_auc", "insertion_auc")


def _candidates(specs: list[str]) -> dict[str, dict]:
    out = {"default": {}}
    for spec in specs:
        name, sep, fields = spec.partition("=")
        try:
            parsed = json.loads(fields) if sep else None
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            igospp.Config(**parsed)
        except (ValueError, TypeError) as err:
            raise SystemExit(f"--candidate must be NAME='{{JSON Config fields}}', got {spec!r}: {err}") from None
        if not name or name in out:
            raise SystemExit(f"--candidate names must be unique and not 'default', got {name!r}")
        out[name] = parsed
    return out


def _key(method: str, res: int, image: str, fields: dict, settings: dict) -> str:
    return json.dumps([method, res, image, fields, settings], sort_keys=True)


def summarize(rows: dict[str, dict], candidates: dict[str, dict], method: str, resolutions: list[int],
              images: list[str], settings: dict, bar: float) -> list[dict]:
    """One summary per candidate and resolution, paired over the photos both have."""
    table = []
    for res in resolutions:
        base = {im: rows.get(_key(method, res, im, {}, settings)) for im in images}
        for name, fields in candidates.items():
            if name == "default":
                continue
            cand = {im: rows.get(_key(method, res, im, fields, settings)) for im in images}
            both = [im for im in images if base[im] and cand[im]]
            if len(both) < 2:
                continue
            entry = dict(candidate=name, fields=fields, resolution=res, n=len(both),
                         seconds_default=float(np.median([base[im]["seconds"] for im in both])),
                         seconds_candidate=float(np.median([cand[im]["seconds"] for im in both])))
            passes = True
            for auc in AUCS:
                d = paired_difference([cand[im][auc] for im in both], [base[im][auc] for im in both])
                entry[auc] = dict(default=float(np.mean([base[im][auc] for im in both])),
                                  candidate=float(np.mean([cand[im][auc] for im in both])),
                                  difference=d.mean, low=d.low, high=d.high)
                passes &= abs(d.mean) <= bar
            entry["passes"] = passes
            table.append(entry)
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=None, help="folder of photos (default: the bundled ones)")
    ap.add_argument("--n", type=int, default=3, help="number of photos")
    ap.add_argument("--method", default="igospp", choices=igospp.METHODS)
    ap.add_argument("--resolutions", default="28")
    ap.add_argument("--candidate", action="append", default=[], help="NAME='{JSON Config fields}' (repeatable)")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--ig-steps", type=int, default=None)
    ap.add_argument("--bar", type=float, default=0.01, help="largest accepted |mean paired difference| of an AUC")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_quality.json"))
    args = ap.parse_args(argv)
    if args.n < 2:
        ap.error(f"--n must be at least 2 (the differences are paired over photos), got {args.n}")
    if not args.candidate:
        ap.error("give at least one --candidate NAME='{JSON Config fields}'")
    try:
        resolutions = [int(r) for r in args.resolutions.split(",")]
    except ValueError:
        ap.error(f"--resolutions must be comma-separated integers, got {args.resolutions!r}")
    candidates = _candidates(args.candidate)
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = igospp.load_model("efficientnet_lite0", device=args.device)
    photos = _load_folder(args.images, args.n) if args.images else dict(list(igospp.sample_images().items())[: args.n])
    batch = bundle.preprocess(list(photos.values()))
    overrides = {k: v for k, v in (("iterations", args.iterations), ("ig_steps", args.ig_steps)) if v is not None}
    meta = dict(device=device_name(bundle.device), torch=torch.__version__, igospp=igospp.__version__,
                python=sys.version.split()[0], model="efficientnet_lite0")
    settings = dict(overrides, model="efficientnet_lite0", protocol="igospp", device=str(bundle.device))
    rows: dict[str, dict] = {}
    if args.out.exists():
        previous = json.loads(args.out.read_text())
        if all(previous.get(k) == v for k, v in meta.items()):       # same machine, library and model
            rows = previous.get("rows", {})
    print(f"# {meta['device']}; {len(photos)} photos; {args.method}; candidates: "
          + ", ".join(f"{k}={json.dumps(v)}" for k, v in candidates.items()), flush=True)
    for res in resolutions:
        for i, name in enumerate(photos):
            for cand, fields in candidates.items():
                key = _key(args.method, res, name, fields, settings)
                if key in rows:
                    continue
                cfg = igospp.Config.preset(args.method, resolution=res, low_score_threshold=None,
                                           track_scores=False, progress=False, **overrides, **fields)
                start = time.perf_counter()
                exp = igospp.explain(bundle.model, batch[i:i + 1], config=cfg)
                seconds = time.perf_counter() - start
                scores = igospp.metrics.insertion_deletion(bundle.model, batch[i:i + 1], 1 - exp.mask,
                                                           target=exp.target, protocol="igospp")
                rows[key] = dict(method=args.method, resolution=res, image=name, candidate=cand, fields=fields,
                                 seconds=seconds, **{a: float(getattr(scores, a)[0]) for a in AUCS},
                                 acceleration=exp.stats.acceleration)
                write_json(args.out, dict(meta, rows=rows))
                print(f"{res:>4} {name:<32} {cand:<12} {seconds:7.1f} s  "
                      + "  ".join(f"{a}={rows[key][a]:.4f}" for a in AUCS), flush=True)
    table = summarize(rows, candidates, args.method, resolutions, list(photos), settings, args.bar)
    write_json(args.out, dict(meta, rows=rows, summary=table, bar=args.bar))
    for entry in table:
        print(f"\n{entry['candidate']} at {entry['resolution']}x{entry['resolution']} over {entry['n']} photos: "
              f"{entry['seconds_default']:.1f} s -> {entry['seconds_candidate']:.1f} s per heatmap (medians); "
              f"{'passes' if entry['passes'] else 'FAILS'} the bar |difference| <= {args.bar}")
        for auc in AUCS:
            e = entry[auc]
            print(f"  {auc:<22} default {e['default']:.4f}  candidate {e['candidate']:.4f}  "
                  f"difference {e['difference']:+.4f}  95% CI [{e['low']:+.4f}, {e['high']:+.4f}]")
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
