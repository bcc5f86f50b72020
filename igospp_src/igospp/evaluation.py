"""The comparison of the paper's Table 1 on any image set: resumable, shardable, summarised.

:func:`evaluate` runs every (method, resolution) on every image of a folder and writes one
JSON record per image and method, atomically, under ``OUT/records/``; a rerun skips what
is already there, so an interrupted run resumes where it stopped. ``shard=(k, n)`` keeps
the images whose index is ``k`` modulo ``n``, so ``n`` processes (or GPUs, or Slurm array
tasks) can share one output folder. :func:`summarize` turns the records into the table:
mean deletion and insertion AUC with standard errors and seconds per image, per method and
resolution, with the model and protocol in its header.

Every method explains the top-1 class of the clean image, as the paper does. Besides the
methods of :data:`igospp.baselines.METHOD_NAMES`, the ablations of the paper's Table 3 are
available as named variants of iGOS++ (:data:`ABLATIONS`).
"""

from __future__ import annotations

import csv
import io
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .baselines import METHOD_NAMES, Optimized, get_method
from .config import Config
from .data import ImageRecord, image_folder, sample_images
from .metrics import PROTOCOLS, CausalMetricResult, Protocol, insertion_deletion
from .models import ModelBundle, load_model
from .stats import PairedDifference, mean_se, paired_difference
from .storage import read_json, write_bytes, write_json

__all__ = ["OPTIMIZED", "ABLATIONS", "EVALUATION_METHODS", "DISPLAY_NAMES", "BUNDLED", "Job", "jobs", "versions",
           "run_method", "evaluate", "bundled_folder", "load_records", "summarize", "Summary", "paired"]

#: The ablations of the paper's Table 3 that are not methods of their own: iGOS++ with one
#: :class:`~igospp.Config` field replaced. "No BTV" is read as plain TV at the mask's resolution
#: (the I-GOS regularizer) in place of BTV; the paper does not say whether the smoothness term was
#: replaced or dropped. The fixed step is the library's ``step_size`` (1.6, the median accepted
#: step at 28 x 28; the paper does not give its value).
ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "igospp_nonoise": ("igospp", {"noise_std": 0.0}),
    "igospp_fixedstep": ("igospp", {"line_search": False}),
    "igospp_nobtv": ("igospp", {"smoothness": "tv"}),
}
OPTIMIZED: tuple[str, ...] = ("igospp", "igos", "mask", "naive", "insertion", *ABLATIONS)
#: Every method name :func:`evaluate` accepts.
EVALUATION_METHODS: tuple[str, ...] = (*METHOD_NAMES, *ABLATIONS)
DISPLAY_NAMES: dict[str, str] = {"gradcam": "Grad-CAM", "ig": "Integrated Gradients", "rise": "RISE", "mask": "Mask",
                                 "igos": "I-GOS", "naive": "I-GOS + Ins (naive)", "insertion": "Insertion",
                                 "igospp_nonoise": "iGOS++ (no noise)", "igospp_fixedstep": "iGOS++ (fix step size)",
                                 "igospp_nobtv": "iGOS++ (no BTV)", "igospp": "iGOS++"}
_ORDER = ("gradcam", "ig", "rise", "mask", "igos", "insertion", "naive", "igospp_nonoise", "igospp_fixedstep",
          "igospp_nobtv", "igospp")
#: ``images="bundled"``: the photos of :func:`igospp.sample_images`, written as PNG files under ``OUT/bundled``.
BUNDLED = "bundled"


@dataclass(frozen=True)
class Job:
    """One method at one requested resolution (``None`` for methods whose resolution is fixed)."""

    method: str
    resolution: int | None

    @property
    def key(self) -> str:
        return self.method if self.resolution is None else f"{self.method}{self.resolution}"


def jobs(methods: Sequence[str], resolutions: Sequence[int]) -> list[Job]:
    """The optimization methods at every resolution; Grad-CAM, IG and RISE once (their resolution is fixed)."""
    unknown = [m for m in methods if m not in EVALUATION_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; available: {list(EVALUATION_METHODS)}.")
    if not methods:
        raise ValueError("no methods given.")
    for r in resolutions:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"resolutions must be positive integers, got {r!r}.")
    out = []
    for m in methods:
        out += [Job(m, r) for r in resolutions] if m in OPTIMIZED else [Job(m, None)]
    return out


def versions() -> dict[str, str]:
    """Versions of Python and the key packages, the GPU and CPU names and PyTorch's CPU threads, for provenance."""
    from . import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "igospp": __version__}
    for pkg in ("torch", "torchvision", "numpy", "captum", "grad-cam", "timm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["cuda"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    out["cpu"] = _cpu_name()
    out["cpu_threads"] = str(torch.get_num_threads())
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _options(job: Job, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` that ``job``'s method takes.

    ``ig_steps`` is not applied to Mask: its plain gradient *is* the one-step path, and more
    steps would turn it into I-GOS. ``mask_iterations``, when given, replaces ``iterations`` for
    Mask (its default is 500 plain-gradient steps, against 20 integrated-gradient steps).
    """
    if job.method == "mask":
        keys = ("iterations", "seed", "batch_size")
        if options.get("mask_iterations") is not None:
            options = dict(options, iterations=options["mask_iterations"])
    elif job.method in OPTIMIZED:
        keys = ("iterations", "ig_steps", "seed", "batch_size")
    else:
        keys = {"rise": ("n_masks", "seed", "batch_size"), "ig": ("steps", "batch_size"), "gradcam": ()}[job.method]
    rename = {"rise_masks": "n_masks", "ig_path_steps": "steps"}
    picked = {rename.get(k, k): v for k, v in options.items() if v is not None and rename.get(k, k) in keys}
    return picked


def run_method(bundle: ModelBundle, images: torch.Tensor, job: Job, targets: list[int],
               protocol: str | Protocol = "igospp", options: dict[str, Any] | None = None
               ) -> tuple[torch.Tensor, CausalMetricResult, dict[str, Any]]:
    """Saliency of ``job`` for a batch, its insertion/deletion result and timings.

    Returns:
        ``(saliency (B, 1, h, w), metric result, info)`` where ``info`` has ``seconds`` (the
        method's wall time for the batch), ``metric_seconds``, the method's configuration and,
        for optimization methods, the :class:`~igospp.Explanation` under ``"explanation"``.
    """
    resolution = 28 if job.resolution is None else job.resolution
    if job.method in ABLATIONS:
        base, changes = ABLATIONS[job.method]
        method: Any = Optimized(Config.preset(base, resolution=resolution, **_options(job, options or {}),
                                              **changes))
    else:
        method = get_method(job.method, resolution=resolution, **_options(job, options or {}))
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    saliency = method(bundle.model, images, target=targets)
    sync()
    seconds = time.perf_counter() - start
    result = insertion_deletion(bundle.model, images, saliency, target=targets, protocol=protocol)
    sync()
    info: dict[str, Any] = {"seconds": seconds, "metric_seconds": time.perf_counter() - start - seconds}
    if isinstance(method, Optimized):
        info["config"] = method.config.to_dict()
        info["explanation"] = method.last_explanation
    else:
        info["config"] = {k: v for k, v in vars(method).items() if isinstance(v, (int, float, str, bool, type(None)))}
        info["config"]["method"] = job.method
    return saliency, result, info


def _resolution_label(saliency: torch.Tensor) -> str:
    h, w = saliency.shape[-2:]
    return f"{h}" if h == w else f"{h}x{w}"


def _record_path(out: Path, image: ImageRecord, job: Job) -> Path:
    return out / "records" / f"{image.name}__{job.key}.json"


def bundled_folder(out: str | Path) -> Path:
    """Write the bundled photos (:func:`igospp.sample_images`) as PNG files under ``out/bundled`` and return it.

    Files already there are kept, so a resumed run sees the same images.
    """
    folder = Path(out) / BUNDLED
    for name, photo in sample_images().items():
        path = folder / f"{name}.png"
        if not path.exists():
            buffer = io.BytesIO()
            Image.fromarray(photo).save(buffer, format="PNG")
            write_bytes(path, buffer.getvalue())
    return folder


def evaluate(images: str | Path, out: str | Path, *, model: str | ModelBundle = "efficientnet_lite0",
             device: str = "auto", n: int | None = None, seed: int = 0,
             methods: Sequence[str] = ("igospp", "igos", "gradcam", "ig", "rise", "mask"),
             resolutions: Sequence[int] = (7, 28, 224), shard: tuple[int, int] = (0, 1),
             protocol: str = "igospp", options: dict[str, Any] | None = None, batch_images: int = 1,
             progress: bool = True) -> list[Path]:
    """Run the comparison on a folder and write one record per image and method.

    Args:
        images: folder of images (see :func:`igospp.image_folder`), or ``"bundled"`` for the
            photos bundled with scikit-image and scikit-learn (see :func:`bundled_folder`).
        out: output folder; records go to ``out/records/``.
        model: a model name for :func:`igospp.load_model` or a :class:`~igospp.ModelBundle`.
        device: where to run (``"auto"``, ``"cpu"``, ``"cuda"``...).
        n: how many images (a seeded random subset); ``None``: all.
        seed: seed of the subset, of the optimization noise and of RISE's masks.
        methods: any of :data:`EVALUATION_METHODS` (the comparison methods and the ablations).
        resolutions: mask resolutions of the optimization methods.
        shard: ``(k, n)``: only the images whose index is ``k`` modulo ``n``.
        protocol: the insertion/deletion protocol name.
        options: method settings: ``iterations``, ``mask_iterations``, ``ig_steps``, ``batch_size``,
            ``rise_masks``, ``ig_path_steps`` (values ``None`` are ignored).
        batch_images: images explained together by one call (faster on a GPU).
        progress: show a progress bar.

    Returns:
        The record files written by this call (records already present are skipped).
    """
    k, n_shards = shard
    if not (isinstance(k, int) and isinstance(n_shards, int) and n_shards >= 1 and 0 <= k < n_shards):
        raise ValueError(f"shard must be K/N with 0 <= K < N, got {k}/{n_shards}.")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; available: {list(PROTOCOLS)}.")
    if batch_images < 1:
        raise ValueError(f"batch_images must be >= 1, got {batch_images}.")
    todo_jobs = jobs(list(methods), list(resolutions))
    if str(images) == BUNDLED:
        images = bundled_folder(out)
    folder = image_folder(images, n=n, seed=seed)
    mine = [rec for i, rec in enumerate(folder) if i % n_shards == k]
    bundle = load_model(model, device=device) if isinstance(model, str) else model
    out = Path(out)
    opts = dict(options or {}, seed=seed)
    meta = {"model": bundle.name, "device": str(bundle.device), "images_dir": str(Path(images)),
            "n_images": len(folder), "shard": f"{k}/{n_shards}", "versions": versions()}
    pending = {(job, rec.path) for job in todo_jobs for rec in mine if read_json(_record_path(out, rec, job)) is None}
    written: list[Path] = []
    bar = tqdm(total=len(todo_jobs) * len(mine), initial=len(todo_jobs) * len(mine) - len(pending),
               disable=not progress, desc="evaluate", unit="heatmap")
    # Images go through in groups, every method on a group before the next group, so a run cut
    # short leaves complete rows of the table for the images it reached.
    with bar:
        for start in range(0, len(mine), batch_images):
            images_group = mine[start:start + batch_images]
            for job in todo_jobs:
                group = [rec for rec in images_group if (job, rec.path) in pending]
                if not group:
                    continue
                x = bundle.preprocess([rec.load() for rec in group])
                with torch.no_grad():
                    probs = bundle.model(x).softmax(dim=1)
                top = probs.argmax(dim=1).tolist()
                saliency, result, info = run_method(bundle, x, job, top, protocol, opts)
                for i, rec in enumerate(group):
                    record = dict(meta, image=rec.name, path=str(rec.path), label=rec.label, synset=rec.synset,
                                  method=job.method, requested_resolution=job.resolution,
                                  resolution=_resolution_label(saliency),
                                  target={"index": top[i], "name": bundle.class_names[top[i]],
                                          "probability": float(probs[i, top[i]])},
                                  correct=None if rec.label is None else rec.label == top[i],
                                  **_metric_fields(result, i),
                                  seconds=info["seconds"] / len(group),
                                  metric_seconds=info["metric_seconds"] / len(group),
                                  batch_images=len(group), method_config=info["config"], protocol=result.protocol)
                    written.append(write_json(_record_path(out, rec, job), record))
                    bar.update(1)
    return written


def _metric_fields(result: CausalMetricResult, i: int) -> dict[str, Any]:
    legacy = result.legacy_deletion_auc is not None
    return {
        "deletion_auc": float(result.deletion_auc[i]),
        "insertion_auc": float(result.insertion_auc[i]),
        "legacy_deletion_auc": float(result.legacy_deletion_auc[i]) if legacy else None,
        "legacy_insertion_auc": float(result.legacy_insertion_auc[i]) if legacy else None,
        "curves": {"fractions": [round(v, 6) for v in result.fractions.tolist()],
                   "deletion": [round(v, 6) for v in result.deletion[i].tolist()],
                   "insertion": [round(v, 6) for v in result.insertion[i].tolist()]},
    }


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """Every record under ``out/records/`` (from one run or several shards)."""
    folder = Path(out) / "records"
    if not folder.is_dir():
        raise FileNotFoundError(f"no records under {str(folder)!r}: run `igospp evaluate --out {out}` first.")
    records = [r for r in (read_json(p) for p in sorted(folder.glob("*.json"))) if r is not None]
    if not records:
        raise FileNotFoundError(f"no readable records under {str(folder)!r}.")
    return records


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "--"
    return f"{mean:.4f}" if se is None or math.isnan(se) else f"{mean:.4f} ± {se:.4f}"


@dataclass
class Summary:
    """The table of an evaluation: one row per method and resolution.

    Attributes:
        rows: dicts with ``method``, ``name``, ``resolution``, ``n``, ``deletion_mean``,
            ``deletion_se``, ``insertion_mean``, ``insertion_se`` (trapezoid AUCs),
            ``legacy_deletion_mean``, ``legacy_deletion_se``, ``legacy_insertion_mean``,
            ``legacy_insertion_se`` (the authors' logged scores, ``None`` when the protocol has
            none) and ``seconds_mean``.
        model, protocol, images_dir, devices: what the numbers depend on.
    """

    rows: list[dict[str, Any]]
    model: str
    protocol: dict[str, Any]
    images_dir: str
    devices: list[str] = field(default_factory=list)
    batch_images: list[int] = field(default_factory=list)

    def header(self) -> str:
        p = self.protocol
        steps = f"{p['step']} units/step" if p.get("step") else f"about {p['n_steps']} steps"
        rules = "trapezoid AUC and the authors' logged score" if p.get("legacy") else "trapezoid AUC"
        return (f"model: {self.model}; protocol: {p['name']} (deletion to {p['deletion_substrate']}, insertion from "
                f"{p['insertion_substrate']}, ranking {p['unit']}, {steps}, {p['score']} of the top-1 class, "
                f"{rules}); images: {self.images_dir}; device: {', '.join(self.devices)}; images per "
                f"method call: {', '.join(map(str, self.batch_images))} (seconds / image = call time / images)")

    def to_markdown(self) -> str:
        legacy = any(r["legacy_deletion_mean"] is not None for r in self.rows)
        head = "| method | resolution | images | deletion AUC (lower is better) | insertion AUC (higher is better) "
        rule = "|---|---|---|---|---|"
        if legacy:
            head += "| deletion, authors' rule | insertion, authors' rule "
            rule += "---|---|"
        lines = [f"*{self.header()}*", "", head + "| seconds / image |", rule + "---|"]
        for r in self.rows:
            line = (f"| {r['name']} | {r['resolution']} | {r['n']} | {_fmt(r['deletion_mean'], r['deletion_se'])} "
                    f"| {_fmt(r['insertion_mean'], r['insertion_se'])} ")
            if legacy:
                line += (f"| {_fmt(r['legacy_deletion_mean'], r['legacy_deletion_se'])} "
                         f"| {_fmt(r['legacy_insertion_mean'], r['legacy_insertion_se'])} ")
            lines.append(line + f"| {r['seconds_mean']:.2f} |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        fields = ["method", "name", "resolution", "n", "deletion_mean", "deletion_se", "insertion_mean",
                  "insertion_se", "legacy_deletion_mean", "legacy_deletion_se", "legacy_insertion_mean",
                  "legacy_insertion_se", "seconds_mean"]
        buffer.write(f"# {self.header()}\n")
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: "" if r[k] is None else r[k] for k in fields})
        return buffer.getvalue()

    def write(self, out: str | Path) -> tuple[Path, Path]:
        """Write ``summary.md`` and ``summary.csv`` (atomically) into ``out``."""
        out = Path(out)
        return (write_bytes(out / "summary.md", self.to_markdown().encode()),
                write_bytes(out / "summary.csv", self.to_csv().encode()))


def _same_resolution(record: dict[str, Any], resolution: int | str | None) -> bool:
    if resolution is None:
        return True
    first = str(resolution).split("x")[0]
    return str(record["resolution"]).split("x")[0] == first


def paired(records: list[dict[str, Any]], a: str, b: str, metric: str = "insertion_auc",
           resolution: int | str | None = None, resolution_b: int | str | None = None,
           confidence: float = 0.95) -> PairedDifference:
    """Per-image difference ``a - b`` of one metric between two methods, with its confidence interval.

    Args:
        records: records of :func:`evaluate` (:func:`load_records`).
        a, b: method names, e.g. ``"igospp"`` and ``"igos"``.
        metric: a record field: ``"deletion_auc"``, ``"insertion_auc"``, ``"legacy_deletion_auc"``,
            ``"legacy_insertion_auc"`` or ``"seconds"``.
        resolution: keep records of ``a`` at this resolution (``28``, ``"28"`` or ``"28x28"``);
            ``None`` for any (methods whose resolution is fixed).
        resolution_b: the same for ``b``; default: ``resolution``.
        confidence: coverage of the Student-t interval (:func:`igospp.stats.paired_difference`).

    Returns:
        A :class:`~igospp.stats.PairedDifference` over the images that both methods have.

    Raises:
        ValueError: when no image has both, or a record lacks ``metric``.

    Example:
        >>> from igospp.evaluation import paired
        >>> recs = [dict(path=p, method=m, resolution="28", insertion_auc=v) for p, m, v in
        ...         [("a", "igospp", 0.7), ("b", "igospp", 0.6), ("a", "igos", 0.5), ("b", "igos", 0.5)]]
        >>> d = paired(recs, "igospp", "igos", resolution=28)
        >>> round(d.mean, 3), d.n, d.n_positive
        (0.15, 2, 2)
    """
    resolution_b = resolution if resolution_b is None else resolution_b

    def values(method: str, res: int | str | None) -> dict[str, float]:
        out = {}
        for r in records:
            if r["method"] == method and _same_resolution(r, res):
                if r.get(metric) is None:
                    raise ValueError(f"record of {method!r} for {r.get('path')!r} has no {metric!r}; pick another "
                                     "metric (legacy scores exist only for the 'igospp' protocol).")
                out[str(r.get("path", r.get("image")))] = float(r[metric])
        return out

    va, vb = values(a, resolution), values(b, resolution_b)
    common = sorted(set(va) & set(vb))
    if not common:
        raise ValueError(f"no image has records of both {a!r} (resolution {resolution}) and {b!r} (resolution "
                         f"{resolution_b}); check the method names and resolutions.")
    return paired_difference([va[k] for k in common], [vb[k] for k in common], confidence)


def summarize(records: list[dict[str, Any]]) -> Summary:
    """Mean and standard error of the AUCs and mean seconds per image, per method and resolution.

    Raises:
        ValueError: when the records mix models or protocols (their numbers are not comparable).
    """
    models = sorted({r["model"] for r in records})
    protocols = {repr(sorted(r["protocol"].items())) for r in records}
    if len(models) > 1 or len(protocols) > 1:
        raise ValueError(f"the records mix models {models} or {len(protocols)} protocols; their AUCs are not "
                         "comparable. Summarize each run's folder separately.")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["method"], r["resolution"]), []).append(r)

    def order(key: tuple[str, str]) -> tuple[int, int, str]:
        method, res = key
        return (_ORDER.index(method) if method in _ORDER else len(_ORDER),
                int(res.split("x")[0]) if res.split("x")[0].isdigit() else 0, method)

    rows = []
    for method, res in sorted(groups, key=order):
        group = groups[(method, res)]
        row = dict(method=method, name=DISPLAY_NAMES.get(method, method), resolution=f"{res}x{res}"
                   if "x" not in res else res, n=len(group))
        for key in ("deletion", "insertion", "legacy_deletion", "legacy_insertion"):
            values = [r.get(f"{key}_auc") for r in group]
            mean, se = mean_se(values) if None not in values else (None, None)
            row.update({f"{key}_mean": mean, f"{key}_se": se})
        row["seconds_mean"] = float(np.mean([r["seconds"] for r in group]))
        rows.append(row)
    return Summary(rows=rows, model=models[0], protocol=records[0]["protocol"],
                   images_dir=records[0]["images_dir"], devices=sorted({r["device"] for r in records}),
                   batch_images=sorted({int(r.get("batch_images", 1)) for r in records}))
