"""Natural photos that ship inside the scikit-image and scikit-learn wheels (no download)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["sample_images", "SAMPLE_IMAGES"]

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
