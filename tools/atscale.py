"""Run the at-scale reproduction (issue 14): the paper's tables on real ImageNet photos.

Each run is one call of :func:`igospp.studies.benchmark.evaluate` (what ``igospp evaluate``
does) at the paper's settings (the library's defaults: T = 20 iterations, S = 20 integration
steps, Mask 500 iterations, RISE 8000 masks, Integrated Gradients 50 steps, the authors'
insertion/deletion protocol), writing one record per photo and method under
``book/results/<run>/records/``. ``igospp summarize book/results/<run>`` reproduces its tables.

The photos are a seeded random order of the folder (``n`` = all of them, ``seed`` 0): a run
cut short has complete rows for a random subset of the classes, and the runs that take fewer
photos take the first ones of the same order, so their photos are shared and comparisons are
paired. Runs resume: records already written with the same settings are kept, so a run is
simply started again, in this or a later session, until it is complete; records made with
other settings stop it before any work (``evaluate``'s check).

The photos themselves are never copied into the repository; only the records are committed.

Usage::

    python tools/atscale.py --list
    python tools/atscale.py table1_lite0 --images ../shared/data/imagenet-sample
    python tools/atscale.py table1_lite0 --photos 50      # stop after the first 50 photos of the order
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "book" / "results"
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "imagenet-sample"


@dataclass(frozen=True)
class Run:
    """One at-scale run: the paper item it stands for, the model, methods and resolutions.

    ``adversarial``: explain MI-FGSM adversarial versions of the photos (the paper's Fig. 4),
    made first by :func:`make_adversarial`, instead of the photos themselves. ``folder``: the
    results folder under ``book/results`` when it is another run's (one folder per paper table,
    so that ``igospp summarize`` shows the whole table); default the run's name.
    """

    item: str
    model: str
    methods: tuple[str, ...]
    resolutions: tuple[int, ...]
    adversarial: bool = False
    folder: str | None = None


#: The paper's Fig. 4 attack: targeted MI-FGSM towards "Persian cat" (class 283), 16/255 per
#: pixel, 10 steps, momentum 1 (as chapter 10).
ATTACK = {"target_class": 283, "epsilon": 16 / 255, "steps": 10, "decay": 1.0}


RUNS: dict[str, Run] = {
    # Table 1 at 224 and 28 first: the minimum (at least 50 photos) before anything else.
    "table1_lite0": Run("Table 1 (EfficientNet-Lite0)", "efficientnet_lite0",
                        ("igospp", "igos", "gradcam", "ig", "rise"), (224, 28)),
    "table3_lite0": Run("Table 3, the ablation (EfficientNet-Lite0; iGOS++ and I-GOS from table1_lite0)",
                        "efficientnet_lite0",
                        ("insertion", "naive", "igospp_nonoise", "igospp_fixedstep", "igospp_nobtv"), (224, 28)),
    "table2_lite2": Run("Table 2's role, a second architecture (EfficientNet-Lite2)", "efficientnet_lite2",
                        ("igospp", "igos", "gradcam", "ig"), (224, 28)),
    "table1_lite0_mask": Run("Table 1, Mask (EfficientNet-Lite0)", "efficientnet_lite0", ("mask",), (224, 28, 7),
                             folder="table1_lite0"),
    "table1_lite0_7": Run("Table 1 at 7 x 7 (EfficientNet-Lite0)", "efficientnet_lite0", ("igospp", "igos"), (7,),
                          folder="table1_lite0"),
    "fig4_adversarial_lite0": Run("Fig. 4, iGOS++ on MI-FGSM adversarial photos (EfficientNet-Lite0; the natural "
                                  "photos' maps are table1_lite0's)", "efficientnet_lite0", ("igospp",), (28,),
                                  adversarial=True),
}


def make_adversarial(images: Path, out: Path, model: str, n: int, device: str = "auto") -> Path:
    """Write a targeted MI-FGSM version of each of the first ``n`` photos (:data:`ATTACK`) as an 8-bit PNG.

    The attack runs on the model's input (the photo resized to 224 x 224, normalized); the PNG
    holds that adversarial input, rounded to 8 bits, under the photo's name, so that
    ``evaluate`` reads it back as the same input up to the rounding (its success after the
    rounding is what the records show: the class each adversarial record explains). Photos
    already written are kept: the attack is deterministic (no random draw).
    """
    import numpy as np
    from PIL import Image

    from igospp.images import image_folder
    from igospp.models import load_model
    from igospp.studies import attacks

    out.mkdir(parents=True, exist_ok=True)
    bundle = load_model(model, device=device)
    eps, low, high = (t.to(bundle.device) for t in attacks.normalized_budget(ATTACK["epsilon"], bundle.mean,
                                                                               bundle.std))
    for rec in image_folder(images, n=n, seed=0):
        dest = out / f"{rec.name}.png"
        if dest.exists():
            continue
        x = bundle.preprocess(rec.load()).to(bundle.device)
        adv = attacks.mi_fgsm(bundle.model, x, ATTACK["target_class"], epsilon=eps, steps=ATTACK["steps"],
                              decay=ATTACK["decay"], low=low, high=high)
        pixels = np.round(bundle.deprocess(adv)[0] * 255).astype(np.uint8)
        tmp = dest.with_suffix(".tmp.png")
        Image.fromarray(pixels).save(tmp)
        tmp.replace(dest)                                   # atomic: a killed run leaves no half file
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help=f"one of {', '.join(RUNS)}")
    ap.add_argument("--images", default=str(DEFAULT_IMAGES), help="the ImageNet photos (default: %(default)s)")
    ap.add_argument("--photos", type=int, default=None,
                    help="process only the first PHOTOS photos of the seeded order (default: all)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda... (default auto)")
    ap.add_argument("--batch-images", type=int, default=1,
                    help="photos explained together (faster on a GPU; changes only float rounding)")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads of this process (default: torch's). Processes on one run share its work "
                         "(claims); on 2 cores one process of 2 threads is the faster (benchmarks/bench_processes.py)")
    ap.add_argument("--out", default=None, help="output folder (default book/results/<run>)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "igospp-atscale"),
                    help="where the adversarial photos are written (not committed; default %(default)s)")
    ap.add_argument("--list", action="store_true", help="list the runs and how many photos each has done")
    args = ap.parse_args(argv)

    from igospp.methods import REGISTRY

    if args.list or args.run is None:
        for name, run in RUNS.items():
            records = RESULTS / (run.folder or name) / "records"
            jobs = {f"{m}{r}" if REGISTRY[m].takes_resolution else m for m in run.methods for r in run.resolutions}
            done = {p.name.rsplit("__", 1)[0] for p in records.glob("*.json")
                    if p.stem.rsplit("__", 1)[-1] in jobs} if records.is_dir() else set()
            photos = sum(all((records / f"{stem}__{j}.json").exists() for j in jobs) for stem in done)
            print(f"{name:24s} {run.item}: {photos} photos complete")
        return 0
    if args.run not in RUNS:
        ap.error(f"run must be one of {', '.join(RUNS)}, got {args.run!r}")
    images = Path(args.images)
    if not images.is_dir():
        ap.error(f"--images {str(images)!r} is not a folder; give the folder of ImageNet photos "
                 f"(the project's ../shared/data/imagenet-sample)")
    if args.photos is not None and args.photos <= 0:
        ap.error(f"--photos must be a positive number of photos, got {args.photos}")
    if args.threads is not None and args.threads <= 0:
        ap.error(f"--threads must be a positive number of threads, got {args.threads}")

    import torch

    from igospp.images import image_folder
    from igospp.studies.benchmark import evaluate

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    n_all = len(image_folder(images))
    run = RUNS[args.run]
    out = Path(args.out) if args.out else RESULTS / (run.folder or args.run)
    # The first `photos` of the seeded order of all n_all photos (image_folder takes a seeded
    # permutation and keeps its first n), so every run and every prefix shares the same photos.
    n = n_all if args.photos is None else min(args.photos, n_all)
    if run.adversarial:
        images = make_adversarial(images, Path(args.work) / f"adversarial_{run.model}", run.model, n, args.device)
    result = evaluate(images, out, model=run.model, device=args.device, n=n, seed=0,
                      methods=run.methods, resolutions=run.resolutions, batch_images=args.batch_images)
    print(f"{args.run}: {len(result.written)} records written, {result.reused} reused, "
          f"{len(result.skipped_images)} photos skipped -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
