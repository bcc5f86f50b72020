"""Small helpers the book's chapters share: checked parameters, reproducible set-up, images from a
parameter, glued numbers.

Chapters keep their knobs in a papermill ``parameters`` cell and call these helpers, so the
same notebook runs the tiny CI profile, the CPU book profile and the GPU full profile. The cell
right after the parameters cell (tagged ``check-parameters``) hands every parameter to
:func:`check_parameters`, which checks each one by name against :data:`RULES` and
:data:`RELATIONS`, so a bad value fails there, naming the parameter, before any work.
"""

from __future__ import annotations

import ast
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igospp import checks
from igospp.images import SAMPLE_IMAGES, image_folder, sample_images
from igospp.metrics import PROTOCOLS
from igospp.models import MODELS, ModelBundle, resolve_device

__all__ = ["setup", "load_images", "glue", "Stopwatch", "table", "machine", "book_path",
           "check_parameters", "ParameterError", "Rule", "Relation", "RULES", "RELATIONS", "ROOT"]

#: The repository's root (this package lives in ``igospp_src/igospp_book``): the committed results
#: of the at-scale runs are under ``ROOT / "book" / "results"``.
ROOT = Path(__file__).resolve().parents[2]


def book_path(value: str) -> Path:
    """A path parameter: as given when absolute, else relative to the repository's root (:data:`ROOT`).

    Chapters run from ``book/chapters`` (papermill) and their tiny copies from ``tests/notebooks``
    (nbval); a path relative to the root means the same folder in both.

    Example:
        >>> book_path("book/results") == ROOT / "book" / "results"
        True
    """
    path = Path(value).expanduser()
    return path if path.is_absolute() else ROOT / path


def setup(seed: int = 0, threads: int | None = 2, device: str = "auto") -> torch.device:
    """Seed every random source, fix the thread count and pick the device.

    Args:
        seed: seeds Python's, NumPy's and PyTorch's global generators (the library itself
            draws only from explicit ``torch.Generator`` objects).
        threads: CPU threads for PyTorch (fixed so runs are reproducible); ``None`` leaves it.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...

    Returns:
        The device to use.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    return resolve_device(device)


def load_images(bundle: ModelBundle, images: str = "bundled", n: int = 3, names: list[str] | None = None,
                seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """A normalized batch for ``bundle`` from a chapter's ``images`` parameter.

    Args:
        bundle: the model bundle (its preprocessing is used).
        images: ``"bundled"`` (the photos of :func:`igospp.sample_images`) or a folder path
            (see :func:`igospp.image_folder`, e.g. ImageNet validation images).
        n: how many images, from 1 to the number available: the bundled photos (or ``names``),
            or the readable images of the folder. Default 3.
        names: for ``"bundled"``, which photos (default: all of :data:`igospp.SAMPLE_IMAGES`, in
            that order); the first ``n`` are used.
        seed: seed of the subset drawn from a folder. Default 0.

    Returns:
        ``(x (n, C, H, W), names)``.

    Raises:
        ValueError: ``n`` is not a positive integer, or more images than there are.

    Example:
        >>> import igospp
        >>> from igospp_book import load_images
        >>> bundle = igospp.load_model("efficientnet_lite0", device="cpu")
        >>> x, names = load_images(bundle, "bundled", 2)
        >>> tuple(x.shape), names
        ((2, 3, 224, 224), ['chelsea', 'coffee'])
        >>> load_images(bundle, "bundled", 11)
        Traceback (most recent call last):
        ...
        ValueError: n must be at most 10, the number of bundled photos (chelsea, ...), got 11.
    """
    n = checks.positive_int("n", n)
    if images == "bundled":
        available = list(SAMPLE_IMAGES) if names is None else list(names)
        if n > len(available):
            raise ValueError(f"n must be at most {len(available)}, the number of bundled photos "
                             f"({', '.join(available)}), got {n}.")
        photos = sample_images(available[:n])
        return bundle.preprocess(list(photos.values())), list(photos)
    folder = image_folder(images, n=n, seed=seed)
    if len(folder) < n:
        raise ValueError(f"n must be at most {len(folder)}, the number of readable images under "
                         f"{str(images)!r}, got {n}.")
    return bundle.preprocess([rec.load() for rec in folder]), [rec.name for rec in folder]


def glue(name: str, value: Any, digits: int | None = 3) -> None:
    """Glue ``value`` (rounded to ``digits``) for ``{glue:text}`name``` in the chapter's prose.

    Numbers are rounded before gluing so the stored text is stable. Returns ``None`` so that a
    call on a cell's last line displays nothing, whichever front end runs the notebook.
    """
    from myst_nb import glue as _glue

    if digits is not None and isinstance(value, (float, np.floating)):
        value = round(float(value), digits)
    elif isinstance(value, torch.Tensor) and value.numel() == 1:
        value = round(float(value), digits) if digits is not None else float(value)
    _glue(name, value, display=False)


class Stopwatch:
    """Wall-clock time since creation: ``Stopwatch().seconds``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def table(rows: list[list[Any]], header: list[str], digits: int = 3) -> Any:
    """A table for a notebook cell's output: ``IPython.display.Markdown`` holding a pipe table.

    The book renders Markdown outputs as MyST, so the table becomes an HTML table; floats are
    rounded to ``digits`` decimals, ``None`` shows as "--".

    Example:
        >>> from igospp_book import table
        >>> print(table([["iGOS++", 0.12345, None]], ["method", "deletion", "paper"]).data)
        | method | deletion | paper |
        |---|---|---|
        | iGOS++ | 0.123 | -- |
        <BLANKLINE>
    """
    from IPython.display import Markdown

    def cell(value: Any) -> str:
        if value is None:
            return "--"
        if isinstance(value, (float, np.floating)):
            return f"{float(value):.{digits}f}"
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return f"{float(value):.{digits}f}"
        return str(value).replace("|", "\\|")

    if any(len(r) != len(header) for r in rows):
        raise ValueError(f"every row needs {len(header)} cells, one per header entry {header}.")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return Markdown("\n".join(lines) + "\n")


def machine(device: torch.device | str = "cpu") -> str:
    """What a chapter ran on, for glued run times: the GPU's name, or the CPU's with its thread count."""
    from igospp.provenance import versions

    info = versions()
    if torch.device(device).type == "cuda":
        return info["cuda"]
    return f"{info['cpu']}, {info['cpu_threads']} threads"


# --- chapter parameters ------------------------------------------------------------------------------------


class ParameterError(ValueError):
    """A chapter parameter with a bad value, or a name that is not a parameter of the chapter.

    A ``ValueError``, raised by :func:`check_parameters`:

    >>> from igospp_book import ParameterError
    >>> issubclass(ParameterError, ValueError)
    True
    """


@dataclass(frozen=True)
class Rule:
    """How :func:`check_parameters` checks one chapter parameter, in every chapter that has it.

    Attributes:
        what: a valid value, in words (``"a positive integer"``).
        check: ``check(name, value)`` raises ``ValueError`` naming ``name`` when ``value`` is bad.
        path: ``"folder"`` or ``"file"`` when a non-empty value names one that must exist (relative
            paths start from the chapter's working directory, ``book/chapters`` under nbtool),
            ``"output"`` for a folder that need not exist yet, ``None`` for a value that is no path.

    Example:
        >>> from igospp_book import RULES
        >>> RULES["n_images"].what
        'a positive integer'
        >>> RULES["n_images"].check("n_images", 0)
        Traceback (most recent call last):
        ...
        ValueError: n_images must be a positive integer, got 0.
    """

    what: str
    check: Callable[[str, Any], Any]
    path: str | None = None


@dataclass(frozen=True)
class Relation:
    """A rule on several parameters, checked when a chapter has all of ``names`` and each passed its :class:`Rule`.

    Attributes:
        names: the parameters it reads; the first is the one a failure names.
        what: the rule, in words.
        check: ``check(values)`` returns ``None`` when the values agree, else the problem: a sentence
            that starts with ``names[0]``.

    Example:
        >>> from igospp_book import RELATIONS
        >>> rule = next(r for r in RELATIONS if r.names == ("figure_images", "n_images"))
        >>> rule.check({"figure_images": 4, "n_images": 2})
        'figure_images must be at most n_images (2), got 4'
    """

    names: tuple[str, ...]
    what: str
    check: Callable[[Mapping[str, Any]], str | None]


def _strip(message: str) -> str:
    return message[:-1] if message.endswith(".") else message


def _integer(low: int = 1, high: int | None = None) -> Rule:
    if low == 1 and high is None:
        what = "a positive integer"
    else:
        what = f"an integer >= {low}" + ("" if high is None else f" and <= {high}")
    return Rule(what, lambda name, value: checks.integer(name, value, low=low, high=high))


def _number(what: str, **bounds: Any) -> Rule:
    return Rule(what, lambda name, value: checks.number(name, value, **bounds))


def _fraction() -> Rule:
    """A share of the image: ``0 < value <= 1``."""
    return _number("a number > 0 and <= 1", low=0.0, strict=True, high=1.0, high_strict=False)


def _rate() -> Rule:
    return _number("a number >= 0 and <= 1", low=0.0, high=1.0, high_strict=False)


def _choice(options: Sequence[Any]) -> Rule:
    options = tuple(options)
    return Rule(f"one of {options}", lambda name, value: checks.choice(name, value, options))


def _flag() -> Rule:
    return Rule("True or False", checks.flag)


def _optional(rule: Rule) -> Rule:
    def check(name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return rule.check(name, value)
        except ValueError:
            raise ValueError(f"{name} must be {rule.what} or None, got {value!r}.") from None

    return Rule(f"{rule.what} or None", check, rule.path)


def _list_of(item: Rule, items: str) -> Rule:
    """A non-empty list (or tuple) of distinct values, each passing ``item`` (named ``name[i]``)."""

    def check(name: str, value: Any) -> list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list of {items}, got {value!r}.")
        clean = [item.check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        seen = [repr(c) for c in clean]
        repeated = sorted({v for v in seen if seen.count(v) > 1})
        if repeated:
            raise ValueError(f"{name} must not repeat a value, got {value!r} (repeated: {', '.join(repeated)}).")
        return clean

    return Rule(f"a non-empty list of distinct {items}", check)


def _pair() -> Rule:
    """``[l1, l2]``: two non-negative numbers (the regularization weights of chapter 3's grid)."""

    def check(name: str, value: Any) -> tuple[float, float]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{name} must be a pair [l1, l2] of non-negative numbers, got {value!r}.")
        return (checks.number(f"{name}[0]", value[0], low=0.0), checks.number(f"{name}[1]", value[1], low=0.0))

    return Rule("a pair [l1, l2] of non-negative numbers", check)


def _text(name: str, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return value


def _where() -> str:
    return f"relative paths start from {str(Path.cwd())!r}"


def _existing(kind: str, special: Sequence[str] = ("",), from_root: bool = False) -> Rule:
    """A folder (``kind="folder"``) or file that must exist, unless the value is one of ``special``;
    ``from_root``: a relative path is relative to the repository's root (:func:`book_path`)."""
    shown = "".join(f"{s!r} or " for s in special)
    what = f"{shown}the path of an existing {kind}" + (" (relative: to the repository's root)" if from_root else "")

    def check(name: str, value: Any) -> str:
        value = _text(name, value, what)
        if value in special:
            return value
        if not value:
            raise ValueError(f"{name} must be {what}, got ''; {_where()}.")
        path = book_path(value) if from_root else Path(value).expanduser()
        if not (path.is_dir() if kind == "folder" else path.is_file()):
            why = "is not a folder" if kind == "folder" and path.exists() else \
                "is a folder" if path.is_dir() else "does not exist"
            raise ValueError(f"{name} must be {what}, got {value!r}, which {why}; {_where()}.")
        return value

    return Rule(what, check, kind)


def _output() -> Rule:
    what = "'' (a fresh temporary folder) or a folder path (created when missing)"

    def check(name: str, value: Any) -> str:
        value = _text(name, value, what)
        if value and Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
            raise ValueError(f"{name} must be {what}, got {value!r}, which is a file; {_where()}.")
        return value

    return Rule(what, check, "output")


def _device() -> Rule:
    what = "'auto', 'cpu', 'cuda' or 'cuda:N'"

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError(f"{name} must be {what}, got {value!r}.")
        return value

    return Rule(what, check)


def _model() -> Rule:
    what = f"one of {MODELS} or 'timm:<name>'"

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not (value in MODELS or re.fullmatch(r"timm:\S+", value)):
            raise ValueError(f"{name} must be {what}, got {value!r}.")
        return value

    return Rule(what, check)


#: The seeds a chapter may use: ``setup`` hands ``seed`` to NumPy, which takes 0 to 2**32 - 1.
_SEED = _integer(0, 2**32 - 1)
_COUNT = _integer()

#: Every parameter of every chapter (the names its ``parameters`` cell assigns), by name. A name means
#: the same thing in every chapter that has it; tests/test_profiles.py checks that no chapter has a
#: parameter without a rule here.
RULES: dict[str, Rule] = {
    # what runs, on which images (chapters 1 to 10)
    "device": _device(),
    "model": _model(),
    "images": _existing("folder", special=("bundled",)),
    "n_images": _COUNT,
    "image_index": _integer(0),
    "figure_images": _COUNT,
    "failure_image": _choice(("", *SAMPLE_IMAGES)),
    "seed": _SEED,
    "threads": _optional(_COUNT),
    # masks and their optimization
    "resolution": _COUNT,
    "resolutions": _list_of(_COUNT, "positive integers"),
    "ablation_resolutions": _list_of(_COUNT, "positive integers"),
    "mask_resolution": _COUNT,
    "iterations": _COUNT,
    "ig_steps": _COUNT,
    "mask_iterations": _COUNT,
    "adversarial_iterations": _COUNT,
    "label_iterations": _COUNT,
    "label_ig_steps": _COUNT,
    "explorer_iterations": _COUNT,
    "explorer_ig_steps": _COUNT,
    "lambda_grid": _list_of(_pair(), "pairs [l1, l2] of non-negative numbers"),
    "lambda2_values": _list_of(_number("a number >= 0", low=0.0), "non-negative numbers"),
    "explorer_lambda2": _list_of(_number("a number >= 0", low=0.0), "non-negative numbers"),
    "explorer_sigma": _list_of(_number("a number > 0", low=0.0, strict=True), "positive numbers"),
    "interactive": _flag(),
    "fixed_steps": _list_of(_number("a number > 0", low=0.0, strict=True), "positive numbers"),
    "warm_start": _number("a number >= 1", low=1.0),        # Config.ls_warm_start
    "trial_steps": _COUNT,                                  # Config.ls_ig_steps
    "insert_fraction": _fraction(),
    # metrics and the benchmark
    "rise_masks": _COUNT,
    "protocol": _choice(tuple(PROTOCOLS)),
    "batch_images": _COUNT,
    "out": _output(),
    "full_results": _existing("folder"),
    "at_scale": _existing("folder", special=(), from_root=True),
    # sanity checks (chapter 9)
    "randomization_steps": _COUNT,
    "dataset": _choice(("digits", "fashion_mnist")),
    "data_dir": _existing("folder"),
    "image_size": _integer(8),
    "train_images": _COUNT,
    "epochs": _COUNT,
    "n_explained": _COUNT,
    # adversarial images (chapter 10)
    "target_class": _integer(0),
    "epsilon": _number("a number > 0 and <= 1 (pixel units)", low=0.0, strict=True, high=1.0, high_strict=False),
    "attack_steps": _COUNT,
    # the COVID-19 case study (chapter 11)
    "train_split_file": _existing("file"),
    "test_split_file": _existing("file"),
    "n_train": _integer(0),
    "n_test": _integer(0),
    "covid_text_rate": _rate(),
    "other_text_rate": _rate(),
    "test_text_rate": _rate(),
    "architecture": _choice(("small_cnn", "resnet18")),
    "width": _COUNT,
    "lr": _number("a number > 0", low=0.0, strict=True),
    "batch_size": _COUNT,
    "seeds": _list_of(_SEED, "integers >= 0 and <= 4294967295"),
    "n_mass": _COUNT,
    "insert_ratio": _fraction(),
    "delete_ratio": _fraction(),
    "confidence": _number("a number > 0 and < 1", low=0.0, strict=True, high=1.0),
    "detector_side": _COUNT,
    "inpaint_radius": _COUNT,
    "max_box_fraction": _optional(_fraction()),
}

#: Input side of the models ``load_model`` builds in (``MODELS``); a ``timm:`` model says its own.
_MODEL_SIDE = 224
#: ImageNet-1k classes of the built-in models.
_MODEL_CLASSES = 1000
#: Images of each chapter-9 data set (scikit-learn's digits; Fashion-MNIST's training split).
_DATASET_IMAGES = {"digits": 1797, "fashion_mnist": 60000}


def _at_most(name: str, value: int, limit: int, why: str) -> str | None:
    return None if value <= limit else f"{name} must be at most {limit}{why}, got {value!r}"


def _at_most_ref(v: Mapping[str, Any], name: str, other: str) -> str | None:
    return None if v[name] <= v[other] else f"{name} must be at most {other} ({v[other]!r}), got {v[name]!r}"


def _bundled(name: str, index: bool) -> Relation:
    def check(v: Mapping[str, Any]) -> str | None:
        if v["images"] != "bundled":
            return None
        limit = len(SAMPLE_IMAGES) - 1 if index else len(SAMPLE_IMAGES)
        return _at_most(name, v[name], limit, f" with images = 'bundled' ({len(SAMPLE_IMAGES)} photos: "
                        f"{', '.join(SAMPLE_IMAGES)}; point images at a folder for more)")

    what = f"at most {len(SAMPLE_IMAGES)} bundled photos" + (" (index from 0)" if index else "")
    return Relation((name, "images"), what, check)


def _side(name: str) -> Relation:
    def check(v: Mapping[str, Any]) -> str | None:
        if v["model"] not in MODELS:
            return None
        values = v[name] if isinstance(v[name], (list, tuple)) else [v[name]]
        big = [r for r in values if r > _MODEL_SIDE]
        return None if not big else (f"{name} must be at most {_MODEL_SIDE}, the input side of model "
                                     f"{v['model']!r}, got {v[name]!r}")

    return Relation((name, "model"), f"mask sides at most the model's input side ({_MODEL_SIDE})", check)


def _needs_data_dir(name: str, bad: Callable[[Any], bool], why: str) -> Relation:
    def check(v: Mapping[str, Any]) -> str | None:
        return f"{name} {why}, got {v[name]!r} with data_dir = ''" if not v["data_dir"] and bad(v[name]) else None

    return Relation((name, "data_dir"), f"{name} {why}", check)


def _dataset_dir(v: Mapping[str, Any]) -> str | None:
    if v["dataset"] == "fashion_mnist" and not v["data_dir"]:
        return "data_dir must name torchvision's Fashion-MNIST folder with dataset = 'fashion_mnist', got ''"
    if v["dataset"] != "fashion_mnist" and v["data_dir"]:
        return (f"data_dir must be '' with dataset = {v['dataset']!r}, which does not read it, got "
                f"{v['data_dir']!r}; set dataset = 'fashion_mnist' to use it")
    return None


def _train_images(v: Mapping[str, Any]) -> str | None:
    size = _DATASET_IMAGES[v["dataset"]]
    return _at_most("train_images", v["train_images"], size - 1,
                    f" with dataset = {v['dataset']!r} ({size} images; the rest are held out)")


def _synthetic_size(v: Mapping[str, Any]) -> str | None:
    if v["data_dir"] or v["image_size"] >= 32:
        return None
    return f"image_size must be at least 32 for the synthetic films (data_dir = ''), got {v['image_size']!r}"


#: Rules on several parameters of one chapter (each applies where a chapter has all its names).
RELATIONS: tuple[Relation, ...] = (
    _bundled("n_images", index=False),
    _bundled("image_index", index=True),
    Relation(("figure_images", "n_images"), "figure_images <= n_images",
             lambda v: _at_most_ref(v, "figure_images", "n_images")),
    _side("resolution"),
    _side("resolutions"),
    _side("ablation_resolutions"),
    Relation(("target_class", "model"), f"target_class < {_MODEL_CLASSES} for the built-in models",
             lambda v: None if v["model"] not in MODELS else _at_most(
                 "target_class", v["target_class"], _MODEL_CLASSES - 1,
                 f" (model {v['model']!r} has {_MODEL_CLASSES} ImageNet classes, numbered from 0)")),
    Relation(("mask_resolution", "image_size"), "mask_resolution <= image_size",
             lambda v: _at_most_ref(v, "mask_resolution", "image_size")),
    Relation(("n_explained", "train_images"), "n_explained <= train_images",
             lambda v: _at_most_ref(v, "n_explained", "train_images")),
    Relation(("data_dir", "dataset"), "data_dir is set exactly when dataset = 'fashion_mnist'", _dataset_dir),
    Relation(("train_images", "dataset"), "train_images < the data set's images", _train_images),
    _needs_data_dir("n_train", lambda n: n == 0, "must be a positive integer for the synthetic films (0, every "
                    "listed image, needs COVIDx)"),
    _needs_data_dir("n_test", lambda n: n == 0, "must be a positive integer for the synthetic films (0, every "
                    "listed image, needs COVIDx)"),
    _needs_data_dir("train_split_file", bool, "must be '' for the synthetic films (split files need a COVIDx "
                    "data_dir)"),
    _needs_data_dir("test_split_file", bool, "must be '' for the synthetic films (split files need a COVIDx "
                    "data_dir)"),
    Relation(("image_size", "data_dir", "covid_text_rate"), "image_size >= 32 for the synthetic films",
             _synthetic_size),
)


def _papermill_names(history: Iterable[Any]) -> list[str]:
    """Names assigned by papermill's injected cell (its source starts with ``# Parameters``) among ``history``."""
    names: list[str] = []
    for source in history:
        if not isinstance(source, str) or not source.startswith("# Parameters"):
            continue
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        names += [t.id for node in body if isinstance(node, ast.Assign) for t in node.targets
                  if isinstance(t, ast.Name)]
    return list(dict.fromkeys(names))


def check_parameters(values: Mapping[str, Any], rules: Mapping[str, Rule] | None = None, *,
                     relations: Sequence[Relation] | None = None, history: Iterable[Any] | None = None) -> None:
    """Check a chapter's parameters by name, before any work; raise one error that lists every bad one.

    Each chapter calls it in the cell right after its ``parameters`` cell (tagged ``check-parameters``)
    with exactly the names that cell assigns, whatever papermill injected in between.

    Args:
        values: ``{name: value}`` for every parameter of the chapter (and only those).
        rules: the rule of each name. Default :data:`RULES`. A name without a rule is an error (a
            parameter added to a chapter needs a rule).
        relations: rules on several parameters, each checked when ``values`` has all its names and
            they passed their own rules. Default :data:`RELATIONS`.
        history: the sources of the cells run so far (IPython's ``In``), or ``None`` (default). A name
            that papermill's injected cell (``# Parameters``) assigns and that is not in ``values`` was
            given with ``papermill -p`` or ``-f`` but is no parameter of this chapter (a typo): an error.

    Returns:
        ``None`` (so a call on a cell's last line displays nothing).

    Raises:
        ParameterError: (a ``ValueError``) naming each bad parameter, what was wrong and where to set it.

    Example:
        >>> from igospp_book import check_parameters
        >>> check_parameters({"n_images": 2, "images": "bundled", "seed": 0})
        >>> check_parameters({"n_images": -1, "images": "bundled"})
        Traceback (most recent call last):
        ...
        igospp_book.ParameterError: n_images must be a positive integer, got -1 (chapter parameter; set it in ...).
        >>> check_parameters({"n_images": 11, "images": "bundled"})
        Traceback (most recent call last):
        ...
        igospp_book.ParameterError: n_images must be at most 10 with images = 'bundled' (10 photos: ...), got 11 (...).
        >>> check_parameters({"n_images": 2}, history=["# Parameters\\nn_image = 3\\n"])
        Traceback (most recent call last):
        ...
        igospp_book.ParameterError: n_image is not a parameter of this chapter, but papermill set it (...); ...
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping of parameter names to values, got {type(values).__name__}.")
    rules = RULES if rules is None else rules
    relations = RELATIONS if relations is None else relations
    hint = "chapter parameter; set it in the parameters cell or with papermill -p {} ..."
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        if name not in rules:
            problems.append((name, f"{name} has no rule in igospp_book.RULES (every chapter parameter needs "
                                   "one: add it there)"))
            continue
        try:
            rules[name].check(name, value)
        except ValueError as err:
            problems.append((name, f"{_strip(str(err))} ({hint.format(name)})"))
    for name in _papermill_names(history or ()):
        if name not in values:
            problems.append((name, f"{name} is not a parameter of this chapter, but papermill set it "
                                   f"(papermill -p {name} ... or a -f file); its parameters are "
                                   f"{', '.join(values)}"))
    bad = {name for name, _ in problems}
    for relation in relations:
        if all(n in values for n in relation.names) and not bad.intersection(relation.names):
            found = relation.check(values)
            if found:
                problems.append((relation.names[0], f"{found} ({hint.format(relation.names[0])})"))
    if len(problems) == 1:
        raise ParameterError(problems[0][1] + ".")
    if problems:
        raise ParameterError(f"{len(problems)} chapter parameters are wrong:\n"
                             + "\n".join(f"- {message}." for _, message in problems))
