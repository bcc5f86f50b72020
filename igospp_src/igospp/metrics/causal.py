r"""The causal insertion and deletion metrics (Petsiuk et al. 2018), with named protocols.

Rank the units of a saliency map from most to least salient. **Deletion** starts from the
image and replaces the top-ranked units with a substrate, step by step, recording the
target's score; a good map makes the score fall fast (low area under the curve).
**Insertion** starts from the substrate and puts the top-ranked units of the image back;
a good map makes the score rise fast (high area). Both must be read together: a mask can
"break" a prediction adversarially (excellent deletion) without containing the evidence
(poor insertion).

Published numbers differ by protocol far more than by method, so every choice that moves
the number is a field of :class:`Protocol` and travels with every result:

* ``"igospp"``, the authors' code: ranking at the saliency's own resolution (cells, e.g.
  28 x 28), the binary keep-mask upsampled bilinearly (soft edges), about 50 steps
  (``max(1, N // 50)`` cells per step), the 51 x 51 / sigma 50 blur as the substrate of both
  curves, softmax of the target, plus the code's logged score with its last-step quirk;
* ``"rise"``, RISE's ``CausalMetric``: pixel ranking, 224 pixels per step, deletion to zeros
  (the mean color in normalized space), insertion from an 11 x 11, sigma 5 blur.

The AUC reported by both is the trapezoid over the fractions actually removed (0 to 1).
Ties in the saliency are broken by a **stable** sort: equal units keep raster order (top
row first, left to right), so results are deterministic on every device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from igospp import checks
from igospp.acceleration import accelerate as _accelerate
from igospp.blur import blur_baseline
from igospp.checks import untouched
from igospp.composition import phi, upsample
from igospp.config import resolve_batch_size
from igospp.inputs import check_images, model_device, resolve_baseline, warn_if_training
from igospp.targets import Target, check_model_output, forward_clean, resolve_target

__all__ = ["Protocol", "PROTOCOLS", "CausalMetricResult", "insertion_deletion", "rise_blur_kernel", "substrate"]

Substrate = str | float | int | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]
_SUBSTRATE_NAMES = ("blur", "rise_blur", "zeros")


@dataclass(frozen=True)
class Protocol:
    """Every choice of the insertion/deletion metric that changes its value.

    Attributes:
        name: a label for tables.
        deletion_substrate: what deleted units become: ``"blur"`` (the optimization's blur,
            see ``blur_*``), ``"rise_blur"`` (RISE's 11 x 11 kernel), ``"zeros"`` (0 in
            normalized space), a number, a tensor shaped like the images, or a callable
            ``f(images) -> tensor``.
        insertion_substrate: the canvas units are inserted into; same choices.
        unit: ``"cells"``: rank the saliency at its own resolution and upsample the binary
            keep-mask bilinearly (``align_corners=True``) like the authors' code;
            ``"pixels"``: upsample the saliency to the image size first and replace exact
            pixels, like RISE.
        step: units changed per step; ``None`` uses ``max(1, N // n_steps)``.
        n_steps: the approximate number of steps when ``step`` is ``None``.
        score: ``"softmax"`` probability or raw ``"logit"`` for integer targets (callable
            targets define their own score).
        legacy: also compute the authors' logged score (a right Riemann sum that adds the
            count of the last chunk instead of score x count).
        blur_kernel_size, blur_sigma, blur_reference_size: the ``"blur"`` substrate, scaled
            with the image size as in :func:`igospp.blur_baseline`.
        rise_kernel_size, rise_sigma: the ``"rise_blur"`` substrate (:func:`rise_blur_kernel`).
    """

    name: str = "custom"
    deletion_substrate: Substrate = "blur"
    insertion_substrate: Substrate = "blur"
    unit: str = "cells"
    step: int | None = None
    n_steps: int | None = 50
    score: str = "softmax"
    legacy: bool = True
    blur_kernel_size: int = 51
    blur_sigma: float = 50.0
    blur_reference_size: int = 224
    rise_kernel_size: int = 11
    rise_sigma: float = 5.0

    def __post_init__(self) -> None:
        for field in ("deletion_substrate", "insertion_substrate"):
            value = getattr(self, field)
            if isinstance(value, str) and value not in _SUBSTRATE_NAMES:
                raise ValueError(f"Protocol.{field} must be one of {_SUBSTRATE_NAMES}, a number, a tensor or a "
                                 f"callable; got {value!r}.")
        if self.unit not in ("cells", "pixels"):
            raise ValueError(f"Protocol.unit must be 'cells' or 'pixels', got {self.unit!r}.")
        if self.step is None and self.n_steps is None:
            raise ValueError("Protocol needs step (units per step) or n_steps (approximate number of steps).")
        for field in ("step", "n_steps"):
            value = getattr(self, field)
            if value is not None:
                checks.positive_int(f"Protocol.{field}", value)
        checks.choice("Protocol.score", self.score, ("softmax", "logit"))

    def replace(self, **changes: Any) -> Protocol:
        """A copy with some fields changed."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"Protocol has no field(s) {unknown}; valid fields are {sorted(names)}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of every choice, including the fixed ones."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        out["ranking"] = "descending saliency, stable sort (ties in raster order)"
        out["keep_mask"] = ("binary at the saliency's resolution, upsampled bilinearly (align_corners=True)"
                            if self.unit == "cells" else "binary at image resolution (exact pixels)")
        out["auc"] = "trapezoid over the fractions removed, 0 to 1"
        return out


#: The named protocols: the authors' code and RISE's ``CausalMetric``.
PROTOCOLS: dict[str, Protocol] = {
    "igospp": Protocol(name="igospp", deletion_substrate="blur", insertion_substrate="blur", unit="cells",
                       step=None, n_steps=50, score="softmax", legacy=True),
    "rise": Protocol(name="rise", deletion_substrate="zeros", insertion_substrate="rise_blur", unit="pixels",
                     step=224, n_steps=None, score="softmax", legacy=False),
}


def rise_blur_kernel(size: int = 11, sigma: float = 5.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RISE's ``gkern``: SciPy's Gaussian filter (reflect mode) applied to a centred delta.

    The reflection makes the small kernel nearly flat: it sums to 1 and its centre is only
    about 1.14 times its corner.

    Returns:
        ``(size, size)``.

    Example:
        >>> import igospp
        >>> k = igospp.metrics.rise_blur_kernel()
        >>> round(k.sum().item(), 6), round((k[5, 5] / k[0, 0]).item(), 2)
        (1.0, 1.14)
    """
    from scipy.ndimage import gaussian_filter

    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1.0
    return torch.from_numpy(gaussian_filter(delta, sigma)).to(dtype)


def substrate(kind: Substrate, images: torch.Tensor, protocol: Protocol | None = None) -> torch.Tensor:
    """The substrate image ``kind`` for ``images`` ``(B, C, H, W)``, see :class:`Protocol`.

    Numbers, tensors and callables are taken as baselines are by :func:`igospp.explain`.
    """
    protocol = protocol or Protocol()
    if kind == "blur":
        return blur_baseline(images, protocol.blur_kernel_size, protocol.blur_sigma, protocol.blur_reference_size)
    if kind == "zeros":
        return torch.zeros_like(images)
    if kind == "rise_blur":
        k = rise_blur_kernel(protocol.rise_kernel_size, protocol.rise_sigma, images.dtype).to(images.device)
        channels = images.shape[1]
        return F.conv2d(images, k.expand(channels, 1, *k.shape), padding=k.shape[-1] // 2, groups=channels)
    return resolve_baseline(kind, images)


@dataclass
class CausalMetricResult:
    """Curves and areas of the insertion/deletion metric for a batch.

    Attributes:
        fractions: ``(P,)`` fraction of units removed (deletion) or inserted (insertion) at
            each point, from 0 to 1.
        deletion: ``(B, P)`` target score along the deletion curve (starts at the image).
        insertion: ``(B, P)`` target score along the insertion curve (starts at the substrate).
        deletion_auc: ``(B,)`` trapezoid area under the deletion curve; **lower is better**.
        insertion_auc: ``(B,)`` trapezoid area under the insertion curve; **higher is better**.
        legacy_deletion_auc, legacy_insertion_auc: ``(B,)`` the authors' logged scores
            (``Protocol.legacy``), else ``None``.
        target: ``(B,)`` the class scored (``-1`` for callable targets).
        protocol: the :meth:`Protocol.to_dict` record.
        score_direction: which way is better for each metric.
        units: number of ranked units ``N``; step: units per step.
    """

    fractions: torch.Tensor
    deletion: torch.Tensor
    insertion: torch.Tensor
    deletion_auc: torch.Tensor
    insertion_auc: torch.Tensor
    legacy_deletion_auc: torch.Tensor | None
    legacy_insertion_auc: torch.Tensor | None
    target: torch.Tensor
    protocol: dict[str, Any]
    units: int
    step: int
    score_direction: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"deletion": "lower is better", "insertion": "higher is better"})


def _check_saliency(saliency: object, images: torch.Tensor) -> torch.Tensor:
    if not isinstance(saliency, torch.Tensor):
        raise TypeError(f"saliency must be a tensor (B, 1, h, w), got {type(saliency).__name__}.")
    if saliency.dim() == 3:
        saliency = saliency.unsqueeze(1)
    if saliency.dim() != 4 or saliency.shape[1] != 1 or saliency.shape[0] != images.shape[0]:
        raise ValueError(f"saliency must have shape (B, 1, h, w) with B = {images.shape[0]} images; "
                         f"got {tuple(saliency.shape)}.")
    h, w = saliency.shape[-2:]
    if h < 1 or w < 1:
        raise ValueError(f"saliency is empty (shape {tuple(saliency.shape)}): it needs at least one unit to rank; "
                         "give a (B, 1, h, w) map with h, w >= 1.")
    if h > images.shape[-2] or w > images.shape[-1]:
        raise ValueError(f"saliency is {h} x {w}, larger than the images ({images.shape[-2]} x {images.shape[-1]}).")
    if not torch.isfinite(saliency).all():
        raise ValueError("saliency contains NaN or infinite values.")
    return saliency


def _legacy(curve: torch.Tensor, removed: list[int], units: int) -> torch.Tensor:
    """The authors' logged AUC: a right Riemann sum where the last chunk adds its count, not score x count."""
    widths = torch.tensor([removed[k] - removed[k - 1] for k in range(1, len(removed))],
                          dtype=curve.dtype, device=curve.device)
    total = (curve[:, 1:-1] * widths[:-1]).sum(dim=1)
    return (total + (units - removed[-2])) / units


def insertion_deletion(model: torch.nn.Module, images: torch.Tensor, saliency: torch.Tensor, target: Target = None,
                       protocol: str | Protocol = "igospp", batch_size: int | None = None,
                       accelerate: bool = True, **overrides: Any) -> CausalMetricResult:
    """Insertion and deletion curves and AUCs of ``saliency`` under a named protocol.

    Args:
        model: classifier mapping ``(N, C, H, W)`` to ``(N, K)``; left as it was found
            (:func:`igospp.checks.untouched`: batch-norm statistics and ``.grad`` restored).
        images: ``(B, C, H, W)`` normalized images.
        saliency: ``(B, 1, h, w)`` (or ``(B, h, w)``), **high = salient**, at any resolution from
            1 x 1 up to the image size; e.g. ``1 - Explanation.mask`` (cells) or ``Explanation.saliency``.
        target: as in :func:`igospp.explain`; ``None`` scores the top-1 class of the clean image.
        protocol: ``"igospp"`` (default), ``"rise"`` or a :class:`Protocol`.
        batch_size: images per model call (default 8 on CPU, 64 on GPU). It changes only how the
            model's kernels round: on EfficientNet-Lite0 the AUCs of one map scored in chunks of
            3 and of 8 differ by up to ``3e-8`` (``benchmarks/records/2026-12-02_cpu2_batch_size_08d6dc8.json``).
        accelerate: run the curve images through a streamlined private copy of the model in
            its fastest memory layout (:func:`igospp.accelerate`; scores agree to float
            rounding). Default ``True``; ``False`` uses ``model`` as it is. A model already
            prepared by :func:`igospp.accelerate` is used as it is (prepare once, score many
            saliency maps).
        **overrides: any :class:`Protocol` field, e.g. ``step=1`` or ``deletion_substrate="zeros"``.

    Returns:
        A :class:`CausalMetricResult`; the model sees ``2 B (P)`` images (``P`` curve points).

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 5)).eval()
        >>> x = torch.randn(2, 3, 16, 16)
        >>> res = igospp.metrics.insertion_deletion(model, x, torch.rand(2, 1, 4, 4))
        >>> res.fractions.shape, res.deletion.shape, res.deletion_auc.shape, res.protocol["name"]
        (torch.Size([17]), torch.Size([2, 17]), torch.Size([2]), 'igospp')
    """
    if isinstance(protocol, str):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; available: {list(PROTOCOLS)}, or pass a Protocol.")
        protocol = PROTOCOLS[protocol]
    elif not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a name or a Protocol, got {type(protocol).__name__}.")
    if overrides:
        protocol = protocol.replace(**overrides)
    images = check_images(images)
    warn_if_training(model)
    out_device = images.device
    device, dtype = model_device(model, images)
    x = images.detach().to(device, dtype)
    sal = _check_saliency(saliency, images).detach().to(device, dtype)
    if protocol.unit == "pixels":
        sal = upsample(sal, tuple(x.shape[-2:]))
    batch, (h, w) = x.shape[0], sal.shape[-2:]
    units = h * w
    step = protocol.step or max(1, units // protocol.n_steps)
    n_steps = math.ceil(units / step)
    removed = [min(k * step, units) for k in range(n_steps + 1)]
    chunk = resolve_batch_size(batch_size, device)

    with untouched(model), torch.inference_mode():
        clean = forward_clean(model, x)
        scorer = resolve_target(target, clean, protocol.score)
        fast = _accelerate(model, x, clean, enabled=accelerate)
        substrates = (substrate(protocol.deletion_substrate, x, protocol),
                      substrate(protocol.insertion_substrate, x, protocol))
        order = torch.sort(sal.flatten(1), dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(units, device=device).expand(batch, units))
        removed_t = torch.tensor(removed, device=device)
        curves = torch.empty(2, batch, n_steps + 1, dtype=dtype, device=device)
        total = 2 * batch * (n_steps + 1)
        for start in range(0, total, chunk):
            rows = torch.arange(start, min(start + chunk, total), device=device)
            kind, b, k = rows // (batch * (n_steps + 1)), (rows // (n_steps + 1)) % batch, rows % (n_steps + 1)
            keep = (rank[b] >= removed_t[k].unsqueeze(1)).to(dtype).view(-1, 1, h, w)
            keep = upsample(keep, tuple(x.shape[-2:]))
            is_del = (kind == 0).view(-1, 1, 1, 1)
            sub = torch.where(is_del, substrates[0][b], substrates[1][b])
            # deletion shows the image where kept; insertion shows it where removed (= inserted)
            composed = phi(x[b], sub, torch.where(is_del, keep, 1 - keep))
            out = check_model_output(fast(composed), composed.shape[0])
            curves[kind, b, k] = scorer(out, b)
    fractions = torch.tensor(removed, dtype=torch.float64) / units
    deletion, insertion = curves[0].double().cpu(), curves[1].double().cpu()
    legacy = protocol.legacy
    return CausalMetricResult(
        fractions=fractions,
        deletion=deletion.to(out_device),
        insertion=insertion.to(out_device),
        deletion_auc=torch.trapezoid(deletion, fractions).to(out_device),
        insertion_auc=torch.trapezoid(insertion, fractions).to(out_device),
        legacy_deletion_auc=_legacy(deletion, removed, units).to(out_device) if legacy else None,
        legacy_insertion_auc=_legacy(insertion, removed, units).to(out_device) if legacy else None,
        target=scorer.classes.to(out_device),
        protocol=protocol.to_dict(),
        units=units,
        step=step,
    )
