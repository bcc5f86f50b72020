"""Time igospp.explain per method and resolution on EfficientNet-Lite0, with the real defaults.

For every (method, resolution) it explains each image once and reports, per heatmap:

* wall seconds;
* forward and backward images actually evaluated (``Explanation.stats``);
* the images the algorithm itself needs given the line-search trials it made:
  one clean forward, ``T x n_terms x S`` forward+backward for the integrated gradients,
  ``trials x n_terms x S`` forward for the line search (and ``2 T`` forward for the scores
  tracked in the history when ``--track-scores`` is given: the benchmark measures the
  methods, so it turns that monitoring off unless asked);
* what the authors' code would evaluate for the same trials: the above plus one more
  ``n_terms x S`` forward per iteration for the line search's starting loss;
* the "authors'-code equivalent" seconds: those images times this run's measured cost per
  image (seconds / (forward + backward images), a backward image counted as one more
  image), i.e. what the same trials would cost without this library's savings in passes.

``--fields`` passes extra ``Config`` fields as JSON (e.g. the speed options
``'{"ls_warm_start": 5.0}'``); they are part of what identifies a measurement.

Usage::

    python benchmarks/bench_explain.py                                   # bundled photos, all methods
    python benchmarks/bench_explain.py --images ../shared/data/imagenet-sample --n 5 --device cuda
    python benchmarks/bench_explain.py --methods igospp,igos --resolutions 28 --iterations 5
    python benchmarks/bench_explain.py --methods igospp --resolutions 28 --fields '{"accelerate": false}'

Results are printed as a table and written (atomically, after every heatmap) as JSON to
``--out``. A run that is interrupted resumes: heatmaps already in ``--out`` for the same
device and settings are not recomputed (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import device_name
from PIL import Image

import igospp
from igospp.storage import write_json, write_npy


def _load_folder(folder: Path, n: int) -> dict[str, np.ndarray]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    if not files:
        raise SystemExit(f"no images found under {folder}")
    out = {}
    for p in files[:n]:
        with Image.open(p) as im:
            out[p.stem] = np.asarray(im.convert("RGB"))
    return out



def _key(row: dict) -> tuple:
    """What identifies one measurement: method, resolution, image and the settings that change the cost."""
    return (row["method"], row["resolution"], row["image"], row["iterations"], row["ig_steps"], row["batch_size"],
            json.dumps(row.get("fields", {}), sort_keys=True))



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(igospp.METHODS))
    ap.add_argument("--resolutions", default="7,28,224")
    ap.add_argument("--images", type=Path, default=None, help="folder of photos (default: the bundled ones)")
    ap.add_argument("--n", type=int, default=1, help="number of images")
    ap.add_argument("--only", type=int, default=None, help="time only the image with this index (0-based) of the n")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset's iterations")
    ap.add_argument("--ig-steps", type=int, default=None, help="override the preset's integration steps")
    ap.add_argument("--batch-size", type=int, default=None, help="path images per model call")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--track-scores", action="store_true", help="keep Config.track_scores on (2 forwards/iteration)")
    ap.add_argument("--fields", default="{}", help="extra Config fields as a JSON object")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_explain.json"))
    ap.add_argument("--fresh", action="store_true", help="ignore results already in --out")
    ap.add_argument("--masks", type=Path, default=None,
                    help="folder where each heatmap's mask is saved as <method>_<res>_<image>.npy (for comparisons)")
    args = ap.parse_args(argv)
    if args.only is not None and not 0 <= args.only < args.n:
        ap.error(f"--only must be an image index in 0..{args.n - 1} (the --n images), got {args.only}")

    try:
        extra = json.loads(args.fields)
        if not isinstance(extra, dict):
            raise ValueError("not an object")
        igospp.Config(**extra)
    except (ValueError, TypeError) as err:
        ap.error(f"--fields must be a JSON object of Config fields, e.g. '{{\"ls_warm_start\": 5.0}}': {err}")
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = igospp.load_model("efficientnet_lite0", device=args.device)
    photos = _load_folder(args.images, args.n) if args.images else dict(list(igospp.sample_images().items())[: args.n])
    batch = bundle.preprocess(list(photos.values()))
    device = bundle.device
    print(f"# EfficientNet-Lite0 on {device_name(device)}; torch {torch.__version__}; {len(photos)} image(s): "
          f"{', '.join(photos)}", flush=True)
    header = (f"{'method':<10} {'res':>4} {'T':>4} {'S':>3} {'s/heatmap':>10} {'fwd/heatmap':>12} {'bwd/heatmap':>12} "
              f"{'trials/it':>9} {'needed fwd':>11} {'official fwd':>12} {'authors-eq s':>12}")
    print(header)
    print("-" * len(header))
    meta = dict(device=device_name(device), torch=torch.__version__, python=sys.version.split()[0],
                model="efficientnet_lite0")
    rows = []
    if args.out.exists() and not args.fresh:
        previous = json.loads(args.out.read_text())
        if all(previous.get(k) == v for k, v in meta.items()):
            rows = previous["rows"]
    for method in args.methods.split(","):
        for res in (int(r) for r in args.resolutions.split(",")):
            fields = {k: v for k, v in (("iterations", args.iterations), ("ig_steps", args.ig_steps),
                                        ("batch_size", args.batch_size)) if v is not None}
            cfg = igospp.Config.preset(method, resolution=res, low_score_threshold=None,
                                       track_scores=args.track_scores, **fields, **extra)
            n_terms = len(igospp.method_terms(method)[1])
            per_eval = n_terms * cfg.ig_steps
            settings = (cfg.iterations, cfg.ig_steps, cfg.effective_batch_size(device),
                        json.dumps(extra, sort_keys=True))
            for i, name in enumerate(photos):
                skipped = args.only is not None and i != args.only
                if skipped or (method, res, name, *settings) in {_key(r) for r in rows}:
                    continue
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                exp = igospp.explain(bundle.model, batch[i:i + 1], config=cfg)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
                if args.masks is not None:
                    write_npy(args.masks / f"{method}_{res}_{name}.npy", exp.mask.cpu().numpy())
                trials = int(exp.history.trials.sum())
                needed_fwd = 1 + cfg.iterations * per_eval + trials * per_eval + 2 * cfg.iterations * cfg.track_scores
                rows.append(dict(method=method, resolution=res, image=name, iterations=cfg.iterations,
                                 ig_steps=cfg.ig_steps, batch_size=exp.config.batch_size, seconds=seconds,
                                 forward_images=exp.stats.forward_images, backward_images=exp.stats.backward_images,
                                 trials=trials, needed_forward=needed_fwd,
                                 needed_backward=cfg.iterations * per_eval,
                                 official_forward=needed_fwd + cfg.iterations * per_eval,
                                 median_step=float(exp.history.step.median()), fields=extra,
                                 acceleration=getattr(exp.stats, "acceleration", "not available")))
                per_image = seconds / (exp.stats.forward_images + exp.stats.backward_images)
                rows[-1]["authors_equivalent_seconds"] = per_image * (rows[-1]["official_forward"]
                                                                      + rows[-1]["needed_backward"])
                write_json(args.out, dict(meta, images=list(photos), rows=rows))
            mine = [r for r in rows if _key(r) in {(method, res, name, *settings) for name in photos}]
            if not mine:
                continue
            mean = {k: float(np.mean([r[k] for r in mine])) for k in
                    ("seconds", "forward_images", "backward_images", "trials", "needed_forward", "official_forward",
                     "authors_equivalent_seconds")}
            print(f"{method:<10} {res:>4} {cfg.iterations:>4} {cfg.ig_steps:>3} {mean['seconds']:>10.2f} "
                  f"{mean['forward_images']:>12.0f} {mean['backward_images']:>12.0f} "
                  f"{mean['trials'] / cfg.iterations:>9.2f} {mean['needed_forward']:>11.0f} "
                  f"{mean['official_forward']:>12.0f} {mean['authors_equivalent_seconds']:>12.2f}", flush=True)
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
