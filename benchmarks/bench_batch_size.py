"""Measure how much ``batch_size`` (the chunk size of the model calls) moves the numbers.

``batch_size`` only decides how many images go through the model at once: the library draws the
noise and adds up the per-image sums in the same order whatever the chunk size (exact on a float64
model, see ``tests/test_speed.py``). The model's kernels, though, may round differently for another
batch size (oneDNN on the CPU and cuDNN pick their algorithm by shape), and the line search of the
optimization can amplify such a last-bit difference over the iterations. This script measures, on
one bundled photo and EfficientNet-Lite0, for chunk sizes ``A`` and ``B`` (``--batch-sizes 3,8``):

* ``forward``: the largest difference of the logits of ``--path-images`` noisy copies of the photo
  sent through the model in chunks of ``A`` and of ``B`` (the caller's model and the accelerated
  copy that the optimization runs, :func:`igospp.accelerate`), and of their input gradients;
* ``explain``: iGOS++ at ``--resolution`` for ``--iterations`` iterations with ``Config.batch_size``
  ``A`` and ``B``: the largest difference of the masks (``mask``, ``deletion_mask``,
  ``insertion_mask``) and how many line-search steps differ;
* ``metric``: :func:`igospp.metrics.insertion_deletion` of one saliency map (the ``A`` run's) with
  ``batch_size`` ``A`` and ``B``, and of each run's own map: the differences of the four AUCs.

Usage::

    python benchmarks/bench_batch_size.py                                # coffee, 28 x 28, T = 6, CPU
    python benchmarks/bench_batch_size.py --device cuda --batch-sizes 3,64
    python benchmarks/bench_batch_size.py --iterations 1 --ig-steps 2 --resolution 7   # a quick check

The record (machine, versions, settings, results) is printed and written (atomically) as JSON to
``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import device_name

import igospp
import igospp.metrics  # imported now: the run must not pick up files edited while it runs
from igospp.provenance import versions
from igospp.storage import write_json

ROOT = Path(__file__).resolve().parents[1]
AUCS = ("deletion_auc", "insertion_auc", "legacy_deletion_auc", "legacy_insertion_auc")


def _commit() -> str:
    """The short hash of ``HEAD``, with ``+dirty`` when the working tree has changes (``"unknown"`` outside git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def chunked(model: torch.nn.Module, x: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of ``x`` and the input gradient of the top class's summed logit, ``chunk`` images per call."""
    outs, grads = [], []
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].detach().clone().requires_grad_(True)
        out = model(part)
        (grad,) = torch.autograd.grad(out.gather(1, out.detach().argmax(dim=1, keepdim=True)).sum(), part)
        outs.append(out.detach())
        grads.append(grad)
    return torch.cat(outs), torch.cat(grads)


def _max_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float | None:
    return None if a is None or b is None else float((a.double() - b.double()).abs().max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", default="coffee", help=f"a bundled photo, one of {list(igospp.sample_images())}")
    ap.add_argument("--batch-sizes", default="3,8", help="the two chunk sizes compared, A,B")
    ap.add_argument("--path-images", type=int, default=24, help="images of the forward comparison")
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--ig-steps", type=int, default=None, help="integration steps (default: the preset's 20)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_batch_size.json"))
    args = ap.parse_args(argv)
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        ap.error(f"--batch-sizes must be two comma-separated integers, got {args.batch_sizes!r}")
    if len(sizes) != 2 or min(sizes) < 1 or sizes[0] == sizes[1]:
        ap.error(f"--batch-sizes must be two different positive integers A,B, got {args.batch_sizes!r}")
    for flag, value in (("--path-images", args.path_images), ("--resolution", args.resolution),
                        ("--iterations", args.iterations), ("--threads", args.threads)):
        if value < 1:
            ap.error(f"{flag} must be at least 1, got {value}")
    if args.ig_steps is not None and args.ig_steps < 1:
        ap.error(f"--ig-steps must be at least 1, got {args.ig_steps}")
    photos = igospp.sample_images()
    if args.photo not in photos:
        ap.error(f"--photo must be one of {list(photos)}, got {args.photo!r}")

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    bundle = igospp.load_model("efficientnet_lite0", device=args.device)
    model, device = bundle.model, bundle.device
    x = bundle.preprocess([photos[args.photo]])
    a, b = sizes
    record = dict(
        script="benchmarks/bench_batch_size.py", argv=sys.argv[1:] if argv is None else argv,
        date=datetime.date.today().isoformat(), commit=_commit(), model="efficientnet_lite0",
        device=device_name(device), versions=versions(),
        settings=dict(photo=args.photo, batch_sizes=sizes, path_images=args.path_images, resolution=args.resolution,
                      iterations=args.iterations, ig_steps=args.ig_steps, threads=args.threads),
    )
    print(f"# EfficientNet-Lite0 on {record['device']}; torch {torch.__version__}; photo {args.photo}; "
          f"batch sizes {a} vs {b}", flush=True)

    # forward: noisy copies of the photo (the optimization's path images carry N(0, 0.2^2) noise)
    gen = torch.Generator().manual_seed(0)
    noisy = x + 0.2 * torch.randn(args.path_images, *x.shape[1:], generator=gen).to(device, x.dtype)
    with torch.no_grad():
        clean = model(x)
    forward = {}
    for name, net in (("model", model), ("accelerated", igospp.accelerate(model, x, clean))):
        (out_a, grad_a), (out_b, grad_b) = chunked(net, noisy, a), chunked(net, noisy, b)
        forward[name] = dict(max_abs_logit_diff=_max_diff(out_a, out_b),
                             max_abs_logit=float(out_a.abs().max()),
                             max_abs_input_grad_diff=_max_diff(grad_a, grad_b),
                             max_abs_input_grad=float(grad_a.abs().max()))
        print(f"forward ({name}): max |logit diff| {forward[name]['max_abs_logit_diff']:.3e}, "
              f"max |input grad diff| {forward[name]['max_abs_input_grad_diff']:.3e}", flush=True)
    record["forward"] = forward
    write_json(args.out, record)

    # explain: iGOS++ with each chunk size
    fields = {} if args.ig_steps is None else {"ig_steps": args.ig_steps}
    runs = {}
    for size in sizes:
        cfg = igospp.Config.igospp(resolution=args.resolution, iterations=args.iterations, batch_size=size,
                                   low_score_threshold=None, progress=False, **fields)
        start = time.perf_counter()
        runs[size] = igospp.explain(model, x, config=cfg)
        print(f"explain batch_size={size}: {time.perf_counter() - start:.1f} s", flush=True)
    ea, eb = runs[a], runs[b]
    per_iteration = [_max_diff(ea.history.insertion[t], eb.history.insertion[t]) for t in range(args.iterations)]
    record["explain"] = dict(
        config=ea.config.replace(batch_size=None).to_dict(),
        max_abs_mask_diff=_max_diff(ea.mask, eb.mask),
        max_abs_deletion_mask_diff=_max_diff(ea.deletion_mask, eb.deletion_mask),
        max_abs_insertion_mask_diff=_max_diff(ea.insertion_mask, eb.insertion_mask),
        max_abs_saliency_diff=_max_diff(ea.saliency, eb.saliency),
        steps={str(a): ea.history.step.flatten().tolist(), str(b): eb.history.step.flatten().tolist()},
        steps_differing=int((ea.history.step != eb.history.step).sum()),
        max_abs_tracked_insertion_score_diff_per_iteration=per_iteration,
    )
    print(f"explain: max |mask diff| {record['explain']['max_abs_mask_diff']:.3e}; line-search steps differing: "
          f"{record['explain']['steps_differing']} of {args.iterations}", flush=True)
    write_json(args.out, record)

    # metric: one saliency map scored with each chunk size, and each run's own map
    same = {size: igospp.metrics.insertion_deletion(model, x, ea.cell_saliency, batch_size=size) for size in sizes}
    own = {size: igospp.metrics.insertion_deletion(model, x, runs[size].cell_saliency, batch_size=size)
           for size in sizes}
    record["metric"] = dict(
        protocol="igospp",
        same_saliency={k: _max_diff(getattr(same[a], k), getattr(same[b], k)) for k in AUCS},
        own_saliency={k: _max_diff(getattr(own[a], k), getattr(own[b], k)) for k in AUCS},
        aucs={str(size): {k: float(getattr(own[size], k)) for k in AUCS} for size in sizes},
    )
    print("metric, same map:  " + ", ".join(f"{k} {v:.3e}" for k, v in record["metric"]["same_saliency"].items()))
    print("metric, own maps:  " + ", ".join(f"{k} {v:.3e}" for k, v in record["metric"]["own_saliency"].items()))
    record["seconds"] = time.perf_counter() - started
    write_json(args.out, record)
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
