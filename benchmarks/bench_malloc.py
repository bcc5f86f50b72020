"""Speed of the explanations with the C library's default memory allocator against a tuned one.

glibc's ``malloc`` hands every block above a threshold (dynamic, at most 32 MiB) straight back to
the system when it is freed, and trims the heap's free top. PyTorch on the CPU allocates and frees
tensors of several megabytes at every model call, so every call faults its memory in again: on
this project's 2-core VM the at-scale runs spent a quarter to a half of their CPU time in the
kernel, at about 150,000 minor page faults a second. The tuning
:data:`TUNED` (the environment variable ``GLIBC_TUNABLES``, read when a process starts) keeps
freed memory in the process for reuse. It changes no number: the script checks that both modes
compute bit-identical saliency maps.

Side by side in one run, each mode alternating ``--repeats`` times, one process with ``--threads``
threads explains ``--heatmaps`` heatmaps of ``--method`` after loading the model (the clock starts
after loading; ``bench_processes.measure``). The ratio reported is the tuned mode's heatmaps per
second over the default's (above 1: the tuning is faster). ``--methods`` takes several methods; each
gets its own ratio.

Usage::

    python benchmarks/bench_malloc.py                                       # iGOS++ 28 x 28 and RISE
    python benchmarks/bench_malloc.py --methods igospp,igos,rise --out benchmarks/records/malloc.json

To use the tuning, start the process with it (``make`` does, for the chapters and the tests)::

    export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824\
    :glibc.malloc.top_pad=268435456
    python tools/atscale.py table1_lite0
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_processes import measure

import igospp
from igospp.methods import REGISTRY
from igospp.provenance import versions
from igospp.storage import write_json

#: Blocks up to 32 MiB (glibc's largest threshold) from the heap, and up to 1 GiB of free heap top
#: kept, grown 256 MiB at a time.
TUNED = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=268435456"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="igospp,rise", help="methods of igospp.methods.REGISTRY (default igospp,rise)")
    ap.add_argument("--resolution", type=int, default=28, help="mask resolution (default 28)")
    ap.add_argument("--iterations", type=int, default=3, help="iterations per heatmap (default 3)")
    ap.add_argument("--ig-steps", type=int, default=20, help="integration steps (default 20, the paper's)")
    ap.add_argument("--rise-masks", type=int, default=8000, help="RISE's masks (default 8000, the paper's)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads (default: the CPU count)")
    ap.add_argument("--heatmaps", type=int, default=1, help="heatmaps per measurement (default 1)")
    ap.add_argument("--photo", default="coffee", help="a bundled photo (igospp.SAMPLE_IMAGES; default coffee)")
    ap.add_argument("--repeats", type=int, default=2, help="times each mode runs, alternated (default 2)")
    ap.add_argument("--tuned", default=TUNED, help="GLIBC_TUNABLES of the tuned mode (default: %(default)s)")
    ap.add_argument("--out", default=None, help="write the result as JSON here (atomically)")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    bad = [m for m in methods if m not in REGISTRY]
    if bad or not methods:
        ap.error(f"--methods must be methods of {', '.join(REGISTRY)}, separated by commas; got {args.methods!r}")
    for name in ("threads", "heatmaps", "iterations", "ig_steps", "repeats", "resolution", "rise_masks"):
        if getattr(args, name) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")

    if args.photo not in igospp.SAMPLE_IMAGES:
        ap.error(f"--photo must be one of {', '.join(igospp.SAMPLE_IMAGES)}, got {args.photo!r}")
    modes = {"default": {"GLIBC_TUNABLES": None}, "tuned": {"GLIBC_TUNABLES": args.tuned}}
    provenance = versions()
    result = {"machine": f"{provenance['cpu']}, {os.cpu_count()} logical CPUs", "versions": provenance,
              "settings": {k: getattr(args, k) for k in ("resolution", "iterations", "ig_steps", "rise_masks",
                                                          "threads", "heatmaps", "photo", "repeats", "tuned")},
              "methods": {}}
    print(f"{result['machine']}; {args.threads} threads, T = {args.iterations}, S = {args.ig_steps}, "
          f"{args.repeats} repeats of {args.heatmaps} heatmap(s)")
    for method in methods:
        work = argparse.Namespace(method=method, resolution=args.resolution, iterations=args.iterations,
                                  ig_steps=args.ig_steps, rise_masks=args.rise_masks, photo=args.photo)
        runs: dict[str, list[dict]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode, env in modes.items():
                runs[mode].append(measure(work, 1, args.threads, args.heatmaps, env=env))
        rate = {mode: sum(r["heatmaps"] for r in rs) / sum(r["seconds"] for r in rs) for mode, rs in runs.items()}
        identical = len({d for rs in runs.values() for r in rs for d in r["digests"]}) == 1
        result["methods"][method] = {"runs": runs, "seconds_per_heatmap": {m: 1 / r for m, r in rate.items()},
                                     "ratio_tuned_to_default": rate["tuned"] / rate["default"],
                                     "identical_saliency": identical}
        sys_share = {m: sum(r["system_seconds"] for r in rs) / sum(r["seconds"] * args.threads for r in rs)
                     for m, rs in runs.items()}
        print(f"{method}: default {1 / rate['default']:.1f} s / heatmap ({sys_share['default']:.0%} of the CPU "
              f"in the kernel), tuned {1 / rate['tuned']:.1f} s ({sys_share['tuned']:.0%}); ratio tuned / default "
              f"{rate['tuned'] / rate['default']:.2f}; saliency bit-identical: {identical}")
    if args.out:
        write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
