"""Figures in the paper's style: overlays, masks, insertion/deletion curves and method montages.

Every function returns a :class:`matplotlib.figure.Figure` (or draws on the axes you pass)
built without pyplot, so nothing accumulates in a global state; in a notebook the figure
displays itself, in a script call ``fig.savefig(...)``.

Saliency is **high = salient** everywhere; images are ``(H, W, 3)`` or ``(H, W)`` arrays in
[0, 1] or ``uint8`` (grey images are shown in grey), e.g. ``bundle.deprocess(x)[0]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from igospp._optional import require
from igospp.composition import upsample

if TYPE_CHECKING:
    from igospp.metrics import CausalMetricResult

matplotlib = require("matplotlib", "viz", "igospp.viz (the figures)")
Axes = require("matplotlib.axes", "viz", "igospp.viz (the figures)").Axes
Figure = require("matplotlib.figure", "viz", "igospp.viz (the figures)").Figure

__all__ = ["as_rgb", "normalize", "overlay", "plot_overlay", "plot_mask", "plot_curves", "montage"]

#: Width of a figure that fills the book's text column, in inches.
BOOK_WIDTH = 7.5


def as_rgb(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` arrays (or ``(C, H, W)`` tensors) to floats ``(H, W, 3)`` in [0, 1]."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float()
        image = (image.movedim(0, -1) if image.dim() == 3 and image.shape[0] in (1, 3) else image).numpy()
    arr = np.asarray(image)
    arr = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3); got shape {arr.shape}.")
    return np.clip(arr, 0.0, 1.0)


def normalize(saliency: np.ndarray | torch.Tensor, size: tuple[int, int] | None = None) -> np.ndarray:
    """One saliency map ``(h, w)`` (or ``(1, h, w)``, ``(1, 1, h, w)``), upsampled bilinearly to
    ``size`` (aligned corners) and min-max scaled to [0, 1]."""
    s = torch.as_tensor(np.asarray(saliency.detach().cpu() if isinstance(saliency, torch.Tensor) else saliency),
                        dtype=torch.float64)
    while s.dim() > 2 and s.shape[0] == 1:
        s = s[0]
    if s.dim() != 2:
        raise ValueError(f"saliency must be one map (h, w); got shape {tuple(s.shape)}.")
    if size is not None:
        s = upsample(s[None, None], size)[0, 0]
    low, high = s.min(), s.max()
    s = (s - low) / (high - low) if high > low else torch.zeros_like(s)
    return s.numpy()


def overlay(image: np.ndarray | torch.Tensor, saliency: np.ndarray | torch.Tensor, gamma: float = 0.8,
            cmap: str = "jet") -> np.ndarray:
    """The authors' overlay: salient regions colored (red), the rest shows the photo.

    ``out = (1 - s)^gamma * image + (1 - (1 - s)^gamma) * cmap(s)`` with ``s`` the saliency
    upsampled to the image and min-max normalized (the official heatmap is JET of ``1 - mask``
    and the overlay weight ``mask^0.8``).

    Returns:
        ``(H, W, 3)`` float array in [0, 1].

    Example:
        >>> import numpy as np, igospp
        >>> img = np.zeros((8, 8, 3))
        >>> sal = np.zeros((2, 2)); sal[0, 0] = 1
        >>> out = igospp.viz.overlay(img, sal)
        >>> out.shape, out[0, 0].round(2).tolist()               # the most salient pixel is dark red
        ((8, 8, 3), [0.5, 0.0, 0.0])
    """
    rgb = as_rgb(image)
    s = normalize(saliency, rgb.shape[:2])
    heat = matplotlib.colormaps[cmap](s)[..., :3]
    weight = ((1 - s) ** gamma)[..., None]
    return weight * rgb + (1 - weight) * heat


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def plot_overlay(image: np.ndarray | torch.Tensor, saliency: np.ndarray | torch.Tensor, title: str | None = None,
                 ax: Axes | None = None) -> Figure:
    """The photo with the saliency overlaid (:func:`overlay`)."""
    fig, ax = _axes(ax, (3.0, 3.0))
    ax.imshow(overlay(image, saliency))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def plot_mask(saliency: np.ndarray | torch.Tensor, title: str | None = None, ax: Axes | None = None,
              colorbar: bool = True) -> Figure:
    """The saliency map alone, at its own resolution (cells shown as blocks), high = red."""
    fig, ax = _axes(ax, (3.4, 3.0))
    im = ax.imshow(normalize(saliency), cmap="jet", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def plot_curves(result: CausalMetricResult, index: int = 0, ax: Axes | None = None, title: str | None = None,
                legacy: bool = False) -> Figure:
    """Deletion (red) and insertion (blue) curves of one image, with their areas in the legend.

    Args:
        result: from :func:`igospp.metrics.insertion_deletion`.
        index: which image of the batch.
        legacy: also print the authors' logged scores when the protocol has them.
    """
    fig, ax = _axes(ax, (3.6, 3.0))
    x = result.fractions.numpy()
    dele = result.deletion[index].detach().cpu().numpy()
    ins = result.insertion[index].detach().cpu().numpy()
    d_auc, i_auc = float(result.deletion_auc[index]), float(result.insertion_auc[index])
    d_label, i_label = f"deletion  AUC {d_auc:.3f}", f"insertion AUC {i_auc:.3f}"
    if legacy and result.legacy_deletion_auc is not None:
        d_label += f" (logged {float(result.legacy_deletion_auc[index]):.3f})"
        i_label += f" (logged {float(result.legacy_insertion_auc[index]):.3f})"
    ax.plot(x, dele, color="tab:red", lw=1.5, label=d_label)
    ax.fill_between(x, dele, color="tab:red", alpha=0.25)
    ax.plot(x, ins, color="tab:blue", lw=1.5, label=i_label)
    ax.fill_between(x, ins, color="tab:blue", alpha=0.15)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, max(1.0, float(np.max([dele.max(), ins.max()]))) + 0.02)
    ax.set_xlabel("fraction of the image deleted / inserted", fontsize=8)
    ax.set_ylabel("score of the class", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=1, frameon=False)
    ax.set_title(title or f"protocol: {result.protocol['name']}", fontsize=9)
    return fig


def montage(image: np.ndarray | torch.Tensor, saliencies: Mapping[str, Mapping[str, np.ndarray | torch.Tensor]],
            column_order: Sequence[str] | None = None, width: float = BOOK_WIDTH,
            scores: Mapping[str, Mapping[str, str]] | None = None) -> Figure:
    """A grid of overlays: one row per method, one column per resolution (or any grouping).

    Args:
        image: the photo.
        saliencies: ``{row label: {column label: saliency}}``; missing cells stay empty.
        column_order: column labels in order; default the order of first appearance.
        width: figure width in inches (default: the book's text width).
        scores: optional ``{row: {column: text}}`` printed under each panel (e.g. AUCs).

    Example:
        >>> import numpy as np, igospp
        >>> fig = igospp.viz.montage(np.zeros((8, 8, 3)), {"iGOS++": {"7": np.eye(7), "28": np.eye(28)},
        ...                                                "Grad-CAM": {"7": np.eye(7)}})
        >>> len(fig.axes)
        4
    """
    rows = list(saliencies)
    cols = list(column_order) if column_order else list(dict.fromkeys(c for r in rows for c in saliencies[r]))
    panel = width / len(cols)
    fig = Figure(figsize=(width, panel * len(rows) * 1.08), layout="constrained")
    grid = fig.subplots(len(rows), len(cols), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            ax = grid[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col in saliencies[row]:
                ax.imshow(overlay(image, saliencies[row][col]))
                if scores and col in scores.get(row, {}):
                    ax.set_xlabel(scores[row][col], fontsize=7)
            if i == 0:
                ax.set_title(col, fontsize=9)
            if j == 0:
                ax.set_ylabel(row, fontsize=9)
    return fig
