"""Throughput of one process with all the CPU threads against several processes of fewer threads each.

On a small CPU, PyTorch's intra-op parallelism is far from perfect for a small network: a long run
of many independent heatmaps (``tools/atscale.py``, ``igospp evaluate``) may explain more images
per hour as several processes side by side, sharing the run through ``evaluate``'s claims, than
as one process using every thread. This script measures it, side by side in one run:

* ``one``: one process with ``--threads`` threads explains ``--processes`` heatmaps, one after
  the other;
* ``split``: ``--processes`` processes with ``--threads / --processes`` threads each explain one
  heatmap each, at the same time.

Both do the same work (the same photo, method and settings); each process loads the model first,
and the clock runs from a common start, given once every process has loaded, to the last
heatmap's end, so loading is not counted. The two modes alternate ``--repeats`` times. The ratio
reported is the split mode's heatmaps per second over the one-process mode's (above 1: splitting
is faster).

Usage::

    python benchmarks/bench_processes.py                                     # iGOS++ 28 x 28, T = 3, S = 20
    python benchmarks/bench_processes.py --iterations 20 --out benchmarks/records/processes.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from igospp.methods import REGISTRY
from igospp.storage import write_json


def worker(args: argparse.Namespace) -> None:
    """Load the model, say so, wait for the common start, explain ``--heatmaps`` heatmaps, print what it took.

    Printed as JSON: the start and end times, the threads, the process's system-CPU seconds and
    minor page faults over the heatmaps, and a SHA-256 of the last saliency map's bytes (two runs
    that compute the same numbers print the same digest).
    """
    import hashlib
    import resource

    import torch

    import igospp
    from igospp.methods import MethodOptions
    from igospp.studies.benchmark import Job, run_method

    torch.set_num_threads(args.worker_threads)
    bundle = igospp.load_model("efficientnet_lite0", device="cpu")
    x = bundle.preprocess(igospp.sample_images([args.photo])[args.photo])
    job = Job(args.method, args.resolution if REGISTRY[args.method].takes_resolution else None)
    options = MethodOptions(iterations=args.iterations, ig_steps=args.ig_steps, rise_masks=args.rise_masks)
    target = [int(bundle.model(x).argmax())]
    print("ready", flush=True)
    sys.stdin.readline()                                    # the common start: every worker has loaded
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.time()
    for _ in range(args.heatmaps):
        saliency, _, _ = run_method(bundle, x, job, target, options=options)
    end = time.time()
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"start": start, "end": end, "threads": torch.get_num_threads(),
                      "system_seconds": after.ru_stime - before.ru_stime,
                      "minor_faults": after.ru_minflt - before.ru_minflt,
                      "digest": hashlib.sha256(saliency.detach().contiguous().numpy().tobytes()).hexdigest()}))


def measure(args: argparse.Namespace, processes: int, threads: int, heatmaps: int,
            env: dict[str, str | None] | None = None) -> dict:
    """Start ``processes`` workers of ``threads`` threads, ``heatmaps`` each; the wall time of the whole.

    ``env``: environment variables of the workers on top of this process's (``None`` as a value:
    removed). ``args`` holds the work: ``method``, ``resolution``, ``iterations``, ``ig_steps``,
    ``rise_masks`` and ``photo``.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker-threads", str(threads), "--heatmaps",
           str(heatmaps), "--method", args.method, "--resolution", str(args.resolution),
           "--iterations", str(args.iterations), "--ig-steps", str(args.ig_steps), "--photo", args.photo,
           "--rise-masks", str(args.rise_masks)]
    env = {k: v for k, v in {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}.items() if v is not None}
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(processes)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a worker failed while loading:\n{p.communicate()[1]}")
    start = time.time()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a worker failed:\n{err}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["end"] for r in results) - start
    return {"processes": processes, "threads": threads, "heatmaps": processes * heatmaps, "seconds": wall,
            "heatmaps_per_second": processes * heatmaps / wall,
            "system_seconds": sum(r["system_seconds"] for r in results),
            "minor_faults": sum(r["minor_faults"] for r in results), "digests": [r["digest"] for r in results]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads in all (default: the CPU count)")
    ap.add_argument("--processes", type=int, default=2, help="processes of the split mode (default 2)")
    ap.add_argument("--method", default="igospp", help="a method of igospp.methods.REGISTRY (default igospp)")
    ap.add_argument("--resolution", type=int, default=28, help="mask resolution (default 28)")
    ap.add_argument("--iterations", type=int, default=3, help="iterations per heatmap (default 3)")
    ap.add_argument("--ig-steps", type=int, default=20, help="integration steps (default 20, the paper's)")
    ap.add_argument("--rise-masks", type=int, default=8000, help="RISE's masks (default 8000, the paper's)")
    ap.add_argument("--photo", default="coffee", help="a bundled photo (igospp.SAMPLE_IMAGES; default coffee)")
    ap.add_argument("--repeats", type=int, default=2, help="times each mode runs, alternated (default 2)")
    ap.add_argument("--out", default=None, help="write the result as JSON here (atomically)")
    ap.add_argument("--worker-threads", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--heatmaps", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_threads is not None:
        worker(args)
        return 0
    if args.method not in REGISTRY:
        ap.error(f"--method must be one of {', '.join(REGISTRY)}, got {args.method!r}")
    for name in ("threads", "processes", "iterations", "ig_steps", "repeats", "resolution", "rise_masks"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.threads % args.processes:
        ap.error(f"--threads ({args.threads}) must be a multiple of --processes ({args.processes}), so that every "
                 "process of the split mode gets the same threads")

    import igospp
    from igospp.provenance import versions

    if args.photo not in igospp.SAMPLE_IMAGES:
        ap.error(f"--photo must be one of {', '.join(igospp.SAMPLE_IMAGES)}, got {args.photo!r}")
    runs: dict[str, list[dict]] = {"one": [], "split": []}
    for _ in range(args.repeats):
        runs["one"].append(measure(args, 1, args.threads, args.processes))
        runs["split"].append(measure(args, args.processes, args.threads // args.processes, 1))
    rate = {mode: sum(r["heatmaps"] for r in rs) / sum(r["seconds"] for r in rs) for mode, rs in runs.items()}
    result = {
        "machine": f"{versions()['cpu']}, {os.cpu_count()} logical CPUs",
        "versions": versions(),
        "settings": {k: getattr(args, k) for k in ("threads", "processes", "method", "resolution", "iterations",
                                                    "ig_steps", "rise_masks", "photo", "repeats")},
        "runs": runs,
        "heatmaps_per_hour": {mode: 3600 * r for mode, r in rate.items()},
        "ratio_split_to_one": rate["split"] / rate["one"],
    }
    print(f"{result['machine']}; {args.method} {args.resolution} x {args.resolution}, T = {args.iterations}, "
          f"S = {args.ig_steps}, {args.repeats} repeats")
    print(f"one process of {args.threads} threads: {result['heatmaps_per_hour']['one']:.1f} heatmaps / hour")
    print(f"{args.processes} processes of {args.threads // args.processes} thread(s): "
          f"{result['heatmaps_per_hour']['split']:.1f} heatmaps / hour")
    print(f"ratio split / one: {result['ratio_split_to_one']:.2f}")
    if args.out:
        write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
