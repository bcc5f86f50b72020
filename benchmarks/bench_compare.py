"""Time two versions of igospp side by side, in one run: the working tree against a git revision.

A speed-up is only meaningful as a ratio measured under the same conditions. This script checks
out ``--ref`` (default ``HEAD``: the last commit) into a git worktree under ``_build/bench/``, then
times ``igospp.explain`` with both versions on the same photos, alternating heatmap by heatmap (A
B, then B A for the next image) so that a change of the machine's load hits both. Each heatmap is
timed by ``benchmarks/bench_explain.py`` in a fresh process whose ``PYTHONPATH`` points at one
version's sources; both versions save their masks, and the table reports, per method and
resolution, the median seconds per heatmap of each, their ratio, and the largest difference between
the two versions' masks (zero when the change is exact).

Usage::

    python benchmarks/bench_compare.py --ref HEAD --methods igospp --resolutions 28 --n 3
    python benchmarks/bench_compare.py --ref v0.1 --methods igospp,igos --resolutions 28,224 --n 5
    python benchmarks/bench_compare.py --ref HEAD~3 --new HEAD              # two commits
    python benchmarks/bench_compare.py --ref worktree --ref-fields '{"accelerate": false}'   # two settings

``--ref worktree`` (or ``--new worktree``) is the working tree itself; ``--ref-fields`` and
``--new-fields`` give each side extra ``Config`` fields as JSON, so that one library can be
timed under two settings (the faithful default against a speed option) in the same way.

Results are written (atomically) as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from igospp.storage import write_json

ROOT = Path(__file__).resolve().parents[1]



def worktree(ref: str) -> Path:
    """A detached worktree of ``ref`` under ``_build/bench/`` (reused when it is already there).

    ``"worktree"`` is the working tree itself.
    """
    if ref == "worktree":
        return ROOT
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True,
                         text=True)
    if sha.returncode != 0:
        raise SystemExit(f"--ref {ref!r} is not a commit of this repository: {sha.stderr.strip()}")
    path = ROOT / "_build" / "bench" / f"ref-{sha.stdout.strip()[:12]}"
    if not (path / "igospp_src").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path), sha.stdout.strip()], cwd=ROOT,
                       check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="HEAD", help="git revision to compare with")
    ap.add_argument("--new", default=None, help="git revision to time against --ref (default: the working tree)")
    ap.add_argument("--methods", default="igospp")
    ap.add_argument("--resolutions", default="28")
    ap.add_argument("--n", type=int, default=3, help="number of photos (bundled ones unless --images)")
    ap.add_argument("--images", type=Path, default=None)
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--ig-steps", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref-fields", default="{}", help="extra Config fields (JSON) for the --ref side")
    ap.add_argument("--new-fields", default="{}", help="extra Config fields (JSON) for the --new side")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_compare.json"))
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n must be at least 1, got {args.n}")

    trees = {"ref": worktree(args.ref), "new": ROOT if args.new is None else worktree(args.new)}
    work = ROOT / "_build" / "bench" / "compare"
    shutil.rmtree(work, ignore_errors=True)  # never reuse a timing or a mask of an earlier comparison
    common = ["--methods", args.methods, "--resolutions", args.resolutions, "--n", str(args.n),
              "--device", args.device, "--threads", str(args.threads)]
    for flag, value in (("--images", args.images), ("--iterations", args.iterations), ("--ig-steps", args.ig_steps)):
        if value is not None:
            common += [flag, str(value)]
    for i in range(args.n):
        for name in (("ref", "new") if i % 2 == 0 else ("new", "ref")):
            env = dict(os.environ, PYTHONPATH=str(trees[name] / "igospp_src"))
            # The bench script of the working tree times both versions: the same harness, two libraries.
            fields = args.ref_fields if name == "ref" else args.new_fields
            run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_explain.py"), *common,
                                  "--only", str(i), "--fields", fields, "--out", str(work / f"{name}.json"),
                                  "--masks", str(work / f"masks-{name}")],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if run.returncode != 0:
                raise SystemExit(f"bench_explain.py failed for --{name} side:\n{run.stderr}")

    results = {name: json.loads((work / f"{name}.json").read_text()) for name in trees}
    rows = []
    header = (f"{'method':<10} {'res':>4} {'ref s/heatmap':>14} {'new s/heatmap':>14} {'speed-up':>9} "
              f"{'max |mask diff|':>16}")
    new = "the working tree" if args.new is None else f"{args.new} ({trees['new'].name})"
    print(f"# {results['new']['device']}; ref = {args.ref} ({trees['ref'].name}) {args.ref_fields}, "
          f"new = {new} {args.new_fields}; medians over {args.n} photo(s)")
    print(header)
    print("-" * len(header))
    for method in args.methods.split(","):
        for res in (int(r) for r in args.resolutions.split(",")):
            secs = {name: [r["seconds"] for r in results[name]["rows"] if r["method"] == method
                           and r["resolution"] == res] for name in trees}
            images = [r["image"] for r in results["new"]["rows"] if r["method"] == method and r["resolution"] == res]
            diff = max(float(np.abs(np.load(work / "masks-ref" / f"{method}_{res}_{im}.npy")
                                    - np.load(work / "masks-new" / f"{method}_{res}_{im}.npy")).max())
                       for im in images)
            ref_s, new_s = float(np.median(secs["ref"])), float(np.median(secs["new"]))
            rows.append(dict(method=method, resolution=res, ref_seconds=secs["ref"], new_seconds=secs["new"],
                             ref_median=ref_s, new_median=new_s, speedup=ref_s / new_s, max_mask_diff=diff))
            print(f"{method:<10} {res:>4} {ref_s:>14.2f} {new_s:>14.2f} {ref_s / new_s:>9.2f} {diff:>16.2e}")
    write_json(args.out, dict(ref=args.ref, new=args.new or "working tree", ref_fields=json.loads(args.ref_fields),
                              new_fields=json.loads(args.new_fields), device=results["new"]["device"],
                              n=args.n, rows=rows))
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
