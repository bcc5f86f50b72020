"""The record: one JSON file per image and method, its format, its validation, and the images left out.

:func:`make_record` writes the one record format of the package: ``igospp evaluate``
(:func:`igospp.studies.benchmark.evaluate`) writes it under ``OUT/records/<stem>-<hash>__<job>.json``
(``<hash>``: the first 10 hexadecimal digits of the SHA-1 of ``key``, so ``a/img1.png``,
``b/img1.png`` and ``b/img1.jpg`` get three records), ``igospp explain`` beside its figures as
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
``masks``                the two masks of iGOS++ (and its two-mask ablations) scored alone, the
                         paper's supplementary Table 5: ``{"deletion_mask", "insertion_mask"}``,
                         each ``{"deletion_auc", "insertion_auc", "legacy_deletion_auc",
                         "legacy_insertion_auc"}`` of :math:`1 - M_x` and :math:`1 - M_y` under
                         the record's protocol (no curves); ``None`` for the other methods
``final_scores``         ``{"deletion", "insertion"}``: the noise-free scores of the deletion and
                         insertion images of the optimized mask after the last iteration
                         (``Explanation.history``); their difference is the loss of the paper's
                         supplementary Table 7; ``None`` for the methods that optimize nothing
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

Unreadable images
-----------------

An image file that cannot be decoded (not an image, truncated, corrupt: found by
:func:`igospp.image_folder`, or when :func:`evaluate` loads it) is skipped, not fatal: it is
named in a warning, written as ``OUT/skipped/<stem>-<hash>.json`` (``{"file", "key",
"reason"}``), returned in :attr:`igospp.studies.benchmark.EvaluationRun.skipped_images`, read back by
:func:`load_skipped` and reported by :func:`summarize`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from igospp.images import ImageRecord
from igospp.metrics import CausalMetricResult
from igospp.models import ModelBundle
from igospp.provenance import versions
from igospp.storage import write_json

if TYPE_CHECKING:
    from igospp.studies.benchmark import Job

__all__ = ["RECORD_KEYS", "PERFORMANCE_ONLY", "InvalidRecordWarning", "make_record", "record_problem", "load_records",
           "load_skipped", "read_record", "record_file", "file_sha256", "skip_image"]


#: The keys of a record (see the module's documentation), in the order they are written.
RECORD_KEYS: tuple[str, ...] = (
    "model", "device", "images_dir", "n_images", "shard", "versions", "image", "path", "key", "image_sha256",
    "label", "synset", "method", "requested_resolution", "resolution", "target", "correct", "deletion_auc",
    "insertion_auc", "legacy_deletion_auc", "legacy_insertion_auc", "curves", "seconds", "metric_seconds",
    "batch_images", "stats", "masks", "final_scores", "method_config", "protocol")

#: The fields of a record's ``method_config`` that change how fast a method runs, not its result:
#: a record made with other values of these is reused by :func:`evaluate`.
PERFORMANCE_ONLY: tuple[str, ...] = ("batch_size", "progress", "track_scores")

# What summarize needs in a record (records of older versions and hand-made ones have these).
REQUIRED = ("model", "device", "method", "resolution", "deletion_auc", "insertion_auc", "seconds", "protocol")

SHOWN = 5              # files named in a warning or an error
_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidRecordWarning(UserWarning):
    """Invalid record files (see :func:`record_problem`): left out by :func:`load_records`, recomputed by evaluate."""


def _per_image(total: float, n: int) -> float | int:
    return total // n if isinstance(total, int) and total % n == 0 else total / n


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in 1 MiB blocks).

    Args:
        path: the file.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.bin"; _ = f.write_bytes(b"abc")
    >>> file_sha256(f)[:16]
    'ba7816bf8f01cfea'
    """
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
        "image_sha256": file_sha256(image.path) if image_sha256 is None else image_sha256,
        "label": image.label, "synset": image.synset,
        "method": job.method, "requested_resolution": job.resolution, "resolution": info["resolution"],
        "target": {"index": target, "name": names[target] if target < len(names) else str(target),
                   "probability": float(probabilities[target]), "top1": top == target},
        "correct": None if image.label is None else image.label == top,
        **_metric_fields(result, i),
        "seconds": info["seconds"] / n, "metric_seconds": info["metric_seconds"] / n, "batch_images": n,
        "stats": None if info["stats"] is None else {k: _per_image(v, n) for k, v in info["stats"].items()},
        "masks": None if info.get("masks") is None else
        {name: _auc_fields(res, i) for name, res in info["masks"].items()},
        "final_scores": _final_scores(info.get("explanation"), i),
        "method_config": info["config"], "protocol": result.protocol,
    }


def _final_scores(exp: Any, i: int) -> dict[str, float] | None:
    if exp is None or exp.history.deletion is None:
        return None
    return {"deletion": float(exp.history.deletion[-1, i]), "insertion": float(exp.history.insertion[-1, i])}


def _auc_fields(result: CausalMetricResult, i: int) -> dict[str, float | None]:
    legacy = result.legacy_deletion_auc is not None
    return {
        "deletion_auc": float(result.deletion_auc[i]),
        "insertion_auc": float(result.insertion_auc[i]),
        "legacy_deletion_auc": float(result.legacy_deletion_auc[i]) if legacy else None,
        "legacy_insertion_auc": float(result.legacy_insertion_auc[i]) if legacy else None,
    }


def _metric_fields(result: CausalMetricResult, i: int) -> dict[str, Any]:
    return {
        **_auc_fields(result, i),
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


def record_problem_in(record: Any, required: Sequence[str]) -> str | None:
    """What is wrong with ``record`` given the keys it must have (``None``: nothing); see :func:`record_problem`.

    Args:
        record: a parsed JSON value.
        required: the keys it must hold (:data:`RECORD_KEYS` for a full record, :data:`REQUIRED`
            for what a summary needs).
    """
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
    if record.get("masks") is not None:
        problem = _masks_problem(record["masks"])
        if problem:
            return problem
    scores = record.get("final_scores")
    if scores is not None and not (isinstance(scores, dict) and all(_finite(scores.get(k))
                                                                    for k in ("deletion", "insertion"))):
        return f"final_scores must be null or an object with finite 'deletion' and 'insertion', got {scores!r}"
    if "curves" in record:
        return _curves_problem(record["curves"])
    return None


def _masks_problem(masks: Any) -> str | None:
    names = ("deletion_mask", "insertion_mask")
    if not isinstance(masks, dict) or set(masks) != set(names) or not all(isinstance(masks[k], dict) for k in names):
        return "masks must be null or an object with the objects 'deletion_mask' and 'insertion_mask'"
    for name in names:
        for k in ("deletion_auc", "insertion_auc"):
            if not _finite(masks[name].get(k)):
                return f"masks.{name}.{k} must be a finite number, got {masks[name].get(k)!r}"
        for k in ("legacy_deletion_auc", "legacy_insertion_auc"):
            if masks[name].get(k) is not None and not _finite(masks[name][k]):
                return f"masks.{name}.{k} must be a finite number or null, got {masks[name][k]!r}"
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
        integer ``index``, ``image_sha256`` a SHA-256 in hexadecimal, ``masks`` ``null`` or
        the two masks' finite AUCs, ``final_scores`` ``null`` or two finite scores, ``curves``
        three lists of finite numbers of one length.

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
    return record_problem_in(record, RECORD_KEYS)


def read_record(path: Path) -> tuple[Any, str | None]:
    """``(payload, problem)``: the file's parsed JSON (``None`` when unreadable) and :func:`record_problem`."""
    try:
        payload = json.loads(path.read_bytes())
    except OSError as err:
        return None, f"unreadable ({err.strerror or err})"
    except (ValueError, RecursionError) as err:
        return None, f"not valid JSON ({err})"
    return payload, record_problem(payload)


def file_stem(key: str) -> str:
    """``<stem>-<first 10 hex digits of sha1(key)>``: unique per key, readable."""
    return f"{Path(key).stem}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def record_file(out: Path, key: str, job: Job) -> Path:
    """Where the record of image ``key`` and ``job`` lives: ``out/records/<file_stem(key)>__<job.key>.json``.

    Args:
        out: the run's output folder.
        key: the image's path relative to the image folder.
        job: the method and requested resolution (:class:`igospp.studies.benchmark.Job`).
    """
    return out / "records" / f"{file_stem(key)}__{job.key}.json"


def listing(items: Sequence[tuple[Any, str]]) -> str:
    """``"name: why; ..."`` for the first :data:`SHOWN` items, then how many more (for warnings and errors).

    >>> listing([("a.json", "empty"), ("b.json", "not JSON")])
    'a.json: empty; b.json: not JSON'
    """
    shown = "; ".join(f"{name}: {why}" for name, why in items[:SHOWN])
    return shown + (f"; and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


# ----------------------------------------------------------------------------------------- skipped images
def skip_image(out: Path, root: Path, path: Path, reason: str, warn: bool) -> dict[str, str]:
    """Write ``OUT/skipped/<stem>-<hash>.json`` for an unreadable image file and return its entry."""
    try:
        key = Path(path).relative_to(root).as_posix()
    except ValueError:
        key = Path(path).name
    entry = {"file": str(path), "key": key, "reason": reason}
    write_json(out / "skipped" / f"{file_stem(key)}.json", entry)
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
        payload, _ = read_record(path)
        if isinstance(payload, dict) and isinstance(payload.get("file"), str) and isinstance(payload.get("reason"),
                                                                                              str):
            entries.append({"file": payload["file"], "key": str(payload.get("key") or Path(payload["file"]).name),
                            "reason": payload["reason"]})
    return entries


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
        payload, problem = read_record(path)
        if problem is None:
            records.append(payload)
        elif path.parent != root or _looks_like_record(payload):
            problems.append((path.relative_to(root).as_posix(), problem))
    if problems:
        warnings.warn(f"left out {len(problems)} invalid record file(s) under {str(root)!r}: {listing(problems)}. "
                      "Rerun the `igospp evaluate` command that wrote them to recompute them, or delete them.",
                      InvalidRecordWarning, stacklevel=2)
    if not records:
        raise FileNotFoundError(f"no readable records under {str(root)!r} (JSON files there: {len(files)}, "
                                f"invalid records: {len(problems)}).")
    return records
