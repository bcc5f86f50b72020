"""The comparison of the paper's Table 1 on any image set: resumable, shardable, summarized.

:func:`evaluate` runs every (method, resolution) on every image of a folder and writes one
JSON record per image and method, atomically, under ``OUT/records/``; a rerun skips what
is already there, so an interrupted run resumes where it stopped. ``shard=(k, n)`` keeps
the images whose index is ``k`` modulo ``n``, so ``n`` processes (or GPUs, or Slurm array
tasks) can share one output folder. :func:`summarize` turns the records into the table:
mean deletion and insertion AUC with standard errors and seconds per image, per method and
resolution, with the model and protocol in its header.

Every method is a name of :data:`igospp.methods.REGISTRY` (the comparison methods and the
ablations of the paper's Table 3); its display name, its place in the tables and whether it
takes a mask resolution come from there. :func:`evaluate` explains the top-1 class of the clean
image, as the paper does.

The record
----------

:func:`make_record` writes the one record format of the package: ``igospp evaluate`` writes it
under ``OUT/records/<image>__<job>.json``, ``igospp explain`` beside its figures as
``OUT/<image>_<job>.json``, and :func:`load_records` reads both. Its keys:

======================== ===========================================================================
key                      meaning
======================== ===========================================================================
``model``                the model's name (:attr:`igospp.ModelBundle.name`)
``device``               where it ran (``"cpu"``, ``"cuda:0"``...)
``images_dir``           the image folder of the run (``igospp explain``: the image's folder)
``n_images``             images in the run (``igospp explain``: images on its command line)
``shard``                ``"K/N"``: the shard that wrote the record (``"0/1"`` when unsharded)
``versions``             Python, packages, GPU and CPU names, CPU threads (:func:`versions`)
``image``                the file's stem
``path``                 the file
``label``, ``synset``    the ImageNet class index and WordNet id found in the file or folder name,
                         or ``None`` (always ``None`` for ``igospp explain``)
``method``               the registry name (``"igospp"``, ``"gradcam"``, ``"igospp_nobtv"``...)
``requested_resolution`` the mask resolution asked for; ``None`` for methods whose resolution is fixed
``resolution``           the saliency map's resolution: ``"28"`` (square) or ``"HxW"``
``target``               ``{"index", "name", "probability", "top1"}``: the class explained, its
                         softmax probability on the clean image and whether it is the top-1 class
``correct``              whether the model's top-1 class is ``label`` (``None`` without a label)
``deletion_auc``         trapezoid area under the deletion curve (lower is better)
``insertion_auc``        trapezoid area under the insertion curve (higher is better)
``legacy_deletion_auc``  the authors' logged scores (the paper's numbers), ``None`` when the
``legacy_insertion_auc`` protocol has none
``curves``               ``{"fractions", "deletion", "insertion"}``: the two curves (6 decimals)
``seconds``              the method's wall time for the image: its call's time / ``batch_images``
``metric_seconds``       the same for the insertion/deletion metric
``batch_images``         images explained together by that call
``stats``                ``{"forward_images", "backward_images"}`` per image for the optimization
                         methods (``Explanation.stats``), ``None`` for the others
``method_config``        the method's settings (:meth:`igospp.Config.to_dict` for the optimization
                         methods; the constructor's plain fields and ``method`` for the others)
``protocol``             the insertion/deletion protocol (:meth:`igospp.metrics.Protocol.to_dict`)
======================== ===========================================================================

Example:
    >>> from igospp.studies.benchmark import jobs
    >>> [job.key for job in jobs(["gradcam", "igospp"], [7, 28])]
    ['gradcam', 'igospp7', 'igospp28']
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from igospp import checks
from igospp.images import ImageRecord, image_folder, sample_images
from igospp.methods import REGISTRY, MethodOptions, Optimized, build, display_name
from igospp.metrics import PROTOCOLS, CausalMetricResult, Protocol, insertion_deletion
from igospp.models import ModelBundle, load_model
from igospp.provenance import versions
from igospp.storage import read_json, write_bytes, write_json
from igospp.studies import paper
from igospp.studies.stats import PairedDifference, mean_se, paired_difference

__all__ = ["BUNDLED", "DEFAULT_METHODS", "RECORD_KEYS", "Job", "jobs", "versions", "run_method", "make_record",
           "evaluate", "bundled_folder", "load_records", "summarize", "Summary", "paired"]

#: ``images="bundled"``: the photos of :func:`igospp.sample_images`, written as PNG files under ``OUT/bundled``.
BUNDLED = "bundled"

#: The methods :func:`evaluate` and ``igospp evaluate`` run by default: those of the paper's Table 1,
#: in :data:`~igospp.methods.REGISTRY` order.
DEFAULT_METHODS: tuple[str, ...] = tuple(paper.methods(paper.TABLE1))

#: The keys of a record (see the module's documentation), in the order they are written.
RECORD_KEYS: tuple[str, ...] = (
    "model", "device", "images_dir", "n_images", "shard", "versions", "image", "path", "label", "synset",
    "method", "requested_resolution", "resolution", "target", "correct", "deletion_auc", "insertion_auc",
    "legacy_deletion_auc", "legacy_insertion_auc", "curves", "seconds", "metric_seconds", "batch_images", "stats",
    "method_config", "protocol")

# What load_records needs to find in a JSON file to take it for a record (summarize reads these).
_REQUIRED = ("model", "device", "method", "resolution", "deletion_auc", "insertion_auc", "seconds", "protocol")


@dataclass(frozen=True)
class Job:
    """One method at one requested resolution (``None`` for methods whose resolution is fixed)."""

    method: str
    resolution: int | None

    @property
    def key(self) -> str:
        return self.method if self.resolution is None else f"{self.method}{self.resolution}"


def jobs(methods: Sequence[str], resolutions: Sequence[int]) -> list[Job]:
    """The methods that take a resolution at every resolution; the others (Grad-CAM, IG, RISE) once.

    Args:
        methods: names of :data:`igospp.methods.REGISTRY`, in the order to run them.
        resolutions: mask resolutions (positive integers).

    Raises:
        ValueError: naming ``methods`` or ``resolutions``.
    """
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of names, e.g. [{methods!r}], not a string.")
    if isinstance(resolutions, (int, str)):
        raise TypeError(f"resolutions must be a list of integers, e.g. [{resolutions!r}], got {resolutions!r}.")
    methods = [checks.choice("methods", m, tuple(REGISTRY)) for m in methods]
    if not methods:
        raise ValueError(f"methods must name at least one method of {tuple(REGISTRY)}.")
    resolutions = [checks.positive_int("resolutions", r) for r in resolutions]
    out = []
    for m in methods:
        out += [Job(m, r) for r in resolutions] if REGISTRY[m].takes_resolution else [Job(m, None)]
    return out


def _check_options(options: MethodOptions | None) -> MethodOptions:
    if options is None:
        return MethodOptions()
    if not isinstance(options, MethodOptions):
        raise TypeError(f"options must be an igospp.methods.MethodOptions, got {type(options).__name__}"
                        + (f"; write MethodOptions(**{options!r})" if isinstance(options, dict) else "") + ".")
    return options


def run_method(bundle: ModelBundle, images: torch.Tensor, job: Job, targets: list[int],
               protocol: str | Protocol = "igospp", options: MethodOptions | None = None
               ) -> tuple[torch.Tensor, CausalMetricResult, dict[str, Any]]:
    """Saliency of ``job`` for a batch, its insertion/deletion result and timings.

    Args:
        bundle: the model.
        images: ``(B, 3, H, W)`` preprocessed images (:meth:`igospp.ModelBundle.preprocess`).
        job: the method and its resolution.
        targets: the class explained and scored, one per image.
        protocol: the insertion/deletion protocol.
        options: the methods' settings; ``options.batch_size`` is also the metric's batch size.
            ``None``: ``MethodOptions()``.

    Returns:
        ``(saliency (B, 1, h, w), metric result, info)`` where ``info`` has ``seconds`` (the
        method's wall time for the batch), ``metric_seconds``, ``images`` (``B``), ``resolution``
        (the record's label of the saliency's size), ``config`` (the method's configuration),
        ``stats`` (the batch's forward and backward images, ``None`` but for the optimization
        methods) and ``explanation`` (the :class:`~igospp.Explanation` of the optimization
        methods, else ``None``). :func:`make_record` turns them into records.
    """
    options = _check_options(options)
    method = build(job.method, 28 if job.resolution is None else job.resolution, options)
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    saliency = method(bundle.model, images, target=targets)
    sync()
    seconds = time.perf_counter() - start
    result = insertion_deletion(bundle.model, images, saliency, target=targets, protocol=protocol,
                                batch_size=options.batch_size)
    sync()
    info: dict[str, Any] = {"seconds": seconds, "metric_seconds": time.perf_counter() - start - seconds,
                            "images": int(saliency.shape[0]), "resolution": _resolution_label(saliency),
                            "stats": None, "explanation": None}
    if isinstance(method, Optimized):
        exp = method.last_explanation
        info["config"] = method.config.to_dict()
        info["explanation"] = exp
        info["stats"] = {"forward_images": exp.stats.forward_images, "backward_images": exp.stats.backward_images}
    else:
        info["config"] = {k: v for k, v in vars(method).items() if isinstance(v, (int, float, str, bool, type(None)))}
        info["config"]["method"] = job.method
    return saliency, result, info


def _resolution_label(saliency: torch.Tensor) -> str:
    h, w = saliency.shape[-2:]
    return f"{h}" if h == w else f"{h}x{w}"


def _per_image(total: float, n: int) -> float | int:
    return total // n if isinstance(total, int) and total % n == 0 else total / n


def make_record(bundle: ModelBundle, image: ImageRecord, job: Job, target: int, probabilities: torch.Tensor,
                result: CausalMetricResult, info: dict[str, Any], i: int = 0, *, images_dir: str | Path,
                n_images: int, shard: tuple[int, int] = (0, 1),
                provenance: dict[str, str] | None = None) -> dict[str, Any]:
    """The record of image ``i`` of a :func:`run_method` call (the format of the module's documentation).

    Args:
        bundle: the model.
        image: the image (``ImageRecord(path, name, synset, label)``).
        job: the method and its requested resolution.
        target: the class explained.
        probabilities: ``(K,)`` the model's softmax on the clean image.
        result, info: the metric result and the ``info`` of :func:`run_method`.
        i: the image's index in that call's batch.
        images_dir, n_images, shard: the run's image folder, image count and shard.
        provenance: :func:`versions` (computed when ``None``; pass it to compute it once per run).

    Returns:
        A dict with the keys :data:`RECORD_KEYS`, in that order, ready for JSON.
    """
    n = info["images"]
    top = int(probabilities.argmax())
    names = bundle.class_names
    return {
        "model": bundle.name, "device": str(bundle.device), "images_dir": str(images_dir), "n_images": n_images,
        "shard": f"{shard[0]}/{shard[1]}", "versions": versions() if provenance is None else provenance,
        "image": image.name, "path": str(image.path), "label": image.label, "synset": image.synset,
        "method": job.method, "requested_resolution": job.resolution, "resolution": info["resolution"],
        "target": {"index": target, "name": names[target] if target < len(names) else str(target),
                   "probability": float(probabilities[target]), "top1": top == target},
        "correct": None if image.label is None else image.label == top,
        **_metric_fields(result, i),
        "seconds": info["seconds"] / n, "metric_seconds": info["metric_seconds"] / n, "batch_images": n,
        "stats": None if info["stats"] is None else {k: _per_image(v, n) for k, v in info["stats"].items()},
        "method_config": info["config"], "protocol": result.protocol,
    }


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


def _check_shard(shard: Any) -> tuple[int, int]:
    if isinstance(shard, str) or not isinstance(shard, Sequence) or len(shard) != 2:
        raise ValueError(f"shard must be a pair (k, n) with 0 <= k < n, got {shard!r}.")
    n = checks.positive_int("shard[1]", shard[1])
    return checks.integer("shard[0]", shard[0], low=0, high=n - 1), n


def evaluate(images: str | Path, out: str | Path, *, model: str | ModelBundle = "efficientnet_lite0",
             device: str = "auto", n: int | None = None, seed: int = 0,
             methods: Sequence[str] = DEFAULT_METHODS, resolutions: Sequence[int] = (7, 28, 224),
             shard: tuple[int, int] = (0, 1), protocol: str = "igospp", options: MethodOptions | None = None,
             batch_images: int = 1, progress: bool = True) -> list[Path]:
    """Run the comparison on a folder and write one record per image and method.

    Args:
        images: folder of images (see :func:`igospp.image_folder`), or ``"bundled"`` for the
            photos bundled with scikit-image and scikit-learn (see :func:`bundled_folder`).
        out: output folder; records go to ``out/records/``.
        model: a model name for :func:`igospp.load_model` or a :class:`~igospp.ModelBundle`.
        device: where to run (``"auto"``, ``"cpu"``, ``"cuda"``...).
        n: how many images (a seeded random subset); ``None``: all.
        seed: seed of the subset, of the optimization noise and of RISE's masks (it replaces
            ``options.seed``).
        methods: names of :data:`igospp.methods.REGISTRY` (the comparison methods and the
            ablations). Default: :data:`DEFAULT_METHODS`, those of the paper's Table 1.
        resolutions: mask resolutions of the methods that take one (at most the model's input size).
        shard: ``(k, n)``: only the images whose index is ``k`` modulo ``n``.
        protocol: the insertion/deletion protocol name (:data:`igospp.metrics.PROTOCOLS`).
        options: the methods' settings (:class:`igospp.methods.MethodOptions`); its
            ``batch_size`` is also the insertion/deletion metric's. ``None``: the defaults.
        batch_images: images explained together by one call (faster on a GPU).
        progress: show a progress bar.

    Returns:
        The record files written by this call (records already present are skipped).

    Raises:
        ValueError: a bad argument, named in the message.
        TypeError: ``options`` is not a :class:`~igospp.methods.MethodOptions`.
    """
    k, n_shards = _check_shard(shard)
    protocol = checks.choice("protocol", protocol, tuple(PROTOCOLS))
    batch_images = checks.positive_int("batch_images", batch_images)
    n = None if n is None else checks.positive_int("n", n)
    seed = checks.integer("seed", seed)
    progress = checks.flag("progress", progress)
    opts = _check_options(options).replace(seed=seed)
    if not isinstance(model, (str, ModelBundle)):
        raise TypeError(f"model must be a model name or an igospp.ModelBundle, got {type(model).__name__}.")
    todo_jobs = jobs(methods, resolutions)
    bundle = load_model(model, device=device) if isinstance(model, str) else model
    for job in todo_jobs:
        if job.resolution is not None:
            checks.integer("resolutions", job.resolution, low=1, high=min(bundle.input_size))
    if str(images) == BUNDLED:
        images = bundled_folder(out)
    folder = image_folder(images, n=n, seed=seed)
    mine = [rec for i, rec in enumerate(folder) if i % n_shards == k]
    out = Path(out)
    run = {"images_dir": str(Path(images)), "n_images": len(folder), "shard": (k, n_shards), "provenance": versions()}
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
                _, result, info = run_method(bundle, x, job, top, protocol, opts)
                for i, rec in enumerate(group):
                    record = make_record(bundle, rec, job, top[i], probs[i], result, info, i, **run)
                    written.append(write_json(_record_path(out, rec, job), record))
                    bar.update(1)
    return written


def _is_record(payload: Any) -> bool:
    return isinstance(payload, dict) and all(key in payload for key in _REQUIRED) \
        and isinstance(payload["resolution"], str)


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """Every record of a run: ``out/records/*.json`` (``igospp evaluate``, one run or several shards)
    and ``out/*.json`` (``igospp explain``).

    JSON files that are not records (see the module's documentation) are left out.

    Raises:
        FileNotFoundError: when ``out`` holds no record.
    """
    root = Path(out)
    files = sorted((root / "records").glob("*.json")) + sorted(root.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no records under {str(root)!r}: run `igospp evaluate --out {out}` or "
                                f"`igospp explain IMAGE --out {out}` first.")
    records = [r for r in (read_json(p) for p in files) if _is_record(r)]
    if not records:
        raise FileNotFoundError(f"no readable records under {str(root)!r} (JSON files there: {len(files)}).")
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
        model, protocol, images_dir, devices, batch_images: what the numbers depend on (the
            image folders, devices and images per method call of the records).
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


_METRICS = ("deletion_auc", "insertion_auc", "legacy_deletion_auc", "legacy_insertion_auc", "seconds",
            "metric_seconds")


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
        records: records of :func:`evaluate` or ``igospp explain`` (:func:`load_records`).
        a, b: method names, e.g. ``"igospp"`` and ``"igos"``.
        metric: a record field: ``"deletion_auc"``, ``"insertion_auc"``, ``"legacy_deletion_auc"``,
            ``"legacy_insertion_auc"``, ``"seconds"`` or ``"metric_seconds"``.
        resolution: keep records of ``a`` at this resolution (``28``, ``"28"`` or ``"28x28"``);
            ``None`` for any (methods whose resolution is fixed).
        resolution_b: the same for ``b``; default: ``resolution``.
        confidence: coverage of the Student-t interval (:func:`igospp.studies.stats.paired_difference`).

    Returns:
        A :class:`~igospp.studies.stats.PairedDifference` over the images that both methods have.

    Raises:
        ValueError: when no image has both, or a record lacks ``metric``.

    Example:
        >>> from igospp.studies.benchmark import paired
        >>> recs = [dict(path=p, method=m, resolution="28", insertion_auc=v) for p, m, v in
        ...         [("a", "igospp", 0.7), ("b", "igospp", 0.6), ("a", "igos", 0.5), ("b", "igos", 0.5)]]
        >>> d = paired(recs, "igospp", "igos", resolution=28)
        >>> round(d.mean, 3), d.n, d.n_positive
        (0.15, 2, 2)
    """
    metric = checks.choice("metric", metric, _METRICS)
    confidence = checks.probability("confidence", confidence)
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

    Rows follow :data:`igospp.methods.REGISTRY`'s order (then the resolution), with its display
    names; records of ``igospp evaluate`` and of ``igospp explain`` are both accepted.

    Raises:
        ValueError: when there is no record, or the records mix models or protocols (their
            numbers are not comparable).
    """
    if not records:
        raise ValueError("records is empty: nothing to summarize.")
    models = sorted({r["model"] for r in records})
    protocols = {repr(sorted(r["protocol"].items())) for r in records}
    if len(models) > 1 or len(protocols) > 1:
        raise ValueError(f"the records mix models {models} or {len(protocols)} protocols; their AUCs are not "
                         "comparable. Summarize each run's folder separately.")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["method"], str(r["resolution"])), []).append(r)
    registry = list(REGISTRY)

    def order(key: tuple[str, str]) -> tuple[int, int, str]:
        method, res = key
        first = res.split("x")[0]
        return (registry.index(method) if method in registry else len(registry),
                int(first) if first.isdigit() else 0, method)

    rows = []
    for method, res in sorted(groups, key=order):
        group = groups[(method, res)]
        row = dict(method=method, name=display_name(method), resolution=f"{res}x{res}"
                   if "x" not in res else res, n=len(group))
        for key in ("deletion", "insertion", "legacy_deletion", "legacy_insertion"):
            values = [r.get(f"{key}_auc") for r in group]
            mean, se = mean_se(values) if None not in values else (None, None)
            row.update({f"{key}_mean": mean, f"{key}_se": se})
        row["seconds_mean"] = float(np.mean([r["seconds"] for r in group]))
        rows.append(row)
    folders = sorted({str(r["images_dir"]) for r in records if r.get("images_dir") is not None})
    return Summary(rows=rows, model=models[0], protocol=records[0]["protocol"],
                   images_dir=", ".join(folders) or "--", devices=sorted({r["device"] for r in records}),
                   batch_images=sorted({int(r.get("batch_images", 1)) for r in records}))
