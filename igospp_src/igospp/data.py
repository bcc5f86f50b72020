"""Images: the photos bundled with scikit-image and scikit-learn (offline), and folders of your own."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["sample_images", "SAMPLE_IMAGES", "image_folder", "ImageFolder", "ImageRecord"]

#: Name and source of every bundled photo, in the order :func:`sample_images` returns them.
SAMPLE_IMAGES: dict[str, str] = {
    "chelsea": "skimage.data.chelsea (a cat)",
    "coffee": "skimage.data.coffee (a cup of coffee)",
    "camera": "skimage.data.camera (a photographer with a tripod, grey)",
    "rocket": "skimage.data.rocket (a rocket on its launch pad)",
    "china": "sklearn.datasets.load_sample_images: china.jpg (a temple)",
    "astronaut": "skimage.data.astronaut (Eileen Collins)",
    "flower": "sklearn.datasets.load_sample_images: flower.jpg (a flower)",
    "coins": "skimage.data.coins (Greek coins, grey)",
    "moon": "skimage.data.moon (the moon's surface, grey)",
    "clock": "skimage.data.clock (a motion-blurred clock, grey)",
}


def _load(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    return getattr(skimage.data, name)()


def sample_images(names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Bundled natural photos as RGB ``uint8`` arrays ``(H, W, 3)``, keyed by name.

    Args:
        names: which photos (see :data:`SAMPLE_IMAGES`); default all, in that order.

    Returns:
        ``{name: image}``; grey photos are repeated over three channels.

    Example:
        >>> import igospp
        >>> photos = igospp.sample_images(["chelsea", "coffee"])
        >>> {k: v.shape for k, v in photos.items()}
        {'chelsea': (300, 451, 3), 'coffee': (400, 600, 3)}
    """
    if names is None:
        names = list(SAMPLE_IMAGES)
    elif isinstance(names, str):
        raise TypeError(f"names must be a sequence of names, e.g. [{names!r}], not a string.")
    unknown = [n for n in names if n not in SAMPLE_IMAGES]
    if unknown:
        raise ValueError(f"unknown sample image(s) {unknown}; available: {list(SAMPLE_IMAGES)}.")
    out = {}
    for name in names:
        image = np.asarray(_load(name))
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        out[name] = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    return out


_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}
_SYNSET = re.compile(r"(n\d{8})")


@dataclass(frozen=True)
class ImageRecord:
    """One image of an :class:`ImageFolder`.

    Attributes:
        path: the file.
        name: its stem (``n01491361_tiger_shark``).
        synset: the WordNet id found in the file or folder name, or ``None``.
        label: the ImageNet-1k class index of that synset, or ``None``.
    """

    path: Path
    name: str
    synset: str | None
    label: int | None

    def load(self) -> np.ndarray:
        """The image as an RGB ``uint8`` array ``(H, W, 3)``."""
        with Image.open(self.path) as im:
            return np.asarray(im.convert("RGB"))


class ImageFolder(Sequence[ImageRecord]):
    """A list of :class:`ImageRecord` (see :func:`image_folder`); ``skipped`` holds unreadable files."""

    def __init__(self, root: Path, records: list[ImageRecord], skipped: list[tuple[Path, str]]) -> None:
        self.root = root
        self.records = records
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):  # type: ignore[override]
        return self.records[index]

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.skipped)} skipped)"


def _imagenet_synsets() -> dict[str, int]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return {info.index_to_label_name(i): i for i in range(info.num_classes())}


def image_folder(path: str | Path, n: int | None = None, seed: int = 0) -> ImageFolder:
    """The images of an ImageNet-validation-like folder, optionally a seeded random subset.

    Args:
        path: a folder of images, flat or with one sub-folder per class (any depth is searched).
        n: how many images to keep; ``None`` keeps all. A seeded random subset, listed in path order.
        seed: seed of the subset.

    Returns:
        An :class:`ImageFolder`. A WordNet id in the file name (``n01491361_tiger_shark.JPEG``)
        or in the folder name gives the ImageNet label. Files that cannot be decoded are
        skipped, listed in ``skipped`` and reported with a warning; the subset is refilled
        from the remaining files so ``n`` readable images come back when there are that many.

    Example:
        >>> import tempfile, igospp
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> Image.new("RGB", (8, 8)).save(f"{folder}/n01491361_tiger_shark.png")
        >>> rec = igospp.image_folder(folder)[0]
        >>> rec.synset, rec.label
        ('n01491361', 3)
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder.")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(_EXTENSIONS))}) under {str(root)!r}.")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist() if n else \
        range(len(files))
    synsets = _imagenet_synsets()
    chosen, skipped = [], []
    for i in order:
        if n is not None and len(chosen) == n:
            break
        file = files[i]
        try:
            with Image.open(file) as im:
                im.verify()
        except Exception as err:  # PIL raises many types for broken files
            skipped.append((file, f"{type(err).__name__}: {err}"))
            continue
        match = _SYNSET.search(file.name) or _SYNSET.search(file.parent.name)
        synset = match.group(1) if match else None
        chosen.append(ImageRecord(path=file, name=file.stem, synset=synset, label=synsets.get(synset)))
    if skipped:
        shown = "; ".join(f"{p.name} ({why})" for p, why in skipped[:3])
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) under {str(root)!r}: {shown}"
                      + (" ..." if len(skipped) > 3 else ""), stacklevel=2)
    return ImageFolder(root, sorted(chosen, key=lambda r: r.path), skipped)
