"""The ``igospp`` command line: ``explain`` images, ``evaluate`` methods on a folder, ``summarize`` results.

Examples::

    igospp explain photo.jpg --method igospp --resolution 28 --out results/
    igospp evaluate --images val/ --n 100 --methods igospp,igos,gradcam,ig,rise,mask --resolutions 7,28,224 --out eval/
    igospp summarize eval/

Errors (missing files, unknown model or method, bad resolution, no GPU for ``--device cuda``)
print one line and exit with status 2; nothing else prints a traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import __version__
from .baselines import METHOD_NAMES
from .evaluation import BUNDLED, EVALUATION_METHODS, Job, evaluate, load_records, run_method, summarize, versions
from .metrics import PROTOCOLS
from .models import MODELS, ModelBundle, WeightsUnavailableError, load_model
from .storage import write_bytes, write_json, write_npy
from .viz import normalize, overlay, plot_curves

__all__ = ["main", "CLIError"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{what} must be comma-separated integers, got {text!r}.") from None
    if not values or any(v < 1 for v in values):
        raise CLIError(f"{what} must be positive integers, got {text!r}.")
    return values


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in EVALUATION_METHODS]
    if unknown or not methods:
        raise CLIError(f"unknown method(s) {unknown or text!r}; choose from {', '.join(EVALUATION_METHODS)}.")
    return methods


def _shard(text: str) -> tuple[int, int]:
    """``K/N``, or ``auto``: torchrun's ``RANK``/``WORLD_SIZE`` or a Slurm array's task id and count."""
    if text == "auto":
        env = os.environ
        if "WORLD_SIZE" in env:
            return int(env.get("RANK", "0")), int(env["WORLD_SIZE"])
        if "SLURM_ARRAY_TASK_COUNT" in env:
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            return int(env["SLURM_ARRAY_TASK_ID"]) - first, int(env["SLURM_ARRAY_TASK_COUNT"])
        return 0, 1
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise CLIError(f"--shard must look like K/N (e.g. 0/4), got {text!r}.") from None
    if not 0 <= k < n:
        raise CLIError(f"--shard K/N needs 0 <= K < N, got {text!r}.")
    return k, n


def _target(text: str, bundle: ModelBundle) -> int | None:
    """``auto`` (top-1), a class index, or a class name (exact, else a unique substring)."""
    if text == "auto":
        return None
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < len(bundle.class_names):
            raise CLIError(f"--target {index} is out of range: the model has {len(bundle.class_names)} classes.")
        return index
    names = [n.lower() for n in bundle.class_names]
    if text.lower() in names:
        return names.index(text.lower())
    hits = [i for i, n in enumerate(names) if text.lower() in n]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise CLIError(f"--target {text!r} matches no class name; give a class index or a name such as "
                       f"{bundle.class_names[0]!r}.")
    shown = ", ".join(repr(bundle.class_names[i]) for i in hits[:6])
    raise CLIError(f"--target {text!r} matches several classes ({shown}{', ...' if len(hits) > 6 else ''}); "
                   "be more specific or give the class index.")


def _load_image(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"image {path!r} does not exist.")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise CLIError(f"cannot read image {path!r}: {err}") from None


def _png(path: Path, fig_or_array) -> None:
    buffer = io.BytesIO()
    if isinstance(fig_or_array, np.ndarray):
        matplotlib.image.imsave(buffer, np.clip(fig_or_array, 0, 1), format="png")
    else:
        fig_or_array.savefig(buffer, format="png", dpi=120)
    write_bytes(path, buffer.getvalue())


def cmd_explain(args: argparse.Namespace) -> int:
    if args.method not in METHOD_NAMES:
        raise CLIError(f"unknown method {args.method!r}; choose from {', '.join(METHOD_NAMES)}.")
    if args.resolution < 1:
        raise CLIError(f"--resolution must be a positive integer, got {args.resolution}.")
    photos = [(path, _load_image(path)) for path in args.images]          # fail early on a bad file
    bundle = load_model(args.model, device=args.device)
    out = Path(args.out)
    job = Job(args.method, args.resolution if args.method in ("igospp", "igos", "mask", "naive", "insertion")
              else None)
    if job.resolution is not None and job.resolution > min(bundle.input_size):
        raise CLIError(f"--resolution {job.resolution} is larger than the model's input {bundle.input_size}.")
    target = _target(args.target, bundle)
    options = {"iterations": args.iterations, "ig_steps": args.ig_steps, "seed": args.seed,
               "rise_masks": args.rise_masks}
    for path, image in photos:
        x = bundle.preprocess(image)
        with torch.no_grad():
            probs = bundle.model(x).softmax(dim=1)[0]
        cls = int(probs.argmax()) if target is None else target
        saliency, result, info = run_method(bundle, x, job, [cls], args.protocol, options)
        stem = f"{Path(path).stem}_{job.key}"
        shown = bundle.deprocess(x)[0]
        _png(out / f"{stem}_overlay.png", overlay(shown, saliency[0, 0]))
        heat = matplotlib.colormaps["jet"](normalize(saliency[0, 0], bundle.input_size))[..., :3]
        _png(out / f"{stem}_heatmap.png", heat)
        _png(out / f"{stem}_curves.png", plot_curves(result, 0, title=f"{bundle.class_names[cls]} · {job.key}",
                                                      legacy=True))
        write_npy(out / f"{stem}_saliency.npy", saliency[0, 0].cpu().numpy())
        exp = info.get("explanation")
        if exp is not None:
            write_npy(out / f"{stem}_mask.npy", exp.mask[0, 0].cpu().numpy())
        record = {
            "image": str(path), "model": bundle.name, "method": job.method, "resolution": list(saliency.shape[-2:]),
            "target": {"index": cls, "name": bundle.class_names[cls], "probability": float(probs[cls]),
                       "top1": int(probs.argmax()) == cls},
            "deletion_auc": float(result.deletion_auc[0]), "insertion_auc": float(result.insertion_auc[0]),
            "legacy_deletion_auc": None if result.legacy_deletion_auc is None else float(result.legacy_deletion_auc[0]),
            "legacy_insertion_auc": None if result.legacy_insertion_auc is None else
            float(result.legacy_insertion_auc[0]),
            "protocol": result.protocol, "config": info["config"],
            "timings": {"method_seconds": info["seconds"], "metric_seconds": info["metric_seconds"]},
            "stats": None if exp is None else {"forward_images": exp.stats.forward_images,
                                               "backward_images": exp.stats.backward_images},
            "device": str(bundle.device), "versions": versions(),
            "files": [f"{stem}_{s}" for s in ("overlay.png", "heatmap.png", "curves.png", "saliency.npy")]
            + ([f"{stem}_mask.npy"] if exp is not None else []),
        }
        write_json(out / f"{stem}.json", record)
        print(f"{path}: {bundle.class_names[cls]} (p={float(probs[cls]):.2f}) {job.key}: deletion "
              f"{record['deletion_auc']:.3f} insertion {record['insertion_auc']:.3f} in {info['seconds']:.1f} s "
              f"-> {out / stem}_*", flush=True)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    shard = _shard(args.shard)
    methods = _methods(args.methods)
    resolutions = _int_list(args.resolutions, "--resolutions")
    if args.images != BUNDLED and not Path(args.images).is_dir():
        raise CLIError(f"--images {args.images!r} is not a folder (or 'bundled' for the bundled photos).")
    device = args.device
    if device == "auto" and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        device = f"cuda:{os.environ['LOCAL_RANK']}"          # one GPU per torchrun process
    bundle = load_model(args.model, device=device)
    too_big = [r for r in resolutions if r > min(bundle.input_size)]
    if too_big:
        raise CLIError(f"--resolutions {too_big} exceed the model's input size {bundle.input_size}.")
    options = {"iterations": args.iterations, "mask_iterations": args.mask_iterations, "ig_steps": args.ig_steps,
               "rise_masks": args.rise_masks, "batch_size": args.batch_size}
    written = evaluate(args.images, args.out, model=bundle, n=args.n, seed=args.seed, methods=methods,
                       resolutions=resolutions, shard=shard, protocol=args.protocol, options=options,
                       batch_images=args.batch_images, progress=not args.no_progress)
    print(f"wrote {len(written)} new record(s) under {Path(args.out) / 'records'}", flush=True)
    if shard[1] == 1:
        return _summarize(args.out)
    print(f"shard {shard[0]}/{shard[1]} done; once every shard has finished run: igospp summarize {args.out}")
    return 0


def _summarize(out: str) -> int:
    summary = summarize(load_records(out))
    md, csv_path = summary.write(out)
    print(summary.to_markdown(), end="")
    print(f"(also in {md} and {csv_path})")
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    return _summarize(args.dir)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igospp", description="iGOS++ and related saliency methods.")
    parser.add_argument("--version", action="version", version=f"igospp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = f"model name: {', '.join(MODELS)} or timm:<name> (default efficientnet_lite0, offline)"

    ex = sub.add_parser("explain", help="explain images; write overlay, heatmap, curves, mask and a JSON record")
    ex.add_argument("images", nargs="+", metavar="IMAGE")
    ex.add_argument("--model", default="efficientnet_lite0", help=model_help)
    ex.add_argument("--method", default="igospp", help=f"one of {', '.join(METHOD_NAMES)} (default igospp)")
    ex.add_argument("--resolution", type=int, default=28, help="mask resolution of the optimization methods")
    ex.add_argument("--target", default="auto", help="auto (top-1 class), a class index or a class name")
    ex.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ex.add_argument("--out", default="igospp-out", help="output folder (default igospp-out)")
    ex.add_argument("--protocol", default="igospp", choices=list(PROTOCOLS), help="insertion/deletion protocol")
    ex.add_argument("--iterations", type=int, default=None, help="override the method's iterations")
    ex.add_argument("--ig-steps", type=int, default=None,
                    help="override the integration steps (not for mask, whose plain gradient is one step)")
    ex.add_argument("--rise-masks", type=int, default=None, help="number of RISE masks (default 8000)")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=cmd_explain)

    ev = sub.add_parser("evaluate", help="compare methods on a folder (the paper's Table 1); resumable")
    ev.add_argument("--images", required=True,
                    help="folder of images (flat or one sub-folder per class), or 'bundled' for the bundled photos")
    ev.add_argument("--n", type=int, default=None, help="a seeded random subset of N images (default all)")
    ev.add_argument("--methods", default="igospp,igos,gradcam,ig,rise,mask")
    ev.add_argument("--resolutions", default="7,28,224", help="resolutions of the optimization methods")
    ev.add_argument("--model", default="efficientnet_lite0", help=model_help)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--out", default="igospp-eval")
    ev.add_argument("--shard", default="0/1", help="K/N: this process takes the images whose index is K mod N; "
                    "'auto' reads torchrun's RANK/WORLD_SIZE or a Slurm array's task id and count")
    ev.add_argument("--protocol", default="igospp", choices=list(PROTOCOLS))
    ev.add_argument("--iterations", type=int, default=None)
    ev.add_argument("--mask-iterations", type=int, default=None, help="iterations of Mask (default 500)")
    ev.add_argument("--ig-steps", type=int, default=None, help="integration steps (not applied to mask)")
    ev.add_argument("--rise-masks", type=int, default=None)
    ev.add_argument("--batch-size", type=int, default=None, help="images per model call")
    ev.add_argument("--batch-images", type=int, default=1, help="images explained together (faster on a GPU)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=cmd_evaluate)

    su = sub.add_parser("summarize", help="merge the records of a run (or of its shards) into summary.md/.csv")
    su.add_argument("dir")
    su.set_defaults(func=cmd_summarize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``igospp`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, WeightsUnavailableError) as err:
        print(f"igospp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("igospp: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
