"""Small helpers the book's chapters share: reproducible set-up, images from a parameter, glued numbers.

Chapters keep their knobs in a papermill ``parameters`` cell and call these helpers, so the
same notebook runs the tiny CI profile, the CPU book profile and the GPU full profile.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import torch

from .data import image_folder, sample_images
from .models import ModelBundle, resolve_device
from .stats import PairedDifference

__all__ = ["setup", "load_images", "glue", "Stopwatch", "table", "machine", "verdict"]


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
    """A normalised batch for ``bundle`` from a chapter's ``images`` parameter.

    Args:
        bundle: the model bundle (its preprocessing is used).
        images: ``"bundled"`` (the photos of :func:`igospp.sample_images`) or a folder path
            (see :func:`igospp.image_folder`, e.g. ImageNet validation images).
        n: how many images.
        names: for ``"bundled"``, which photos (default: the first ``n``).
        seed: seed of the subset drawn from a folder.

    Returns:
        ``(x (n, C, H, W), names)``.
    """
    if images == "bundled":
        photos = sample_images(names if names is not None else None)
        chosen = list(photos.items())[:n]
        return bundle.preprocess([img for _, img in chosen]), [name for name, _ in chosen]
    folder = image_folder(images, n=n, seed=seed)
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
        >>> from igospp.book import table
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
    from .evaluation import versions

    info = versions()
    if torch.device(device).type == "cuda":
        return info["cuda"]
    return f"{info['cpu']}, {info['cpu_threads']} threads"


def verdict(diff: PairedDifference, paper_sign: int) -> str:
    """Whether a paired difference reproduces the paper's direction: ``"reproduced"``, ``"contradicted"``
    (the interval excludes zero on the other side) or ``"inconclusive"`` (it includes zero).

    Args:
        diff: ``a - b`` over the same images (:func:`igospp.stats.paired_difference`).
        paper_sign: ``+1`` when the paper finds ``a > b``, ``-1`` when it finds ``a < b``.

    Example:
        >>> from igospp.book import verdict
        >>> from igospp.stats import paired_difference
        >>> verdict(paired_difference([0.7, 0.8, 0.75], [0.5, 0.6, 0.52]), +1)
        'reproduced'
    """
    if paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be +1 or -1, got {paper_sign!r}.")
    if not diff.excludes_zero:
        return "inconclusive"
    return "reproduced" if (diff.mean > 0) == (paper_sign > 0) else "contradicted"
