"""Images: the photos bundled with scikit-image and scikit-learn (offline), folders of your own, and a reader.

:func:`read_image` decodes one file into the RGB ``uint8`` array every model bundle takes; it
scales 16-bit files correctly, applies the EXIF orientation and refuses unreadable files with
:class:`UnreadableImageError`. :func:`image_folder` lists a folder's readable images.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from igospp import checks
from igospp._optional import require

__all__ = ["sample_images", "SAMPLE_IMAGES", "image_folder", "ImageFolder", "ImageRecord", "read_image",
           "UnreadableImageError"]

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


class UnreadableImageError(ValueError):
    """A file that is not an image, or not one that can be decoded in full (see :func:`read_image`)."""


def _scaled_to_8_bits(img: Image.Image, where: str) -> Image.Image:
    """An ``L`` image from an integer (``I``, ``I;16``...) or a float (``F``) image, scaled by its white level."""
    values = np.asarray(img).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode == "F":
        if not np.isfinite(values).all() or low < 0 or high > 255:
            raise UnreadableImageError(
                f"{where} holds floating-point pixels in [{low:.4g}, {high:.4g}]; only [0, 1] or [0, 255] have a "
                "known white level. Convert the file to 8 or 16 bits per channel.")
        white = 1.0 if high <= 1 else 255.0
    elif low < 0 or high > 65535:
        raise UnreadableImageError(
            f"{where} holds 32-bit integer pixels in [{low:.0f}, {high:.0f}], beyond the 16-bit range [0, 65535]: "
            "their white level is unknown. Convert the file to 8 or 16 bits per channel.")
    else:
        white = 65535.0                                  # 16-bit data, also in PIL's 32-bit mode "I"
    return Image.fromarray(np.round(values * (255.0 / white)).astype(np.uint8), mode="L")


def _to_rgb(img: Image.Image, where: str) -> np.ndarray:
    if img.mode.startswith("I") or img.mode == "F":
        img = _scaled_to_8_bits(img, where)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)         # transparent pixels show as on a white page
    try:
        rgb = img.convert("RGB")
    except ValueError as err:
        raise UnreadableImageError(f"{where} has PIL mode {img.mode!r}, which cannot be converted to RGB ({err}).") \
            from err
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file in full, as an RGB ``uint8`` array ``(H, W, 3)``.

    Unlike ``np.asarray(PIL.Image.open(path).convert("RGB"))``, which turns a 16-bit file
    white and ignores the camera's orientation:

    * 16-bit greyscale (PIL modes ``I;16``, ``I;16B``, and ``I`` when its values lie in
      [0, 65535]) is scaled as ``round(value / 257)``; float images (mode ``F``) with values
      in [0, 1] are scaled by 255, with values in [0, 255] kept; other ranges are refused;
    * palette, 1-bit, grey, CMYK and YCbCr images become RGB; an alpha channel (``LA``,
      ``RGBA``, a palette with transparency) is composited over white, as a viewer shows it;
    * the EXIF orientation tag is applied (a phone photo comes out upright);
    * the whole file is decoded, so a truncated or corrupt file fails here, not later
      (unless you set ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``, which this library never does).

    Args:
        path: the image file.

    Returns:
        ``(H, W, 3)`` ``uint8`` array, H x W as displayed (after the EXIF rotation).

    Raises:
        UnreadableImageError: naming the file and the reason: missing, a folder, not an
            image, truncated or corrupt, an unknown white level, or more pixels than
            ``PIL.Image.MAX_IMAGE_PIXELS`` (a possible decompression bomb).

    Example:
        >>> import tempfile, numpy as np, igospp
        >>> from PIL import Image
        >>> path = f"{tempfile.mkdtemp()}/depth.png"
        >>> Image.fromarray(np.array([[0, 257, 65535]], np.uint16)).save(path)   # 16-bit grey
        >>> igospp.read_image(path)[0, :, 0]
        array([  0,   1, 255], dtype=uint8)
        >>> igospp.read_image(path + ".missing")
        Traceback (most recent call last):
        ...
        igospp.images.UnreadableImageError: image '...depth.png.missing' does not exist.
    """
    from PIL import ImageOps

    where = f"image {str(path)!r}"
    file = Path(path)
    if file.is_dir():
        raise UnreadableImageError(f"{where} is a folder, not an image file.")
    if not file.exists():
        raise UnreadableImageError(f"{where} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                img.load()                               # decode everything now: a truncated file fails here
                return _to_rgb(ImageOps.exif_transpose(img), where)
    except UnreadableImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableImageError(
            f"{where} is refused as a possible decompression bomb: {err} The limit is PIL.Image.MAX_IMAGE_PIXELS "
            f"= {Image.MAX_IMAGE_PIXELS} pixels; raise it if you trust the file.") from err
    except UnidentifiedImageError as err:
        raise UnreadableImageError(f"{where} is not an image file that PIL can decode ({err}).") from err
    except PermissionError as err:
        raise UnreadableImageError(f"{where} cannot be opened: {err}.") from err
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for broken files
        raise UnreadableImageError(f"{where} is truncated or corrupt and cannot be decoded in full "
                                   f"({type(err).__name__}: {err}).") from err


_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}
_SYNSET = re.compile(r"(n\d{8})")
_SHOWN = 10  # unreadable files named in image_folder's warning


@dataclass(frozen=True)
class ImageRecord:
    """One image of an :class:`ImageFolder`.

    Attributes:
        path: the file.
        name: its stem (``n01491361_tiger_shark``); two files of a folder may share it.
        synset: the WordNet id found in the file or folder name, or ``None``.
        label: the ImageNet-1k class index of that synset, or ``None``.
        key: the file's path relative to the folder's root, POSIX style
            (``n01491361/ILSVRC2012_val_00000001.JPEG``): unique within the folder, so records
            of results are keyed by it. Default (a record made by hand): the file name.

    Example:
        >>> from pathlib import Path
        >>> ImageRecord(Path("photos/cat.png"), "cat", None, None).key
        'cat.png'
    """

    path: Path
    name: str
    synset: str | None
    label: int | None
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", Path(self.path).name)

    def load(self) -> np.ndarray:
        """The image as an RGB ``uint8`` array ``(H, W, 3)``, read by :func:`read_image`.

        Raises:
            UnreadableImageError: the file cannot be decoded (any more).
        """
        return read_image(self.path)


class ImageFolder(Sequence[ImageRecord]):
    """A list of :class:`ImageRecord` (see :func:`image_folder`).

    Attributes:
        root: the folder.
        records: the readable images, in path order.
        skipped: ``(path, reason)`` of each image file that could not be decoded, in path order.
    """

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
    info = require("timm.data", "methods", "image_folder's ImageNet labels").ImageNetInfo()
    return {info.index_to_label_name(i): i for i in range(info.num_classes())}


def image_folder(path: str | Path, n: int | None = None, seed: int = 0) -> ImageFolder:
    """The images of an ImageNet-validation-like folder, optionally a seeded random subset.

    Args:
        path: a folder of images, flat or with one sub-folder per class (any depth is searched).
        n: how many images to keep; ``None`` keeps all. A seeded random subset, listed in path order.
        seed: seed of the subset (an integer >= 0). Default 0.

    Returns:
        An :class:`ImageFolder`. A WordNet id in the file name (``n01491361_tiger_shark.JPEG``)
        or in the folder name gives the ImageNet label; each record's ``key`` is its path
        relative to ``path``. Every listed file is decoded in full with :func:`read_image`;
        files that cannot be (not images, truncated, corrupt) are skipped, listed in
        ``skipped`` with the reason and named in one warning; the subset is refilled from the
        remaining files so ``n`` readable images come back when there are that many.

    Raises:
        FileNotFoundError: ``path`` is not a folder, or holds no image files.
        ValueError: ``n`` is not a positive integer, or ``seed`` not an integer >= 0.

    Example:
        >>> import tempfile, igospp
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> Image.new("RGB", (8, 8)).save(f"{folder}/n01491361_tiger_shark.png")
        >>> rec = igospp.image_folder(folder)[0]
        >>> rec.synset, rec.label, rec.key
        ('n01491361', 3, 'n01491361_tiger_shark.png')
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder.")
    if n is not None:
        n = checks.positive_int("n", n)
    seed = checks.integer("seed", seed, low=0, high=2**63 - 1)
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
            read_image(file)                             # decode in full: verify() passes truncated JPEGs
        except UnreadableImageError as err:
            skipped.append((file, str(err)))
            continue
        match = _SYNSET.search(file.name) or _SYNSET.search(file.parent.name)
        synset = match.group(1) if match else None
        chosen.append(ImageRecord(path=file, name=file.stem, synset=synset, label=synsets.get(synset),
                                  key=file.relative_to(root).as_posix()))
    skipped.sort()
    if skipped:
        shown = ", ".join(p.relative_to(root).as_posix() for p, _ in skipped[:_SHOWN])
        more = f" and {len(skipped) - _SHOWN} more" if len(skipped) > _SHOWN else ""
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) under {str(root)!r}: {shown}{more} "
                      f"(first reason: {skipped[0][1]}); the reasons are in ImageFolder.skipped.", stacklevel=2)
    return ImageFolder(root, sorted(chosen, key=lambda r: r.path), skipped)
