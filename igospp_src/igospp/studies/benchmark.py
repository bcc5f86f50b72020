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

Records are written in the format of :mod:`igospp.studies.records` (documented key by key
there), and concurrent runs share the work through :mod:`igospp.studies.claims`.

Resuming
--------

:func:`evaluate` reuses a record only when it is valid and was made with what this run would
write: the same ``model``, the same ``protocol``, the same method settings (``method_config``
without the fields of :data:`PERFORMANCE_ONLY`, which change the speed, not the result) and the
same file content (``image_sha256``). When existing records differ it raises
:class:`SettingsMismatchError` before computing anything, listing the differences; pass
``overwrite=True`` (``igospp evaluate --overwrite``) to recompute and replace them, or write
to another output folder. Invalid records are recomputed and replaced, with a warning.

Example:
    >>> from igospp.studies.benchmark import jobs
    >>> [job.key for job in jobs(["gradcam", "igospp"], [7, 28])]
    ['gradcam', 'igospp7', 'igospp28']
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
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
from igospp.images import image_folder, sample_images
from igospp.methods import REGISTRY, MethodOptions, Optimized, build, display_name
from igospp.metrics import PROTOCOLS, CausalMetricResult, Protocol, insertion_deletion
from igospp.models import ModelBundle, load_model
from igospp.provenance import versions
from igospp.storage import check_folder, write_bytes, write_json
from igospp.studies import paper
from igospp.studies.claims import claim, release
from igospp.studies.records import (
    PERFORMANCE_ONLY,
    RECORD_KEYS,
    REQUIRED,
    SHOWN,
    InvalidRecordWarning,
    file_sha256,
    file_stem,
    listing,
    load_records,
    load_skipped,
    make_record,
    read_record,
    record_file,
    record_problem,
    record_problem_in,
    skip_image,
)
from igospp.studies.stats import PairedDifference, mean_se, paired_difference

__all__ = ["BUNDLED", "DEFAULT_METHODS", "RECORD_KEYS", "PERFORMANCE_ONLY", "Job", "jobs", "versions", "run_provenance",
           "method_config", "run_method", "make_record", "record_problem", "evaluate", "EvaluationRun",
           "SettingsMismatchError", "InvalidRecordWarning", "bundled_folder", "load_records", "load_skipped",
           "summarize", "Summary", "paired"]

#: ``images="bundled"``: the photos of :func:`igospp.sample_images`, written as PNG files under ``OUT/bundled``.
BUNDLED = "bundled"

#: The methods :func:`evaluate` and ``igospp evaluate`` run by default: those of the paper's Table 1,
#: in :data:`~igospp.methods.REGISTRY` order.
DEFAULT_METHODS: tuple[str, ...] = tuple(paper.methods(paper.TABLE1))


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
        methods), ``explanation`` (the :class:`~igospp.Explanation` of the optimization
        methods, else ``None``) and ``masks`` (iGOS++ and its ablations with two masks: the
        metric results of the deletion mask alone, :math:`1 - M_x`, and of the insertion mask
        alone, :math:`1 - M_y`, under ``"deletion_mask"`` and ``"insertion_mask"``: the
        paper's supplementary Table 5; else ``None``; not counted in ``metric_seconds``).
        :func:`make_record` turns them into records.
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
                            "stats": None, "explanation": None, "masks": None,
                            "config": method_config(method, job.method)}
    if isinstance(method, Optimized):
        exp = method.last_explanation
        info["explanation"] = exp
        info["stats"] = {"forward_images": exp.stats.forward_images, "backward_images": exp.stats.backward_images}
        if exp.deletion_mask is not None and exp.insertion_mask is not None:
            info["masks"] = {name: insertion_deletion(bundle.model, images, 1 - mask, target=targets,
                                                      protocol=protocol, batch_size=options.batch_size)
                             for name, mask in (("deletion_mask", exp.deletion_mask),
                                                ("insertion_mask", exp.insertion_mask))}
    return saliency, result, info


def _resolution_label(saliency: torch.Tensor) -> str:
    h, w = saliency.shape[-2:]
    return f"{h}" if h == w else f"{h}x{w}"


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


# ----------------------------------------------------------------------------------------------- resuming
def _json_copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def run_provenance() -> dict[str, str]:
    """What each record of :func:`evaluate` states about where it ran: :func:`igospp.provenance.versions`
    plus ``"glibc_tunables"``, the C library's allocator tuning of this process (the environment
    variable ``GLIBC_TUNABLES``, ``""`` when unset).

    The tuning changes no number, only the time: on a CPU, keeping freed memory for reuse instead
    of returning it to the system after every large tensor makes the optimizations markedly
    faster (``benchmarks/bench_malloc.py`` measures by how much), so run times are compared only
    within one tuning.

    >>> sorted(set(run_provenance()) - set(versions()))
    ['glibc_tunables']
    """
    return {**versions(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")}


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
    payload, problem = read_record(path)
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
    skipped = [skip_image(out, root, path, why, warn=False) for path, why in folder.skipped]
    digests: dict[Path, str] = {}
    for rec in mine:
        try:
            digests[rec.path] = file_sha256(rec.path)
        except OSError as err:
            skipped.append(skip_image(out, root, rec.path, f"{type(err).__name__}: {err}", warn=True))
        else:
            (out / "skipped" / f"{file_stem(rec.key)}.json").unlink(missing_ok=True)   # readable now
    readable = [rec for rec in mine if rec.path in digests]

    # Every record this run would write, looked at before anything is computed.
    pending: set[tuple[Job, Path]] = set()
    invalid: list[tuple[str, str]] = []
    differs: list[tuple[Path, list[str]]] = []
    reused = 0
    for rec in readable:
        for job in todo_jobs:
            path = record_file(out, rec.key, job)
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
                      f"{listing(invalid)}.", InvalidRecordWarning, stacklevel=2)

    run = {"images_dir": str(Path(images)), "n_images": len(folder), "shard": (k, n_shards),
           "provenance": run_provenance()}
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
                    skipped.append(skip_image(out, root, rec.path, f"{type(err).__name__}: {err}", warn=True))
                    bar.update(todo)
            for job in todo_jobs:
                group = [rec for rec in images_group if (job, rec.path) in pending and rec.path in arrays]
                held: dict[Path, tuple[Path, dict[str, Any]]] = {}
                try:
                    for rec in group:
                        record_path = record_file(out, rec.key, job)
                        claim_path = claims / f"{record_path.stem}.claim"
                        token = claim(claim_path, stale_seconds)
                        if token is not None and _record_state(record_path, rec.key, job, digests[rec.path],
                                                               expected[job])[0] == "done":
                            release(claim_path, token)     # another process finished it since the scan
                            token = None
                        if token is None:
                            elsewhere += 1
                            bar.update(1)
                        else:
                            held[rec.path] = (claim_path, token)
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
                        written.append(write_json(record_file(out, rec.key, job), record))
                        release(*held.pop(rec.path))
                        bar.update(1)
                finally:
                    for claim_path, token in held.values():
                        release(claim_path, token)
    return EvaluationRun(written=written, reused=reused, skipped_images=skipped, claimed_elsewhere=elsewhere)


def _check_resolutions(todo_jobs: list[Job], bundle: ModelBundle) -> None:
    for job in todo_jobs:
        if job.resolution is not None:
            checks.integer("resolutions", job.resolution, low=1, high=min(bundle.input_size))


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
            ``None`` when the protocol has none), ``seconds_mean``, ``seconds_se`` and
            ``seconds_median`` (the method's wall time per image; the median is the one to read
            when other work shared the machine at times).
        model, protocol, images_dir, devices, batch_images: what the numbers depend on (the
            image folders, devices and images per method call of the records).
        n_images: the images of all the records together.
        notes: one sentence per row that averages fewer images than ``n_images`` (rows that
            average different images are not comparable as they stand; :func:`paired` compares
            two methods over the images both have); empty when every row has every image.
        skipped: ``{"file", "key", "reason"}`` of the image files skipped as unreadable
            (:func:`load_skipped`); they are in no row.
        not_top1: records that explain another class than the clean image's top-1 (``igospp
            explain --target``); :func:`evaluate` always explains the top-1 class.

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
    not_top1: int = 0

    def header(self) -> str:
        """One line: the model, the protocol, the images, the devices and the images per method call."""
        p = self.protocol
        steps = f"{p['step']} units/step" if p.get("step") else f"about {p.get('n_steps', '?')} steps"
        rules = "trapezoid AUC and the authors' logged score" if p.get("legacy") else "trapezoid AUC"
        target = ("the top-1 class" if not self.not_top1 else
                  f"the class explained, not the top-1 class in {self.not_top1} records")
        return (f"model: {self.model}; protocol: {p['name']} (deletion to {p.get('deletion_substrate', '?')}, "
                f"insertion from {p.get('insertion_substrate', '?')}, ranking {p.get('unit', '?')}, {steps}, "
                f"{p.get('score', '?')} of {target}, {rules}); images: {self.images_dir}; device: "
                f"{', '.join(self.devices)}; images per method call: {', '.join(map(str, self.batch_images))} "
                "(seconds / image = call time / images)")

    def remarks(self) -> list[str]:
        """The notes, then one sentence on the skipped image files (if any): what the table's readers must know."""
        lines = list(self.notes)
        if self.skipped:
            shown = ", ".join(f"{s['key']} ({s['reason']})" for s in self.skipped[:SHOWN])
            more = f" and {len(self.skipped) - SHOWN} more" if len(self.skipped) > SHOWN else ""
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
                  "legacy_insertion_se", "seconds_mean", "seconds_se", "seconds_median"]
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
            ``None`` for any. Methods whose resolution is fixed (Grad-CAM, IG, RISE) match any.
        resolution_b: the same for ``b``; default: ``resolution``.
        confidence: coverage of the Student-t interval (:func:`igospp.studies.stats.paired_difference`).

    Returns:
        A :class:`~igospp.studies.stats.PairedDifference` over the images that both methods have.

    Raises:
        ValueError: when no image has both, an image has two records of one method at the
            resolution (:func:`igospp.studies.reproduction.per_image`), or a record lacks ``metric``.

    Example:
        >>> from igospp.studies.benchmark import paired
        >>> recs = [dict(path=p, method=m, resolution="28", insertion_auc=v) for p, m, v in
        ...         [("a", "igospp", 0.7), ("b", "igospp", 0.6), ("a", "igos", 0.5), ("b", "igos", 0.5)]]
        >>> d = paired(recs, "igospp", "igos", resolution=28)
        >>> round(d.mean, 3), d.n, d.n_positive
        (0.15, 2, 2)
    """
    from igospp.studies.reproduction import per_image

    metric = checks.choice("metric", metric, _METRICS)
    confidence = checks.probability("confidence", confidence)
    resolution_b = resolution if resolution_b is None else resolution_b
    va, vb = per_image(records, a, resolution, metric), per_image(records, b, resolution_b, metric)
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
        problem = record_problem_in(r, REQUIRED)
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
        row["seconds_mean"], row["seconds_se"] = mean_se([r["seconds"] for r in group])
        row["seconds_median"] = float(np.median([r["seconds"] for r in group]))
        rows.append(row)
        image_sets.append({_image_id(r) for r in group})
    labels = {_image_id(r): _image_label(r) for r in records}
    every = set().union(*image_sets)
    notes = []
    for row, ids in zip(rows, image_sets, strict=True):
        if ids != every:
            missing = sorted(labels[i] for i in every - ids)
            shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN
                                                   else "")
            notes.append(f"{row['name']} {row['resolution']} averages {len(ids)} of the {len(every)} images "
                         f"(missing: {shown}); compare rows over the same images (paired()).")
    folders = sorted({str(r["images_dir"]) for r in records if r.get("images_dir") is not None})
    return Summary(rows=rows, model=models[0], protocol=records[0]["protocol"],
                   images_dir=", ".join(folders) or "--", devices=sorted({r["device"] for r in records}),
                   batch_images=sorted({int(r.get("batch_images", 1)) for r in records}), n_images=len(every),
                   notes=notes, skipped=skipped,
                   not_top1=sum((r.get("target") or {}).get("top1") is False for r in records))
