"""The comparison of the paper's Table 1 on any image set: resumable, shardable, safe to run twice, summarized.

:func:`evaluate` runs every (method, resolution) on every image of a folder and writes one
JSON record per image and method, atomically, under ``OUT/records/``; a rerun reuses what is
already there, so an interrupted run resumes where it stopped. ``shard=(k, n)`` keeps the
images whose index is ``k`` modulo ``n``, so ``n`` processes (or GPUs, or Slurm array tasks)
can share one output folder; identical runs started on one folder share the work too (see
*Several processes on one folder*). :func:`summarize` turns the records into the table: mean
deletion and insertion AUC with standard errors and seconds per image, per method and
resolution, with the model and protocol in its header and the number of images of each row.

Every method is a name of :data:`igospp.methods.REGISTRY` (the comparison methods and the
ablations of the paper's Table 3); its display name, its place in the tables and whether it
takes a mask resolution come from there. :func:`evaluate` explains the top-1 class of the clean
image, as the paper does.

The record
----------

:func:`make_record` writes the one record format of the package: ``igospp evaluate`` writes it
under ``OUT/records/<stem>-<hash>__<job>.json`` (``<hash>``: the first 10 hexadecimal digits of
the SHA-1 of ``key``, so ``a/img1.png``, ``b/img1.png`` and ``b/img1.jpg`` get three records),
``igospp explain`` beside its figures as ``OUT/<image>_<job>.json``, and :func:`load_records`
reads both. Its keys:

======================== ===========================================================================
key                      meaning
======================== ===========================================================================
``model``                the model's name (:attr:`igospp.ModelBundle.name`)
``device``               where it ran (``"cpu"``, ``"cuda:0"``...)
``images_dir``           the image folder of the run (``igospp explain``: the image's folder)
``n_images``             images in the run (``igospp explain``: images on its command line)
``shard``                ``"K/N"``: the shard that wrote the record (``"0/1"`` when unsharded)
``versions``             Python, packages, GPU and CPU names, CPU threads (:func:`versions`)
``image``                the file's stem (two files of a folder may share it: use ``key``)
``path``                 the file
``key``                  the file's path relative to the image folder, POSIX style
                         (``n02123045/img1.png``; ``igospp explain``: the file name): the image's
                         identity, which names the record file
``image_sha256``         the SHA-256 of the file's bytes: a record is reused only for the same content
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
``method_config``        the method's settings (:func:`method_config`: :meth:`igospp.Config.to_dict`
                         for the optimization methods; the constructor's plain fields and
                         ``method`` for the others)
``protocol``             the insertion/deletion protocol (:meth:`igospp.metrics.Protocol.to_dict`)
======================== ===========================================================================

A record is *valid* when :func:`record_problem` finds nothing wrong with it: a JSON object with
every key above, the AUCs finite numbers, and so on. Records written before ``key`` and
``image_sha256`` existed (file names ``<stem>__<job>.json``) are invalid: :func:`load_records`
leaves them out with an :class:`InvalidRecordWarning` naming them, and :func:`evaluate`
recomputes them under the new names (delete the old files afterwards).

Resuming
--------

:func:`evaluate` reuses a record only when it is valid and was made with what this run would
write: the same ``model``, the same ``protocol``, the same method settings (``method_config``
without the fields of :data:`PERFORMANCE_ONLY`, which change the speed, not the result) and the
same file content (``image_sha256``). When existing records differ it raises
:class:`SettingsMismatchError` before computing anything, listing the differences; pass
``overwrite=True`` (``igospp evaluate --overwrite``) to recompute and replace them, or write
to another output folder. Invalid records are recomputed and replaced, with a warning.

Unreadable images
-----------------

An image file that cannot be decoded (not an image, truncated, corrupt: found by
:func:`igospp.image_folder`, or when :func:`evaluate` loads it) is skipped, not fatal: it is
named in a warning, written as ``OUT/skipped/<stem>-<hash>.json`` (``{"file", "key",
"reason"}``), returned in :attr:`EvaluationRun.skipped_images`, read back by
:func:`load_skipped` and reported by :func:`summarize`.

Several processes on one folder
-------------------------------

Before computing an (image, method) pair, :func:`evaluate` claims it by creating
``OUT/records/.claims/<record name>.claim`` exclusively (``O_CREAT | O_EXCL``, atomic on local
and network file systems), holding the host name, process id and start time, and removes the
claim once the record is written (or when the run fails). A pair claimed by another live
process is left to it: this process goes on with the next pair, without waiting, and counts it
in :attr:`EvaluationRun.claimed_elsewhere`. A claim is *stale*, and taken over, when its
process is gone (same host: checked with ``os.kill(pid, 0)``), when it carries this process's
own id without being this call's (a process that reused the id of a killed one), or when it is
older than ``stale_claim_hours`` (any host; the only rule for other hosts). Two concurrent
:func:`evaluate` calls in one process on one folder would take each other's claims for stale
(duplicate work, never a corrupt record): give each its own folder.

Example:
    >>> from igospp.studies.benchmark import jobs
    >>> [job.key for job in jobs(["gradcam", "igospp"], [7, 28])]
    ['gradcam', 'igospp7', 'igospp28']
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import socket
import time
import uuid
import warnings
from collections import Counter
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
from igospp.storage import check_folder, write_bytes, write_json
from igospp.studies import paper
from igospp.studies.stats import PairedDifference, mean_se, paired_difference

__all__ = ["BUNDLED", "DEFAULT_METHODS", "RECORD_KEYS", "PERFORMANCE_ONLY", "Job", "jobs", "versions",
           "method_config", "run_method", "make_record", "record_problem", "evaluate", "EvaluationRun",
           "SettingsMismatchError", "InvalidRecordWarning", "bundled_folder", "load_records", "load_skipped",
           "summarize", "Summary", "paired"]

#: ``images="bundled"``: the photos of :func:`igospp.sample_images`, written as PNG files under ``OUT/bundled``.
BUNDLED = "bundled"

#: The methods :func:`evaluate` and ``igospp evaluate`` run by default: those of the paper's Table 1,
#: in :data:`~igospp.methods.REGISTRY` order.
DEFAULT_METHODS: tuple[str, ...] = tuple(paper.methods(paper.TABLE1))

#: The keys of a record (see the module's documentation), in the order they are written.
RECORD_KEYS: tuple[str, ...] = (
    "model", "device", "images_dir", "n_images", "shard", "versions", "image", "path", "key", "image_sha256",
    "label", "synset", "method", "requested_resolution", "resolution", "target", "correct", "deletion_auc",
    "insertion_auc", "legacy_deletion_auc", "legacy_insertion_auc", "curves", "seconds", "metric_seconds",
    "batch_images", "stats", "method_config", "protocol")

#: The fields of a record's ``method_config`` that change how fast a method runs, not its result:
#: a record made with other values of these is reused by :func:`evaluate`.
PERFORMANCE_ONLY: tuple[str, ...] = ("batch_size", "progress", "track_scores")

# What summarize needs in a record (records of older versions and hand-made ones have these).
_REQUIRED = ("model", "device", "method", "resolution", "deletion_auc", "insertion_auc", "seconds", "protocol")
_SHOWN = 5              # files named in a warning or an error
_CLAIM_GRACE = 60.0     # seconds an unreadable claim (its writer killed mid-write) or a takeover lock is respected
_SHA256 = re.compile(r"[0-9a-f]{64}")


class SettingsMismatchError(ValueError):
    """Records in the output folder were made with other settings than the run asked for (see :func:`evaluate`).

    Attributes:
        differences: each difference (``"iterations: 1 in the record, 2 now"``) and how many records have it.
        records: the record files that differ.

    Example:
        >>> err = SettingsMismatchError("iterations differ", {"iterations: 1 in the record, 2 now": 4}, [])
        >>> isinstance(err, ValueError), err.differences
        (True, {'iterations: 1 in the record, 2 now': 4})
    """

    def __init__(self, message: str, differences: dict[str, int], records: list[Path]) -> None:
        super().__init__(message)
        self.differences = differences
        self.records = records


class InvalidRecordWarning(UserWarning):
    """Invalid record files (see :func:`record_problem`): left out by :func:`load_records`, recomputed by evaluate."""


@dataclass(frozen=True)
class Job:
    """One method at one requested resolution (``None`` for methods whose resolution is fixed).

    Example:
        >>> Job("igospp", 28).key, Job("rise", None).key
        ('igospp28', 'rise')
    """

    method: str
    resolution: int | None

    @property
    def key(self) -> str:
        """The job's name in record file names and claims: the method, then the resolution if any."""
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


def _build(job: Job, options: MethodOptions) -> Any:
    return build(job.method, 28 if job.resolution is None else job.resolution, options)


def method_config(method: Any, name: str | None = None) -> dict[str, Any]:
    """The settings of a method as a record's ``method_config`` holds them (plain JSON values).

    Args:
        method: a method of :mod:`igospp.methods` (e.g. from :func:`igospp.methods.build`).
        name: the registry name written as ``method`` for the methods that are not
            optimizations (``"rise"``...); default: the class name. The optimization methods'
            ``method`` is their :class:`~igospp.Config`'s.

    Returns:
        :meth:`igospp.Config.to_dict` for the optimization methods; for the others, the
        instance's fields whose values are ``None``, booleans, numbers or strings, and ``method``.

    Example:
        >>> from igospp.methods import MethodOptions, build
        >>> config = method_config(build("rise", options=MethodOptions(rise_masks=10)), "rise")
        >>> config["n_masks"], config["method"]
        (10, 'rise')
        >>> method_config(build("igospp", 7))["resolution"]
        [7, 7]
    """
    if isinstance(method, Optimized):
        return method.config.to_dict()
    config = {k: v for k, v in vars(method).items() if isinstance(v, (int, float, str, bool, type(None)))}
    config["method"] = type(method).__name__ if name is None else name
    return config


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
        (the record's label of the saliency's size), ``config`` (:func:`method_config`),
        ``stats`` (the batch's forward and backward images, ``None`` but for the optimization
        methods) and ``explanation`` (the :class:`~igospp.Explanation` of the optimization
        methods, else ``None``). :func:`make_record` turns them into records.
    """
    options = _check_options(options)
    method = _build(job, options)
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
                            "stats": None, "explanation": None, "config": method_config(method, job.method)}
    if isinstance(method, Optimized):
        exp = method.last_explanation
        info["explanation"] = exp
        info["stats"] = {"forward_images": exp.stats.forward_images, "backward_images": exp.stats.backward_images}
    return saliency, result, info


def _resolution_label(saliency: torch.Tensor) -> str:
    h, w = saliency.shape[-2:]
    return f"{h}" if h == w else f"{h}x{w}"


def _per_image(total: float, n: int) -> float | int:
    return total // n if isinstance(total, int) and total % n == 0 else total / n


def _sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_record(bundle: ModelBundle, image: ImageRecord, job: Job, target: int, probabilities: torch.Tensor,
                result: CausalMetricResult, info: dict[str, Any], i: int = 0, *, images_dir: str | Path,
                n_images: int, shard: tuple[int, int] = (0, 1), provenance: dict[str, str] | None = None,
                image_sha256: str | None = None) -> dict[str, Any]:
    """The record of image ``i`` of a :func:`run_method` call (the format of the module's documentation).

    Args:
        bundle: the model.
        image: the image (``ImageRecord(path, name, synset, label, key)``); its ``key`` (the path
            relative to the image folder; by default the file name) becomes the record's ``key``.
        job: the method and its requested resolution.
        target: the class explained.
        probabilities: ``(K,)`` the model's softmax on the clean image.
        result, info: the metric result and the ``info`` of :func:`run_method`.
        i: the image's index in that call's batch.
        images_dir, n_images, shard: the run's image folder, image count and shard.
        provenance: :func:`versions` (computed when ``None``; pass it to compute it once per run).
        image_sha256: the SHA-256 of the file's bytes; ``None`` (default): read from ``image.path``.

    Returns:
        A dict with the keys :data:`RECORD_KEYS`, in that order, ready for JSON.

    Raises:
        OSError: ``image_sha256`` is ``None`` and ``image.path`` cannot be read.
    """
    n = info["images"]
    top = int(probabilities.argmax())
    names = bundle.class_names
    return {
        "model": bundle.name, "device": str(bundle.device), "images_dir": str(images_dir), "n_images": n_images,
        "shard": f"{shard[0]}/{shard[1]}", "versions": versions() if provenance is None else provenance,
        "image": image.name, "path": str(image.path), "key": image.key,
        "image_sha256": _sha256(image.path) if image_sha256 is None else image_sha256,
        "label": image.label, "synset": image.synset,
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


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _curves_problem(curves: Any) -> str | None:
    names = ("fractions", "deletion", "insertion")
    if not isinstance(curves, dict) or not all(isinstance(curves.get(k), list) for k in names):
        return "curves must be an object with the lists 'fractions', 'deletion' and 'insertion'"
    if len({len(curves[k]) for k in names}) != 1 or not all(_finite(v) for k in names for v in curves[k]):
        return "curves must hold three lists of finite numbers of one length"
    return None


def _problem(record: Any, required: Sequence[str]) -> str | None:
    if not isinstance(record, dict):
        return f"not a record: the JSON is {_json_kind(record)}, not an object"
    missing = [k for k in required if k not in record]
    if missing:
        old = (" (a record of an igospp older than the 'key' field; rerun evaluate to recompute it)"
               if set(missing) <= {"key", "image_sha256"} else "")
        return f"missing {', '.join(map(repr, missing))}{old}"
    for k in ("model", "device", "method", "resolution", "key", "path", "image"):
        if k in record and not (isinstance(record[k], str) and record[k]):
            return f"{k} must be a non-empty string, got {record[k]!r}"
    for k in ("deletion_auc", "insertion_auc", "seconds"):
        if k in record and not _finite(record[k]):
            return f"{k} must be a finite number, got {record[k]!r}"
    for k in ("legacy_deletion_auc", "legacy_insertion_auc", "metric_seconds"):
        if record.get(k) is not None and not _finite(record[k]):
            return f"{k} must be a finite number or null, got {record[k]!r}"
    if "seconds" in record and record["seconds"] < 0:
        return f"seconds must be >= 0, got {record['seconds']!r}"
    protocol = record.get("protocol", {"name": ""})
    if not isinstance(protocol, dict) or not isinstance(protocol.get("name"), str):
        return f"protocol must be an object with a 'name', got {protocol!r}"
    if "method_config" in record and not isinstance(record["method_config"], dict):
        return f"method_config must be an object, got {_json_kind(record['method_config'])}"
    target = record.get("target", {"index": 0})
    if not isinstance(target, dict) or not isinstance(target.get("index"), int) or isinstance(target["index"], bool):
        return f"target must be an object with an integer 'index', got {target!r}"
    if "image_sha256" in record and not (isinstance(record["image_sha256"], str)
                                         and _SHA256.fullmatch(record["image_sha256"])):
        return f"image_sha256 must be 64 lowercase hexadecimal digits, got {record['image_sha256']!r}"
    if "curves" in record:
        return _curves_problem(record["curves"])
    return None


def record_problem(record: Any) -> str | None:
    """What is wrong with a record, or ``None`` when it is a valid record (see the module's documentation).

    Args:
        record: a parsed JSON value (a record is a JSON object).

    Returns:
        ``None``, or one sentence: not a JSON object; the keys of :data:`RECORD_KEYS` it lacks
        (records written before ``key`` existed lack ``key`` and ``image_sha256``); or the
        first field of the wrong type: ``model``, ``device``, ``method``, ``resolution``,
        ``key``, ``path`` and ``image`` non-empty strings, the AUCs and ``seconds`` finite
        numbers (the legacy AUCs and ``metric_seconds`` finite or ``null``), ``protocol`` an
        object with a ``name``, ``method_config`` an object, ``target`` an object with an
        integer ``index``, ``image_sha256`` a SHA-256 in hexadecimal, ``curves`` three lists
        of finite numbers of one length.

    Example:
        >>> record_problem([])
        'not a record: the JSON is a list, not an object'
        >>> record_problem({})
        "missing 'model', 'device', ..."
        >>> from igospp.studies.benchmark import RECORD_KEYS
        >>> fine = {k: None for k in RECORD_KEYS} | dict(model="m", device="cpu", method="rise", resolution="32",
        ...     key="a.png", path="a.png", image="a", deletion_auc=0.1, insertion_auc=0.6, seconds=1.0,
        ...     protocol={"name": "igospp"}, method_config={}, target={"index": 3}, image_sha256="0" * 64,
        ...     curves={"fractions": [0, 1], "deletion": [1, 0], "insertion": [0, 1]})
        >>> record_problem(fine) is None, record_problem(fine | {"insertion_auc": None})
        (True, 'insertion_auc must be a finite number, got None')
    """
    return _problem(record, RECORD_KEYS)


def _read_record(path: Path) -> tuple[Any, str | None]:
    """``(payload, problem)``: the file's parsed JSON (``None`` when unreadable) and :func:`record_problem`."""
    try:
        payload = json.loads(path.read_bytes())
    except OSError as err:
        return None, f"unreadable ({err.strerror or err})"
    except (ValueError, RecursionError) as err:
        return None, f"not valid JSON ({err})"
    return payload, record_problem(payload)


def _file_stem(key: str) -> str:
    """``<stem>-<first 10 hex digits of sha1(key)>``: unique per key, readable."""
    return f"{Path(key).stem}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def _record_file(out: Path, key: str, job: Job) -> Path:
    return out / "records" / f"{_file_stem(key)}__{job.key}.json"


def _listing(items: Sequence[tuple[Any, str]]) -> str:
    shown = "; ".join(f"{name}: {why}" for name, why in items[:_SHOWN])
    return shown + (f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


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


# ----------------------------------------------------------------------------------------- skipped images
def _skip(out: Path, root: Path, path: Path, reason: str, warn: bool) -> dict[str, str]:
    """Write ``OUT/skipped/<stem>-<hash>.json`` for an unreadable image file and return its entry."""
    try:
        key = Path(path).relative_to(root).as_posix()
    except ValueError:
        key = Path(path).name
    entry = {"file": str(path), "key": key, "reason": reason}
    write_json(out / "skipped" / f"{_file_stem(key)}.json", entry)
    if warn:
        warnings.warn(f"skipped image {str(path)!r}: {reason}; it is listed under {str(out / 'skipped')!r} and in "
                      "the summary.", stacklevel=3)
    return entry


def load_skipped(out: str | Path) -> list[dict[str, str]]:
    """The image files :func:`evaluate` skipped as unreadable, from ``out/skipped/*.json``.

    Args:
        out: the output folder of :func:`evaluate`.

    Returns:
        ``{"file", "key", "reason"}`` per file, in file-name order; ``[]`` when none was skipped
        (files there that are not such entries are ignored).

    Example:
        >>> import tempfile
        >>> load_skipped(tempfile.mkdtemp())
        []
    """
    entries = []
    for path in sorted((Path(out) / "skipped").glob("*.json")):
        payload, _ = _read_record(path)
        if isinstance(payload, dict) and isinstance(payload.get("file"), str) and isinstance(payload.get("reason"),
                                                                                              str):
            entries.append({"file": payload["file"], "key": str(payload.get("key") or Path(payload["file"]).name),
                            "reason": payload["reason"]})
    return entries


# ------------------------------------------------------------------------------------------------ claims
def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (``os.kill(pid, 0)``; unknown on Windows, where it kills)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:            # another user's live process
        return True
    except OSError:
        return False
    return True


def _claim_is_stale(path: Path, held: Any, stale_seconds: float) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if not isinstance(held, dict):                                  # its writer was killed mid-write
        return age > _CLAIM_GRACE
    if age > stale_seconds:
        return True
    pid = held.get("pid")
    if held.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid == os.getpid() or not _alive(pid)       # our own id, not this call's claim: a reused id


def _remove_stale_claim(path: Path, held: Any) -> bool:
    """Remove a stale claim under a short exclusive lock, so that only one process takes it over."""
    lock = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > _CLAIM_GRACE:   # its holder died while taking over
                lock.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    try:
        os.close(fd)
        try:
            if json.loads(path.read_bytes()) != held:
                return False
        except FileNotFoundError:
            return True
        except ValueError:
            if held is not None:
                return False
        path.unlink(missing_ok=True)
        return True
    finally:
        lock.unlink(missing_ok=True)


def _claim(path: Path, stale_seconds: float) -> dict[str, Any] | None:
    """Create the claim file ``path`` exclusively (taking over a stale one); its content, or ``None`` if held."""
    now = time.time()
    token = {"host": socket.gethostname(), "pid": os.getpid(), "started": now,
             "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "token": uuid.uuid4().hex}
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_bytes())
            except FileNotFoundError:
                continue                                            # released meanwhile: try again
            except ValueError:
                held = None
            if not _claim_is_stale(path, held, stale_seconds) or not _remove_stale_claim(path, held):
                return None
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(token, fh)
        return token
    return None


def _release(path: Path, token: dict[str, Any]) -> None:
    """Remove the claim ``path`` if it is still ``token`` (not taken over meanwhile)."""
    try:
        if json.loads(path.read_bytes()) == token:
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


# ----------------------------------------------------------------------------------------------- resuming
def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _settings(bundle: ModelBundle, job: Job, options: MethodOptions, protocol: str) -> dict[str, Any]:
    """What the record of ``job`` would hold that decides whether an existing one can be reused."""
    config = _json_copy(method_config(_build(job, options), job.method))
    return {"model": bundle.name, "protocol": _json_copy(PROTOCOLS[protocol].to_dict()),
            "method_config": {k: v for k, v in config.items() if k not in PERFORMANCE_ONLY}}


def _field_differences(old: dict[str, Any], new: dict[str, Any], prefix: str) -> list[str]:
    out = []
    for k in [*new, *(k for k in old if k not in new)]:
        if (k in old) != (k in new) or old.get(k) != new.get(k):
            was = repr(old[k]) if k in old else "absent"
            now = repr(new[k]) if k in new else "absent"
            out.append(f"{prefix}{k}: {was} in the record, {now} now")
    return out


def _differences(record: dict[str, Any], digest: str, expected: dict[str, Any]) -> list[str]:
    diffs = []
    if record["model"] != expected["model"]:
        diffs.append(f"model: {record['model']!r} in the record, {expected['model']!r} now")
    if record["protocol"]["name"] != expected["protocol"]["name"]:
        diffs.append(f"protocol: {record['protocol']['name']!r} in the record, {expected['protocol']['name']!r} now")
    else:
        diffs += _field_differences(record["protocol"], expected["protocol"], "protocol.")
    old = {k: v for k, v in record["method_config"].items() if k not in PERFORMANCE_ONLY}
    diffs += _field_differences(old, expected["method_config"], "")
    if record["image_sha256"] != digest:
        diffs.append("image_sha256: the image file's content changed since the record was made")
    return diffs


def _record_state(path: Path, key: str, job: Job, digest: str, expected: dict[str, Any]) -> tuple[str, Any]:
    """``("missing", None)``, ``("invalid", problem)``, ``("differs", differences)`` or ``("done", None)``."""
    if not path.exists():
        return "missing", None
    payload, problem = _read_record(path)
    if problem is None and payload["key"] != key:
        problem = f"its key {payload['key']!r} is not the image's {key!r}"
    elif problem is None and (payload["method"], payload["requested_resolution"]) != (job.method, job.resolution):
        problem = f"it holds {payload['method']!r} at {payload['requested_resolution']!r}, not the job {job.key!r}"
    if problem is not None:
        return "invalid", problem
    diffs = _differences(payload, digest, expected)
    return ("differs", diffs) if diffs else ("done", None)


def _mismatch_error(differs: list[tuple[Path, list[str]]], records: Path) -> SettingsMismatchError:
    counts = Counter(d for _, diffs in differs for d in diffs)
    shown = [f"{d} ({c} record{'' if c == 1 else 's'})" for d, c in counts.most_common()]
    more = f"; and {len(shown) - 12} more difference(s)" if len(shown) > 12 else ""
    return SettingsMismatchError(
        f"{len(differs)} record(s) under {str(records)!r} were made with other settings than this run's: "
        f"{'; '.join(shown[:12])}{more}. Pass overwrite=True (igospp evaluate --overwrite) to recompute and "
        "replace them, or write this run to another output folder (out= / --out).",
        dict(counts), [p for p, _ in differs])


@dataclass
class EvaluationRun:
    """What one :func:`evaluate` call did.

    Attributes:
        written: the record files this call wrote (new, invalid ones recomputed, or replaced
            with ``overwrite=True``), in the order written.
        reused: records already there with this run's settings, left as they were.
        skipped_images: ``{"file", "key", "reason"}`` of each image file that could not be read
            (also written under ``OUT/skipped/``; see :func:`load_skipped`).
        claimed_elsewhere: (image, method) pairs left to another process that had claimed them
            (or finished them since this call looked); rerun once it has ended to check that
            nothing is missing.

    Example:
        >>> from pathlib import Path
        >>> EvaluationRun(written=[Path("records/a.json")], reused=2, claimed_elsewhere=1).describe()
        'wrote 1 new record(s), reused 2; 1 (image, method) pair(s) were claimed by another process'
    """

    written: list[Path] = field(default_factory=list)
    reused: int = 0
    skipped_images: list[dict[str, str]] = field(default_factory=list)
    claimed_elsewhere: int = 0

    def describe(self) -> str:
        """One line: records written and reused, unreadable images skipped, pairs left to another process."""
        text = f"wrote {len(self.written)} new record(s), reused {self.reused}"
        if self.skipped_images:
            text += f", skipped {len(self.skipped_images)} unreadable image file(s)"
        if self.claimed_elsewhere:
            text += f"; {self.claimed_elsewhere} (image, method) pair(s) were claimed by another process"
        return text


def evaluate(images: str | Path, out: str | Path, *, model: str | ModelBundle = "efficientnet_lite0",
             device: str = "auto", n: int | None = None, seed: int = 0,
             methods: Sequence[str] = DEFAULT_METHODS, resolutions: Sequence[int] = (7, 28, 224),
             shard: tuple[int, int] = (0, 1), protocol: str = "igospp", options: MethodOptions | None = None,
             batch_images: int = 1, progress: bool = True, overwrite: bool = False,
             stale_claim_hours: float = 6.0) -> EvaluationRun:
    """Run the comparison on a folder and write one record per image and method.

    Every argument is checked, the output folder proven writable and existing records compared
    with this run's settings before anything is computed (see the module's documentation:
    *Resuming*, *Unreadable images*, *Several processes on one folder*).

    Args:
        images: folder of images (see :func:`igospp.image_folder`), or ``"bundled"`` for the
            photos bundled with scikit-image and scikit-learn (see :func:`bundled_folder`).
        out: output folder; records go to ``out/records/``, unreadable images to ``out/skipped/``.
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
        overwrite: recompute and replace the records made with other settings (model,
            protocol, method settings but :data:`PERFORMANCE_ONLY`, image content) instead of
            refusing them; records with this run's settings are still reused. Default ``False``.
        stale_claim_hours: a claim older than this is taken over (another host's claim is
            taken over only then; one of this host is taken over at once when its process is
            gone). Default 6.

    Returns:
        An :class:`EvaluationRun`: the record files written by this call, the records reused,
        the unreadable image files skipped and the pairs left to another process.

    Raises:
        ValueError: a bad argument, named in the message.
        SettingsMismatchError: (a ``ValueError``) records in ``out`` were made with other
            settings and ``overwrite`` is ``False``; nothing was computed.
        TypeError: ``options`` is not a :class:`~igospp.methods.MethodOptions`.
        FileNotFoundError: ``images`` is not a folder (nor ``"bundled"``), or holds no image file.
        OSError: ``out`` cannot be created or written (:func:`igospp.storage.check_folder`).
    """
    k, n_shards = _check_shard(shard)
    protocol = checks.choice("protocol", protocol, tuple(PROTOCOLS))
    batch_images = checks.positive_int("batch_images", batch_images)
    n = None if n is None else checks.positive_int("n", n)
    seed = checks.integer("seed", seed, low=0, high=2**63 - 1)   # also seeds the image subset
    progress = checks.flag("progress", progress)
    overwrite = checks.flag("overwrite", overwrite)
    stale_seconds = 3600.0 * checks.number("stale_claim_hours", stale_claim_hours, low=0.0, strict=True)
    opts = _check_options(options).replace(seed=seed)
    if not isinstance(model, (str, ModelBundle)):
        raise TypeError(f"model must be a model name or an igospp.ModelBundle, got {type(model).__name__}.")
    todo_jobs = jobs(methods, resolutions)
    if str(images) != BUNDLED and not Path(images).is_dir():
        raise FileNotFoundError(f"images {str(images)!r} is not a folder; give a folder of images or "
                                f"{BUNDLED!r} for the bundled photos.")
    if isinstance(model, ModelBundle):
        _check_resolutions(todo_jobs, model)
    out = check_folder(out, "out")
    bundle = load_model(model, device=device) if isinstance(model, str) else model
    _check_resolutions(todo_jobs, bundle)
    expected = {job: _settings(bundle, job, opts, protocol) for job in todo_jobs}
    if str(images) == BUNDLED:
        images = bundled_folder(out)
    folder = image_folder(images, n=n, seed=seed)
    root = Path(images)
    mine = [rec for i, rec in enumerate(folder) if i % n_shards == k]
    records_dir = out / "records"
    skipped = [_skip(out, root, path, why, warn=False) for path, why in folder.skipped]
    digests: dict[Path, str] = {}
    for rec in mine:
        try:
            digests[rec.path] = _sha256(rec.path)
        except OSError as err:
            skipped.append(_skip(out, root, rec.path, f"{type(err).__name__}: {err}", warn=True))
        else:
            (out / "skipped" / f"{_file_stem(rec.key)}.json").unlink(missing_ok=True)   # readable now
    readable = [rec for rec in mine if rec.path in digests]

    # Every record this run would write, looked at before anything is computed.
    pending: set[tuple[Job, Path]] = set()
    invalid: list[tuple[str, str]] = []
    differs: list[tuple[Path, list[str]]] = []
    reused = 0
    for rec in readable:
        for job in todo_jobs:
            path = _record_file(out, rec.key, job)
            state, detail = _record_state(path, rec.key, job, digests[rec.path], expected[job])
            if state == "done":
                reused += 1
                continue
            if state == "invalid":
                invalid.append((path.name, detail))
            elif state == "differs":
                differs.append((path, detail))
            pending.add((job, rec.path))
    if differs and not overwrite:
        raise _mismatch_error(differs, records_dir)
    if invalid:
        warnings.warn(f"recomputing {len(invalid)} invalid record file(s) under {str(records_dir)!r}: "
                      f"{_listing(invalid)}.", InvalidRecordWarning, stacklevel=2)

    run = {"images_dir": str(Path(images)), "n_images": len(folder), "shard": (k, n_shards), "provenance": versions()}
    claims = records_dir / ".claims"
    written: list[Path] = []
    elsewhere = 0
    bar = tqdm(total=len(todo_jobs) * len(mine), initial=reused + len(todo_jobs) * (len(mine) - len(readable)),
               disable=not progress, desc="evaluate", unit="heatmap")
    # Images go through in groups, every method on a group before the next group, so a run cut
    # short leaves complete rows of the table for the images it reached.
    with bar:
        for start in range(0, len(readable), batch_images):
            images_group = readable[start:start + batch_images]
            arrays: dict[Path, np.ndarray] = {}
            for rec in images_group:
                todo = sum((job, rec.path) in pending for job in todo_jobs)
                if not todo:
                    continue
                try:
                    arrays[rec.path] = rec.load()
                except Exception as err:  # any decoding failure skips the file (PIL raises many types)
                    skipped.append(_skip(out, root, rec.path, f"{type(err).__name__}: {err}", warn=True))
                    bar.update(todo)
            for job in todo_jobs:
                group = [rec for rec in images_group if (job, rec.path) in pending and rec.path in arrays]
                held: dict[Path, tuple[Path, dict[str, Any]]] = {}
                try:
                    for rec in group:
                        record_path = _record_file(out, rec.key, job)
                        claim = claims / f"{record_path.stem}.claim"
                        token = _claim(claim, stale_seconds)
                        if token is not None and _record_state(record_path, rec.key, job, digests[rec.path],
                                                               expected[job])[0] == "done":
                            _release(claim, token)          # another process finished it since the scan
                            token = None
                        if token is None:
                            elsewhere += 1
                            bar.update(1)
                        else:
                            held[rec.path] = (claim, token)
                    todo_recs = [rec for rec in group if rec.path in held]
                    if not todo_recs:
                        continue
                    x = bundle.preprocess([arrays[rec.path] for rec in todo_recs])
                    with torch.no_grad():
                        probs = bundle.model(x).softmax(dim=1)
                    top = probs.argmax(dim=1).tolist()
                    _, result, info = run_method(bundle, x, job, top, protocol, opts)
                    for i, rec in enumerate(todo_recs):
                        record = make_record(bundle, rec, job, top[i], probs[i], result, info, i,
                                             image_sha256=digests[rec.path], **run)
                        written.append(write_json(_record_file(out, rec.key, job), record))
                        _release(*held.pop(rec.path))
                        bar.update(1)
                finally:
                    for claim, token in held.values():
                        _release(claim, token)
    return EvaluationRun(written=written, reused=reused, skipped_images=skipped, claimed_elsewhere=elsewhere)


def _check_resolutions(todo_jobs: list[Job], bundle: ModelBundle) -> None:
    for job in todo_jobs:
        if job.resolution is not None:
            checks.integer("resolutions", job.resolution, low=1, high=min(bundle.input_size))


def _looks_like_record(payload: Any) -> bool:
    """A JSON file beside ``igospp explain``'s figures that is meant as a record (else someone else's file)."""
    return isinstance(payload, dict) and "method" in payload and ("deletion_auc" in payload
                                                                  or "insertion_auc" in payload)


def load_records(out: str | Path) -> list[dict[str, Any]]:
    """Every valid record of a run: ``out/records/*.json`` (``igospp evaluate``, one run or several
    shards) and ``out/*.json`` (``igospp explain``).

    Invalid records (:func:`record_problem`: unreadable, not JSON, ``{}``, unrelated JSON in
    ``records/``, a missing key, a ``null`` AUC, a record of an older igospp...) are left out
    with one :class:`InvalidRecordWarning` naming each file and its problem; rerunning the
    ``evaluate`` command that wrote them recomputes them. JSON files directly in ``out`` that
    do not look like records (no ``method`` and AUC) are someone else's and are ignored.

    Args:
        out: the output folder of :func:`evaluate` or of ``igospp explain``.

    Returns:
        The records, ``records/`` first, each folder in file-name order.

    Raises:
        FileNotFoundError: when ``out`` holds no valid record.

    Example:
        >>> import tempfile
        >>> load_records(tempfile.mkdtemp())     # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: no records under '...': run `igospp evaluate --out ...` or ... first.
    """
    root = Path(out)
    files = sorted((root / "records").glob("*.json")) + sorted(root.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no records under {str(root)!r}: run `igospp evaluate --out {out}` or "
                                f"`igospp explain IMAGE --out {out}` first.")
    records, problems = [], []
    for path in files:
        payload, problem = _read_record(path)
        if problem is None:
            records.append(payload)
        elif path.parent != root or _looks_like_record(payload):
            problems.append((path.relative_to(root).as_posix(), problem))
    if problems:
        warnings.warn(f"left out {len(problems)} invalid record file(s) under {str(root)!r}: {_listing(problems)}. "
                      "Rerun the `igospp evaluate` command that wrote them to recompute them, or delete them.",
                      InvalidRecordWarning, stacklevel=2)
    if not records:
        raise FileNotFoundError(f"no readable records under {str(root)!r} (JSON files there: {len(files)}, "
                                f"invalid records: {len(problems)}).")
    return records


def _fmt(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "--"
    return f"{mean:.4f}" if se is None or math.isnan(se) else f"{mean:.4f} ± {se:.4f}"


@dataclass
class Summary:
    """The table of an evaluation: one row per method and resolution.

    Attributes:
        rows: dicts with ``method``, ``name``, ``resolution``, ``n`` (the records, one per
            image, the row averages), ``deletion_mean``, ``deletion_se``, ``insertion_mean``,
            ``insertion_se`` (trapezoid AUCs), ``legacy_deletion_mean``, ``legacy_deletion_se``,
            ``legacy_insertion_mean``, ``legacy_insertion_se`` (the authors' logged scores,
            ``None`` when the protocol has none) and ``seconds_mean``.
        model, protocol, images_dir, devices, batch_images: what the numbers depend on (the
            image folders, devices and images per method call of the records).
        n_images: the images of all the records together.
        notes: one sentence per row that averages fewer images than ``n_images`` (rows that
            average different images are not comparable as they stand; :func:`paired` compares
            two methods over the images both have); empty when every row has every image.
        skipped: ``{"file", "key", "reason"}`` of the image files skipped as unreadable
            (:func:`load_skipped`); they are in no row.

    Example:
        >>> rec = dict(model="m", device="cpu", method="rise", resolution="32", deletion_auc=0.1,
        ...            insertion_auc=0.5, seconds=1.0, protocol={"name": "igospp"}, path="a.png")
        >>> s = summarize([rec, rec | {"path": "b.png"}, rec | {"method": "gradcam", "resolution": "7"}])
        >>> [(r["name"], r["n"]) for r in s.rows], s.n_images
        ([('Grad-CAM', 1), ('RISE', 2)], 2)
        >>> s.notes
        ['Grad-CAM 7x7 averages 1 of the 2 images (missing: b.png); compare rows over the same images (paired()).']
    """

    rows: list[dict[str, Any]]
    model: str
    protocol: dict[str, Any]
    images_dir: str
    devices: list[str] = field(default_factory=list)
    batch_images: list[int] = field(default_factory=list)
    n_images: int = 0
    notes: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def header(self) -> str:
        """One line: the model, the protocol, the images, the devices and the images per method call."""
        p = self.protocol
        steps = f"{p['step']} units/step" if p.get("step") else f"about {p.get('n_steps', '?')} steps"
        rules = "trapezoid AUC and the authors' logged score" if p.get("legacy") else "trapezoid AUC"
        return (f"model: {self.model}; protocol: {p['name']} (deletion to {p.get('deletion_substrate', '?')}, "
                f"insertion from {p.get('insertion_substrate', '?')}, ranking {p.get('unit', '?')}, {steps}, "
                f"{p.get('score', '?')} of the top-1 class, {rules}); images: {self.images_dir}; device: "
                f"{', '.join(self.devices)}; images per method call: {', '.join(map(str, self.batch_images))} "
                "(seconds / image = call time / images)")

    def remarks(self) -> list[str]:
        """The notes, then one sentence on the skipped image files (if any): what the table's readers must know."""
        lines = list(self.notes)
        if self.skipped:
            shown = ", ".join(f"{s['key']} ({s['reason']})" for s in self.skipped[:_SHOWN])
            more = f" and {len(self.skipped) - _SHOWN} more" if len(self.skipped) > _SHOWN else ""
            lines.append(f"{len(self.skipped)} image file(s) could not be read and are in no row: {shown}{more}.")
        return lines

    def to_markdown(self) -> str:
        """The table in Markdown: the header in italics, one row per method and resolution, then the remarks."""
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
        for remark in self.remarks():
            lines += ["", f"**Note:** {remark}"]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The table as CSV, after ``#`` comment lines: the header, then each remark as ``# note: ...``."""
        buffer = io.StringIO()
        fields = ["method", "name", "resolution", "n", "deletion_mean", "deletion_se", "insertion_mean",
                  "insertion_se", "legacy_deletion_mean", "legacy_deletion_se", "legacy_insertion_mean",
                  "legacy_insertion_se", "seconds_mean"]
        buffer.write(f"# {self.header()}\n")
        for remark in self.remarks():
            buffer.write(f"# note: {remark}\n")
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


def _image_id(record: dict[str, Any]) -> str:
    return str(record.get("path") or record.get("key") or record.get("image"))


def _image_label(record: dict[str, Any]) -> str:
    return str(record.get("key") or Path(str(record.get("path") or record.get("image"))).name)


def summarize(records: list[dict[str, Any]], *, skipped: Sequence[dict[str, str]] | None = None) -> Summary:
    """Mean and standard error of the AUCs and mean seconds per image, per method and resolution.

    Rows follow :data:`igospp.methods.REGISTRY`'s order (then the resolution), with its display
    names; records of ``igospp evaluate`` and of ``igospp explain`` are both accepted. Each row
    says how many images it averages (``n``); when rows average different images the summary's
    ``notes`` say which rows lack which images, and the Markdown and CSV show them.

    Args:
        records: records (:func:`load_records`, which leaves invalid ones out); each needs at
            least ``model``, ``device``, ``method``, ``resolution``, ``deletion_auc``,
            ``insertion_auc``, ``seconds`` and ``protocol``.
        skipped: the image files skipped as unreadable (:func:`load_skipped`), reported below the
            table. Default: none.

    Raises:
        ValueError: when there is no record, a record is invalid (named, with its problem: a
            missing key, a ``null`` or non-finite AUC...), or the records mix models or
            protocols (their numbers are not comparable).
    """
    if not records:
        raise ValueError("records is empty: nothing to summarize.")
    for i, r in enumerate(records):
        problem = _problem(r, _REQUIRED)
        if problem is not None:
            where = f" ({r.get('path') or r.get('key')})" if isinstance(r, dict) and (r.get("path") or r.get("key")) \
                else ""
            raise ValueError(f"records[{i}]{where} is not a valid record: {problem}. load_records() leaves invalid "
                             "records out (with a warning); rerun evaluate to recompute them.")
    skipped = [] if skipped is None else list(skipped)
    if not all(isinstance(s, dict) and {"file", "reason"} <= set(s) for s in skipped):
        raise ValueError("skipped must be a list of {'file', 'key', 'reason'} dicts, as load_skipped() returns.")
    skipped = [{"file": str(s["file"]), "key": str(s.get("key") or Path(str(s["file"])).name),
                "reason": str(s["reason"])} for s in skipped]
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

    rows, image_sets = [], []
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
        image_sets.append({_image_id(r) for r in group})
    labels = {_image_id(r): _image_label(r) for r in records}
    every = set().union(*image_sets)
    notes = []
    for row, ids in zip(rows, image_sets, strict=True):
        if ids != every:
            missing = sorted(labels[i] for i in every - ids)
            shown = ", ".join(missing[:_SHOWN]) + (f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN
                                                   else "")
            notes.append(f"{row['name']} {row['resolution']} averages {len(ids)} of the {len(every)} images "
                         f"(missing: {shown}); compare rows over the same images (paired()).")
    folders = sorted({str(r["images_dir"]) for r in records if r.get("images_dir") is not None})
    return Summary(rows=rows, model=models[0], protocol=records[0]["protocol"],
                   images_dir=", ".join(folders) or "--", devices=sorted({r["device"] for r in records}),
                   batch_images=sorted({int(r.get("batch_images", 1)) for r in records}), n_images=len(every),
                   notes=notes, skipped=skipped)
