"""The ``igospp`` command line: ``explain`` images, ``evaluate`` methods on a folder, ``summarize`` results.

Examples::

    igospp explain photo.jpg --method igospp --resolution 28 --out results/
    igospp evaluate --images val/ --n 100 --methods igospp,igos,gradcam,ig,rise,mask --resolutions 7,28,224 --out eval/
    igospp summarize eval/

Method names, their order in tables and whether they take ``--resolution`` come from
:data:`igospp.methods.REGISTRY`; the method settings (``--iterations``, ``--mask-iterations``,
``--ig-steps``, ``--ig-path-steps``, ``--rise-masks``, ``--batch-size``, ``--seed``) are the
fields of :class:`igospp.methods.MethodOptions`, the same for ``explain`` and ``evaluate``;
``--batch-size`` is also the insertion/deletion metric's. Both commands write the record of
:mod:`igospp.studies.records` (``explain`` as ``OUT/<image>_<job>.json`` beside its figures,
``evaluate`` under ``OUT/records/``), and ``summarize`` reads either folder.

Every flag is checked, and the output folder proven writable (:func:`igospp.storage.check_folder`),
before the model is loaded and before any computation, so nothing is written when an argument is
bad. A method setting given on the command line that no chosen method reads (``--ig-steps`` with
``--method ig``, ``--resolution`` with ``--method rise``...) is an error, not silently ignored;
settings left out take each method's default. ``explain`` refuses two images that would write
the same output names (``a/x.png`` and ``b/x.png``).

Errors (missing or unreadable files, unknown model or method, bad values, an unusable ``--out``,
no GPU for ``--device cuda``, any :class:`OSError`) print one line naming the argument or flag
and exit with status 2; nothing else prints a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from igospp import __version__, checks
from igospp._optional import require
from igospp.images import ImageRecord, read_image
from igospp.methods import REGISTRY, MethodOptions
from igospp.metrics import PROTOCOLS
from igospp.models import MODELS, ModelBundle, WeightsUnavailableError, load_model, resolve_device
from igospp.storage import check_folder, write_bytes, write_json, write_npy
from igospp.studies.benchmark import (
    BUNDLED,
    DEFAULT_METHODS,
    Job,
    evaluate,
    load_records,
    load_skipped,
    make_record,
    run_method,
    run_provenance,
    summarize,
)

__all__ = ["main", "build_parser", "CLIError"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (a bad ``int``, an unknown choice, a missing flag) as one-line :class:`CLIError`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"{flag} must be comma-separated integers, got {text!r}.") from None
    if not values:
        raise CLIError(f"{flag} must list at least one integer, got {text!r}.")
    return [checks.positive_int(flag, v) for v in values]


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise CLIError(f"--methods must list at least one of {', '.join(REGISTRY)}, got {text!r}.")
    return [checks.choice("--methods", m, tuple(REGISTRY)) for m in methods]


def _env_int(name: str, default: str | None = None) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CLIError(f"--shard auto: the environment variable {name} must be an integer, got {value!r}.") from None


def _shard(text: str) -> tuple[int, int]:
    """``K/N``, or ``auto``: torchrun's ``RANK``/``WORLD_SIZE`` or a Slurm array's task id and count."""
    names = ("--shard K", "--shard N")
    if text == "auto":
        env = os.environ
        if "WORLD_SIZE" in env:
            k, n = _env_int("RANK", "0"), _env_int("WORLD_SIZE")
            names = ("--shard auto: RANK", "--shard auto: WORLD_SIZE")
        elif "SLURM_ARRAY_TASK_COUNT" in env:
            k = _env_int("SLURM_ARRAY_TASK_ID") - _env_int("SLURM_ARRAY_TASK_MIN", "0")
            n = _env_int("SLURM_ARRAY_TASK_COUNT")
            names = ("--shard auto: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN", "--shard auto: SLURM_ARRAY_TASK_COUNT")
        else:
            k, n = 0, 1
    else:
        try:
            k, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise CLIError(f"--shard must look like K/N (e.g. 0/4) or be 'auto', got {text!r}.") from None
    n = checks.positive_int(names[1], n)
    return checks.integer(names[0], k, low=0, high=n - 1), n


#: Help of the flags of :class:`MethodOptions`' fields (``--seed`` aside), shared by ``explain`` and ``evaluate``.
_OPTION_HELP = {
    "iterations": "outer iterations of the optimization methods (default: the method's own, 20; Mask 500)",
    "mask_iterations": "iterations of Mask alone, replacing --iterations for it (default: --iterations, else 500)",
    "ig_steps": "integration steps of I-GOS, iGOS++ and the variants (default 20; not Mask, whose plain "
                "gradient is one step)",
    "ig_path_steps": "Riemann steps of Integrated Gradients (default 50)",
    "rise_masks": "number of RISE masks (default 8000)",
    "batch_size": "images per model call, of the methods and of the insertion/deletion metric (default 8 on "
                  "the CPU, 64 on a GPU); changes only the model's kernel rounding (see Config.batch_size)",
}


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _add_method_options(parser: argparse.ArgumentParser, seed_help: str) -> None:
    for f in dataclasses.fields(MethodOptions):
        if f.name != "seed":
            parser.add_argument(_flag(f.name), type=int, default=None, help=_OPTION_HELP.get(f.name))
    parser.add_argument("--seed", type=int, default=None, help=seed_help)


def _method_options(args: argparse.Namespace) -> MethodOptions:
    """The :class:`MethodOptions` of the command line, each value checked under its flag's name."""
    values = {}
    for f in dataclasses.fields(MethodOptions):
        if f.name != "seed":
            value = getattr(args, f.name)
            values[f.name] = None if value is None else checks.positive_int(_flag(f.name), value)
    seed = 0 if args.seed is None else checks.integer("--seed", args.seed, low=0, high=2**63 - 1)
    return MethodOptions(**values, seed=seed)


#: A hint for a method setting that the chosen methods do not read while they read its sister:
#: ``field: (sister field, hint)``.
_SISTERS = {
    "ig_steps": ("ig_path_steps", "Integrated Gradients' steps are --ig-path-steps"),
    "ig_path_steps": ("ig_steps", "the integration steps of I-GOS, iGOS++ and their variants are --ig-steps"),
    "mask_iterations": ("iterations", "the other optimization methods' iterations are --iterations"),
}


def _refuse_unused(args: argparse.Namespace, methods: Sequence[str], chosen: str, resolution_flag: str,
                   also_used: Sequence[str] = ()) -> None:
    """Refuse a method setting given on the command line that none of ``methods`` reads.

    The settings are the fields of :class:`MethodOptions` (flag ``--field-name``, read by the
    methods whose :attr:`MethodSpec.uses` lists the field) and the mask resolution (flag
    ``resolution_flag``, read by the methods that take one). ``chosen``: the methods as the user
    chose them (``"--method ig"``). ``also_used``: fields read by something else in this command
    (``batch_size`` by the insertion/deletion metric, ``seed`` by ``evaluate --n``'s subset).
    Settings left out (``None`` in ``args``) take each method's default and are not checked.
    """
    def refuse(flag: str, users: list[str], hint: str = "") -> None:
        hint = f" ({hint})" if hint else ""
        raise CLIError(f"{flag} is given but {chosen} does not use it{hint}; it is used by {', '.join(users)}. "
                       f"Drop {flag} or choose one of those methods.")

    for f in dataclasses.fields(MethodOptions):
        if getattr(args, f.name) is None or f.name in also_used or any(f.name in REGISTRY[m].uses for m in methods):
            continue
        sister, hint = _SISTERS.get(f.name, ("", ""))
        refuse(_flag(f.name), [name for name, spec in REGISTRY.items() if f.name in spec.uses],
               hint if any(sister in REGISTRY[m].uses for m in methods) else "")
    if getattr(args, resolution_flag[2:]) is not None and not any(REGISTRY[m].takes_resolution for m in methods):
        refuse(resolution_flag, [name for name, spec in REGISTRY.items() if spec.takes_resolution],
               "its resolution is fixed by the method")


def _device(text: str) -> str:
    """``--device``, checked by :func:`igospp.models.resolve_device` (known and available here) before
    anything is loaded."""
    try:
        resolve_device(text)
    except ValueError as err:
        raise CLIError(f"--device: {err}") from None
    return text


def _model_name(name: str) -> str:
    if not name.startswith("timm:"):
        try:
            checks.choice("--model", name, MODELS)
        except ValueError as err:
            raise CLIError(f"{err} Any timm model works too, as timm:<name>.") from None
    return name


def _target(text: str, bundle: ModelBundle) -> int | None:
    """``auto`` (top-1), a class index, or a class name (exact, else a unique substring)."""
    if text == "auto":
        return None
    if text.lstrip("-").isdigit():
        return checks.integer("--target", int(text), low=0, high=len(bundle.class_names) - 1)
    names = [n.lower() for n in bundle.class_names]
    if text.lower() in names:
        return names.index(text.lower())
    hits = [i for i, n in enumerate(names) if text.lower() in n]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise CLIError(f"--target {text!r} matches no class name; give a class index or a name such as "
                       f"{bundle.class_names[0]!r}.")
    shown = ", ".join(repr(bundle.class_names[i]) for i in hits[:6])
    raise CLIError(f"--target {text!r} matches several classes ({shown}{', ...' if len(hits) > 6 else ''}); "
                   "be more specific or give the class index.")


def _refuse_shared_outputs(paths: Sequence[str], key: str, out: str) -> None:
    """Refuse two images whose outputs ``<stem>_<key>*`` would overwrite each other's in ``out``.

    Stems are compared case-insensitively, as a case-insensitive file system (macOS, Windows) would.
    """
    seen: dict[str, str] = {}
    for path in paths:
        stem = f"{Path(path).stem}_{key}"
        if stem.casefold() in seen:
            raise CLIError(f"{seen[stem.casefold()]} and {path} would both write {stem}* in --out {out!r}; pass "
                           "them in separate runs (with different --out) or rename one.")
        seen[stem.casefold()] = path


@contextlib.contextmanager
def _output_folders(*folders: tuple[str | Path, str]) -> Iterator[list[Path]]:
    """Prove each ``(folder, flag)`` writable with :func:`check_folder` (creating it) for a ``with`` block
    that loads the model and checks the flags that need it: when that block fails, the folders
    created here are removed again, so a bad argument leaves nothing behind."""
    created: list[Path] = []
    for folder, _ in folders:
        path = Path(folder).absolute()
        created += [p for p in (path, *path.parents) if not p.exists() and p not in created]
    try:
        yield [check_folder(folder, what=what) for folder, what in folders]
    except BaseException:
        for path in sorted(created, key=lambda p: len(p.parts), reverse=True):    # the deepest first
            with contextlib.suppress(OSError):
                path.rmdir()                                                    # only if still empty
        raise


def _png(path: Path, fig_or_array) -> None:
    buffer = io.BytesIO()
    if isinstance(fig_or_array, np.ndarray):
        require("matplotlib.image", "viz", "igospp explain's figures").imsave(buffer, np.clip(fig_or_array, 0, 1),
                                                                            format="png")
    else:
        fig_or_array.savefig(buffer, format="png", dpi=120)
    write_bytes(path, buffer.getvalue())


def cmd_explain(args: argparse.Namespace) -> int:
    """``igospp explain``: explain each image and write its figures, saliency, mask and record into ``--out``.

    Args:
        args: the parsed command line (:func:`build_parser`).

    Returns:
        0. Every flag, every image file (read in full by :func:`igospp.read_image`) and ``--out``
        are checked before the model is loaded; a bad one raises :class:`CLIError` or
        ``ValueError``/``OSError`` (one line and status 2 from :func:`main`).
    """
    from igospp import viz  # first: the figures need matplotlib (igospp[viz])

    method = checks.choice("--method", args.method, tuple(REGISTRY))
    resolution = 28 if args.resolution is None else checks.positive_int("--resolution", args.resolution)
    options = _method_options(args)
    _refuse_unused(args, [method], f"--method {method}", "--resolution", also_used=("batch_size",))
    model, device = _model_name(args.model), _device(args.device)
    job = Job(method, resolution if REGISTRY[method].takes_resolution else None)
    _refuse_shared_outputs(args.images, job.key, args.out)
    photos = [(path, read_image(path)) for path in args.images]           # fail early on a bad file
    with _output_folders((args.out, "--out")) as (out,):
        bundle = load_model(model, device=device)
        if job.resolution is not None:
            checks.integer("--resolution", job.resolution, low=1, high=min(bundle.input_size))
        target = _target(args.target, bundle)
    provenance = run_provenance()
    for path, image in photos:
        x = bundle.preprocess(image)
        with torch.no_grad():
            probs = bundle.model(x).softmax(dim=1)[0]
        cls = int(probs.argmax()) if target is None else target
        saliency, result, info = run_method(bundle, x, job, [cls], args.protocol, options)
        stem = f"{Path(path).stem}_{job.key}"
        shown = bundle.deprocess(x)[0]
        _png(out / f"{stem}_overlay.png", viz.overlay(shown, saliency[0, 0]))
        heat = viz.matplotlib.colormaps["jet"](viz.normalize(saliency[0, 0], bundle.input_size))[..., :3]
        _png(out / f"{stem}_heatmap.png", heat)
        _png(out / f"{stem}_curves.png", viz.plot_curves(result, 0, title=f"{bundle.class_names[cls]} · {job.key}",
                                                      legacy=True))
        write_npy(out / f"{stem}_saliency.npy", saliency[0, 0].cpu().numpy())
        exp = info["explanation"]
        if exp is not None:
            write_npy(out / f"{stem}_mask.npy", exp.mask[0, 0].cpu().numpy())
        image_record = ImageRecord(path=Path(path), name=Path(path).stem, synset=None, label=None)
        record = make_record(bundle, image_record, job, cls, probs, result, info, images_dir=Path(path).parent,
                             n_images=len(photos), provenance=provenance)
        write_json(out / f"{stem}.json", record)
        print(f"{path}: {record['target']['name']} (p={record['target']['probability']:.2f}) {job.key}: deletion "
              f"{record['deletion_auc']:.3f} insertion {record['insertion_auc']:.3f} in {info['seconds']:.1f} s "
              f"-> {out / stem}_*", flush=True)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``igospp evaluate``: :func:`igospp.studies.benchmark.evaluate` on a folder, then the summary.

    Args:
        args: the parsed command line (:func:`build_parser`).

    Returns:
        0. Every flag, the shard (``--shard auto``'s environment variables) and ``--out`` with its
        ``records/`` folder are checked before the model is loaded.
    """
    shard = _shard(args.shard)
    methods = _methods(args.methods)
    resolutions = _int_list(args.resolutions or "7,28,224", "--resolutions")
    options = _method_options(args)
    n = None if args.n is None else checks.positive_int("--n", args.n)
    batch_images = checks.positive_int("--batch-images", args.batch_images)
    _refuse_unused(args, methods, f"--methods {','.join(methods)}", "--resolutions",
                   also_used=("batch_size",) if n is None else ("batch_size", "seed"))
    if args.images != BUNDLED and not Path(args.images).is_dir():
        raise CLIError(f"--images {args.images!r} is not a folder (or 'bundled' for the bundled photos).")
    model, device = _model_name(args.model), _device(args.device)
    if device == "auto" and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        device = _device(f"cuda:{os.environ['LOCAL_RANK']}")          # one GPU per torchrun process
    with _output_folders((args.out, "--out"), (Path(args.out) / "records", "--out's records folder")):
        bundle = load_model(model, device=device)
        if any(REGISTRY[m].takes_resolution for m in methods):
            for r in resolutions:
                checks.integer("--resolutions", r, low=1, high=min(bundle.input_size))
    run = evaluate(args.images, args.out, model=bundle, n=n, seed=options.seed, methods=methods,
                   resolutions=resolutions, shard=shard, protocol=args.protocol, options=options,
                   batch_images=batch_images, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"{run.describe()} (records under {Path(args.out) / 'records'})", flush=True)
    if shard[1] == 1:
        return _summarize(args.out)
    print(f"shard {shard[0]}/{shard[1]} done; once every shard has finished run: igospp summarize {args.out}")
    return 0


#: ``igospp summarize --paper``'s choices: the paper's table of each name.
PAPER_TABLES = ("table1", "table2", "table3", "table5")


def _summarize(out: str, paper_table: str | None = None, split: float | None = None) -> int:
    if paper_table is not None:
        paper_table = checks.choice("--paper", paper_table, PAPER_TABLES)
    if split is not None:
        if paper_table is None:
            raise CLIError("--split-confidence splits the comparisons of --paper; add --paper table1 (or another "
                           "table) or leave it out.")
        split = checks.probability("--split-confidence", split)
    records = load_records(out)                         # reads only; "no records" before anything else
    check_folder(out, what="summarize's folder")         # summary.md and .csv are written there
    summary = summarize(records, skipped=load_skipped(out))
    md, csv_path = summary.write(out)
    print(summary.to_markdown(), end="")
    print(f"(also in {md} and {csv_path})")
    if paper_table is not None:
        from igospp.studies import paper, reproduction

        table = getattr(paper, paper_table.upper())
        pairs = reproduction.mask_pairs(records) if paper_table == "table5" else None
        text = (f"Paired differences with the paper's {paper_table.replace('table', 'Table ')} (authors' rule, 95 % "
                f"interval, paired t):\n\n" + reproduction.report(records, table, pairs=pairs, split=split))
        path = write_bytes(Path(out) / "comparisons.md", text.encode())
        print(text, end="")
        print(f"(also in {path})")
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    """``igospp summarize DIR``: print the table of the records in ``DIR`` and write ``summary.md``/``.csv`` there.

    Args:
        args: the parsed command line (:func:`build_parser`).

    Returns:
        0. ``DIR`` must hold records and be writable, checked before the table is made.
    """
    return _summarize(args.dir, args.paper, args.split_confidence)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``igospp`` command; its errors raise :class:`CLIError` (one line, status 2)."""
    parser = _Parser(prog="igospp", description="iGOS++ and related saliency methods.")
    parser.add_argument("--version", action="version", version=f"igospp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    model_help = f"model name: {', '.join(MODELS)} or timm:<name> (default efficientnet_lite0, offline)"
    names = ", ".join(REGISTRY)
    device_help = "auto (default: CUDA when available, else the CPU), cpu, cuda, cuda:N or mps, if available here"

    ex = sub.add_parser("explain", help="explain images; write overlay, heatmap, curves, mask and a JSON record")
    ex.add_argument("images", nargs="+", metavar="IMAGE")
    ex.add_argument("--model", default="efficientnet_lite0", help=model_help)
    ex.add_argument("--method", default="igospp", help=f"one of {names} (default igospp)")
    ex.add_argument("--resolution", type=int, default=None,
                    help="mask resolution of the methods that take one (default 28)")
    ex.add_argument("--target", default="auto", help="auto (top-1 class), a class index or a class name")
    ex.add_argument("--device", default="auto", help=device_help)
    ex.add_argument("--out", default="igospp-out", help="output folder (default igospp-out)")
    ex.add_argument("--protocol", default="igospp", choices=list(PROTOCOLS), help="insertion/deletion protocol")
    _add_method_options(ex, seed_help="seed of the optimization noise and of RISE's masks (default 0)")
    ex.set_defaults(func=cmd_explain)

    ev = sub.add_parser("evaluate", help="compare methods on a folder (the paper's Table 1); resumable")
    ev.add_argument("--images", required=True,
                    help="folder of images (flat or one sub-folder per class), or 'bundled' for the bundled photos")
    ev.add_argument("--n", type=int, default=None, help="a seeded random subset of N images (default all)")
    ev.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help=f"comma-separated names among {names} (default: the paper's Table 1, "
                         f"{','.join(DEFAULT_METHODS)})")
    ev.add_argument("--resolutions", default=None,
                    help="comma-separated mask resolutions of the methods that take one (default 7,28,224)")
    ev.add_argument("--model", default="efficientnet_lite0", help=model_help)
    ev.add_argument("--device", default="auto", help=device_help)
    ev.add_argument("--out", default="igospp-eval", help="output folder (default igospp-eval)")
    ev.add_argument("--shard", default="0/1", help="K/N: this process takes the images whose index is K mod N; "
                    "'auto' reads torchrun's RANK/WORLD_SIZE or a Slurm array's task id and count")
    ev.add_argument("--protocol", default="igospp", choices=list(PROTOCOLS))
    _add_method_options(ev, seed_help="seed of the image subset, of the optimization noise and of RISE's masks "
                                      "(default 0)")
    ev.add_argument("--batch-images", type=int, default=1, help="images explained together (faster on a GPU)")
    ev.add_argument("--overwrite", action="store_true",
                    help="recompute and replace the records in --out made with other settings (model, method "
                         "settings, protocol or image); without it such records are an error and nothing is computed")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_evaluate)

    su = sub.add_parser("summarize", help="merge the records of a run (or of its shards, or of igospp explain) "
                        "into summary.md/.csv")
    su.add_argument("dir", metavar="DIR", help="the --out of igospp evaluate or explain; summary.md and "
                    "summary.csv are written there")
    su.add_argument("--paper", default=None, help=f"also test the paper's comparisons of one table "
                    f"({', '.join(PAPER_TABLES)}) as paired differences with verdicts; written to comparisons.md")
    su.add_argument("--split-confidence", type=float, default=None, metavar="P",
                    help="with --paper: also compare on the images whose clean-image probability is above P and "
                         "on the others")
    su.set_defaults(func=cmd_summarize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``igospp`` command.

    Args:
        argv: the arguments after ``igospp`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success; 2 on a user error (a bad flag or value, a missing or
        unreadable file, an unusable output folder, unavailable weights or device, any
        :class:`OSError`), reported as one line on stderr, before any work where it can be;
        130 when interrupted.

    Example:
        >>> main(["explain", "photo.png", "--method", "ig", "--ig-steps", "5"])
        2
    """
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (CLIError, ValueError, TypeError, OSError, WeightsUnavailableError) as err:
        line = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
        print(f"igospp: error: {line or type(err).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("igospp: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
