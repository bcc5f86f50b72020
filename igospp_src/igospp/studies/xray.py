"""Synthetic chest radiographs with a planted shortcut: the offline stand-in for COVIDx.

The paper's COVID-19 study (Table 4, Figs. 5, 7, 11, 12) found with iGOS++ that a classifier
trained on COVIDx had learned characters printed on the films (the letter "R") as evidence of
COVID-19. COVIDx cannot be downloaded here, so :func:`synthetic_xrays` draws radiographs that
reproduce the *mechanism*, not the paper's numbers:

* anatomy: a thorax, two dark lung fields, bright ribs, spine, clavicles and heart, soft-tissue
  texture and noise, with the pose, size and exposure varied per image;
* disease: pneumonia as one or two dense, focal consolidations (mostly one lung, lower zones);
  COVID-19 as several faint, diffuse ground-glass patches at the periphery of both lungs. Severity
  varies and the patterns overlap (mild cases of either, a little haze on some normal films), so
  the task is not trivial;
* the shortcut: printed markers (the letter "R" or short words such as "PA" or "PORTABLE", white,
  in several DejaVu fonts, sizes and corners). In the ``"train"`` split they appear on most
  COVID-19 films and few others; in the ``"test"`` split they appear independently of the class.

Every random draw comes from the ``torch.Generator`` passed in, so a seed fixes the data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from igospp import checks
from igospp._optional import require
from igospp.images import read_image

__all__ = ["CLASSES", "COVID", "MARKERS", "XraySet", "synthetic_xrays", "render_xray", "marker_fonts", "covidx"]

CLASSES: tuple[str, ...] = ("normal", "pneumonia", "COVID-19")
COVID = 2
#: Printed markers; the paper's example is the single letter "R".
MARKERS: tuple[str, ...] = ("R", "R", "R", "L", "PA", "AP", "PORTABLE", "SUPINE")


@dataclass
class XraySet:
    """Images (N, 1, S, S) in [0, 1], labels (N,), whether each carries a marker, and the markers' boxes.

    ``boxes[i]`` lists ``(x0, y0, x1, y1)`` pixel boxes of the text printed on image ``i``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    has_text: torch.Tensor
    boxes: list[list[tuple[int, int, int, int]]]

    def __len__(self) -> int:
        return self.labels.numel()


def marker_fonts() -> list[Path]:
    """The TrueType fonts markers are drawn with (matplotlib's bundled DejaVu family, always present)."""
    matplotlib = require("matplotlib", "xray", "The synthetic x-rays' marker fonts")
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
             "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"]
    return [folder / n for n in names if (folder / n).exists()]


class _Draw:
    """Uniform and normal draws from a torch generator, as Python floats."""

    def __init__(self, generator: torch.Generator) -> None:
        self.g = generator

    def u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.g).item()

    def n(self, std: float = 1.0) -> float:
        return std * torch.randn((), generator=self.g).item()

    def i(self, n: int) -> int:
        return int(torch.randint(n, (), generator=self.g).item())

    def field(self, size: int, smooth: float) -> np.ndarray:
        """A smooth random field with zero mean and unit std."""
        from scipy.ndimage import gaussian_filter

        f = gaussian_filter(torch.randn(size, size, generator=self.g).numpy(), smooth)
        return (f - f.mean()) / (f.std() + 1e-12)


def _blob(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return np.exp(-(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2))


def render_xray(label: int, size: int, generator: torch.Generator) -> np.ndarray:
    """One synthetic radiograph of class ``label`` (0 normal, 1 pneumonia, 2 COVID-19), (size, size) in [0, 1]."""
    d = _Draw(generator)
    yy, xx = np.mgrid[0:1:size * 1j, 0:1:size * 1j]
    cx, tilt = 0.5 + d.n(0.02), d.n(0.02)
    xx = xx - tilt * (yy - 0.5)
    # Thorax (soft tissue), lungs (air: dark), mediastinum and spine (bright), heart, clavicles.
    body = 1 / (1 + np.exp(-(0.42 + d.n(0.02) - np.abs(xx - cx)) / 0.03))
    img = 0.12 + 0.45 * body
    lung = np.zeros_like(img)
    for side in (-1, 1):
        lx, ly = cx + side * (0.17 + d.n(0.01)), 0.47 + d.n(0.02)
        r = np.sqrt(((yy - ly) / (0.31 + d.n(0.015))) ** 2 + ((xx - lx) / (0.15 + d.n(0.01))) ** 2)
        lung = np.maximum(lung, 1 / (1 + np.exp((r - 0.85) / 0.06)))
    img = img - 0.38 * lung
    img = img + 0.22 * np.exp(-((xx - cx) / 0.035) ** 2) * (yy > 0.1)
    img = img + 0.25 * _blob(yy, xx, 0.66 + d.n(0.02), cx + 0.07 + d.n(0.015), 0.13, 0.12)
    for side in (-1, 1):
        half = (side * (xx - cx) > 0) & (np.abs(xx - cx) < 0.32)          # one clavicle per side
        img = img + 0.12 * np.exp(-((yy - 0.17 - 0.12 * np.abs(xx - cx) + d.n(0.005)) / 0.012) ** 2) * half
    # Ribs: bright arcs across each lung, about nine pairs.
    spacing, phase = 0.068 + d.n(0.003), d.u(0, 0.06)
    arcs = np.cos(2 * np.pi * ((yy - 0.18 * (xx - cx) ** 2 * 4 - phase) / spacing))
    img = img + 0.07 * np.clip(arcs, 0, 1) ** 3 * lung
    # Disease.
    severity = d.u(0.5, 1.0)
    if label == 1:              # pneumonia: dense focal consolidation, mostly one lung, lower zones
        side = 1 if d.u() < 0.5 else -1
        for _ in range(1 + (d.u() < 0.35)):
            s = side if d.u() < 0.85 else -side
            img = img + 0.55 * severity * _blob(yy, xx, d.u(0.5, 0.72), cx + s * d.u(0.12, 0.22),
                                                d.u(0.06, 0.11), d.u(0.05, 0.09)) * lung
    elif label == 2:            # COVID-19: faint, diffuse, bilateral, peripheral ground glass
        for side in (-1, 1):
            for _ in range(2 + d.i(3)):
                img = img + 0.3 * severity * _blob(yy, xx, d.u(0.4, 0.75), cx + side * d.u(0.2, 0.27),
                                                    d.u(0.07, 0.13), d.u(0.04, 0.07)) * lung
    elif d.u() < 0.25:          # a little haze on some normal films
        img = img + 0.05 * _blob(yy, xx, d.u(0.4, 0.7), cx + d.n(0.2), 0.12, 0.1) * lung
    # Texture, exposure and noise.
    img = img + 0.03 * d.field(size, size / 40) * lung + 0.015 * d.field(size, size / 100)
    img = (img - 0.1) * d.u(0.9, 1.15) + 0.1 + d.n(0.02)
    img = img + 0.01 * torch.randn(size, size, generator=generator).numpy()
    return np.clip(img, 0, 1).astype(np.float32)


def _print_marker(img: np.ndarray, d: _Draw, fonts: list[Path]) -> tuple[int, int, int, int]:
    size = img.shape[0]
    text = MARKERS[d.i(len(MARKERS))]
    font = ImageFont.truetype(str(fonts[d.i(len(fonts))]), max(6, round(size * d.u(0.09, 0.15))))
    pil = Image.fromarray((img * 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    w, h = x1 - x0, y1 - y0
    margin = max(2, round(size * 0.03))
    corner = d.i(4)
    x = margin if corner % 2 == 0 else size - margin - w
    y = margin if corner < 2 else size - margin - h
    draw.text((x - x0, y - y0), text, fill=int(230 + d.u(0, 25)), font=font)
    img[:] = np.asarray(pil, dtype=np.float32) / 255
    return (x, y, x + w, y + h)


def synthetic_xrays(n: int, *, size: int = 128, split: str = "train", covid_text_rate: float = 0.8,
                    other_text_rate: float = 0.05, test_text_rate: float = 0.3,
                    class_weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
                    generator: torch.Generator | None = None) -> XraySet:
    """Draw ``n`` synthetic chest radiographs with the text shortcut of the paper's COVID-19 study.

    Args:
        n: number of images.
        size: side in pixels (at least 32).
        split: ``"train"``: markers on a ``covid_text_rate`` share of COVID-19 films and an
            ``other_text_rate`` share of the others (the shortcut); ``"test"``: on a
            ``test_text_rate`` share of every class (no shortcut); ``"clean"``: no markers.
        class_weights: relative frequency of normal, pneumonia and COVID-19.
        generator: the source of every random draw; default ``torch.Generator().manual_seed(0)``.

    Returns:
        An :class:`XraySet`.

    Example:
        >>> import torch, igospp.studies.xray as xray
        >>> data = xray.synthetic_xrays(6, size=64, generator=torch.Generator().manual_seed(0))
        >>> tuple(data.images.shape), data.labels.tolist(), data.has_text.tolist()
        ((6, 1, 64, 64), [2, 2, 1, 2, 1, 2], [False, True, False, True, False, False])
    """
    n = checks.positive_int("n", n)
    size = checks.integer("size", size, low=32)
    if split not in ("train", "test", "clean"):
        raise ValueError(f"split must be 'train', 'test' or 'clean', got {split!r}.")
    for name, rate in (("covid_text_rate", covid_text_rate), ("other_text_rate", other_text_rate),
                       ("test_text_rate", test_text_rate)):
        if not 0 <= rate <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {rate!r}.")
    weights = torch.as_tensor(class_weights, dtype=torch.float64)
    if weights.shape != (3,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"class_weights must be three non-negative numbers, not all 0, got {class_weights!r}.")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    d = _Draw(generator)
    labels = torch.multinomial(weights, n, replacement=True, generator=generator)
    fonts = marker_fonts()
    images, has_text, boxes = [], [], []
    for label in labels.tolist():
        img = render_xray(label, size, generator)
        rate = {"train": covid_text_rate if label == COVID else other_text_rate, "test": test_text_rate,
                "clean": 0.0}[split]
        printed = d.u() < rate
        boxes.append([_print_marker(img, d, fonts)] if printed else [])
        has_text.append(printed)
        images.append(torch.from_numpy(img))
    return XraySet(torch.stack(images).unsqueeze(1), labels, torch.tensor(has_text), boxes)


_COVIDX_LABELS = {"normal": 0, "pneumonia": 1, "covid-19": 2, "covid19": 2, "covid": 2}


def covidx(data_dir: str | Path, split: str = "train", split_file: str | Path | None = None, size: int = 224,
           n: int | None = None, generator: torch.Generator | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load COVIDx (Wang et al.) from its usual layout: ``data_dir/{split}/`` images and a split text file.

    Each line of the split file reads ``patient_id filename label [source]`` with the label one
    of ``normal``, ``pneumonia``, ``COVID-19`` (COVIDx v3 to v8). Images are read as grey, resized
    to ``size`` x ``size`` and scaled to [0, 1].

    Args:
        data_dir: the COVIDx folder.
        split: ``"train"`` or ``"test"``: the image folder, and the split file ``{split}.txt``
            (or ``{split}_split.txt``) unless ``split_file`` is given.
        split_file: an explicit split file (e.g. ``train_COVIDx8A.txt``).
        size: side of the returned images.
        n: a seeded random subset of ``n`` images (``generator``).

    Returns:
        ``(images (N, 1, size, size), labels (N,), filenames)`` with labels in :data:`CLASSES` order.
    """
    root = Path(data_dir)
    if split_file is None:
        candidates = [root / f"{split}.txt", root / f"{split}_split.txt", root / f"{split}_split_v3.txt"]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise FileNotFoundError(f"no split file for split={split!r} in data_dir={str(root)!r} (looked for "
                                    f"{[c.name for c in candidates]}); pass split_file=.")
        split_file = found[0]
    split_file = Path(split_file)
    if not split_file.exists():
        raise FileNotFoundError(f"split_file {str(split_file)!r} does not exist.")
    entries = []
    for number, line in enumerate(split_file.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise ValueError(f"{split_file.name}, line {number}: expected 'patient_id filename label [source]', "
                             f"got {line!r}.")
        label = _COVIDX_LABELS.get(parts[2].lower())
        if label is None:
            raise ValueError(f"{split_file.name}, line {number}: unknown label {parts[2]!r}; expected one of "
                             f"{list(CLASSES)} (binary positive/negative splits need the 3-class split file).")
        entries.append((parts[1], label))
    if not entries:
        raise ValueError(f"{split_file.name} lists no images.")
    if n is not None:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        order = torch.randperm(len(entries), generator=generator)[:n].tolist()
        entries = [entries[i] for i in sorted(order)]
    folder = root / split
    images = []
    for name, _ in entries:
        path = folder / name
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r} is listed in {split_file.name} but missing.")
        # read_image scales 16-bit films (common for x-rays) instead of clipping them to white
        grey = Image.fromarray(read_image(path)).convert("L").resize((size, size), Image.BILINEAR)
        images.append(torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255))
    return (torch.stack(images).unsqueeze(1), torch.tensor([label for _, label in entries]),
            [name for name, _ in entries])
