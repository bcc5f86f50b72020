"""Run ``evaluate`` on the tiny model of conftest.py in a process of its own (tests/test_reliability_records.py).

The reliability tests kill this process at a random point, or run two of them on one folder::

    python tests/evaluate_worker.py IMAGES OUT RESULT [--methods rise,igospp] [--resolutions 4]
        [--delay SECONDS] [--ready FILE --go FILE]

It writes ``RESULT`` (JSON: the names of the record files written, the records reused, the
pairs claimed by another process, the skipped files) when ``evaluate`` returns. ``--delay``
sleeps before each method call, so that a run lasts long enough to be killed or overlapped
mid-way; ``--ready``/``--go``: create ``--ready`` once imported, then wait for ``--go`` to
exist before starting, so that two workers start together.

Example (the module imports without running anything):
    >>> parse(["imgs", "out", "result.json", "--delay", "0.5"]).delay
    0.5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# The settings of the tests: every method runs on the tiny model in a fraction of a second.
FAST = dict(iterations=1, ig_steps=2, rise_masks=4, ig_path_steps=2)


def parse(argv: list[str]) -> argparse.Namespace:
    """The worker's arguments (see the module's documentation)."""
    parser = argparse.ArgumentParser(prog="evaluate_worker")
    parser.add_argument("images")
    parser.add_argument("out")
    parser.add_argument("result")
    parser.add_argument("--methods", default="rise,igospp")
    parser.add_argument("--resolutions", default="4")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--ready", default=None)
    parser.add_argument("--go", default=None)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run ``evaluate`` as the arguments say and write its result; the exit status is 0."""
    args = parse(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    from igospp.methods import MethodOptions
    from igospp.studies import benchmark
    from tests.conftest import tiny_bundle

    torch.set_num_threads(1)                     # the same arithmetic in every worker, and light on the CPUs
    if args.delay:
        run_method = benchmark.run_method

        def slow(*a, **k):
            time.sleep(args.delay)
            return run_method(*a, **k)

        benchmark.run_method = slow
    if args.ready:
        Path(args.ready).write_text(str(os.getpid()))
    while args.go and not Path(args.go).exists():
        time.sleep(0.01)
    run = benchmark.evaluate(args.images, args.out, model=tiny_bundle(), methods=args.methods.split(","),
                             resolutions=[int(r) for r in args.resolutions.split(",")],
                             options=MethodOptions(**FAST), progress=False)
    Path(args.result).write_text(json.dumps({"written": [p.name for p in run.written], "reused": run.reused,
                                             "claimed_elsewhere": run.claimed_elsewhere,
                                             "skipped": run.skipped_images}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
