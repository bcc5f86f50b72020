"""The comparison methods of the paper, behind one calling convention and one registry.

Every method is a callable ``method(model, images, target=None) -> saliency`` returning a
``(B, 1, h, w)`` tensor, **high = salient**, at the method's natural resolution, so the
insertion/deletion metric ranks it where the paper does:

==================  ==================================================  =====================
method              how                                                 resolution
==================  ==================================================  =====================
``GradCAM``         pytorch-grad-cam on the last convolutional block    the layer's (7 x 7)
``IntegratedGrad``  Captum, blur or black baseline, channel-summed      the image's (224)
``RISE``            implemented here: 8000 random 7 x 7 masks, p = 0.5  the image's (224)
``Optimized``       :func:`igospp.explain` (Mask, I-GOS, iGOS++, ...)   the mask's (any)
==================  ==================================================  =====================

:data:`REGISTRY` names every method the command line, :func:`igospp.studies.benchmark.evaluate`,
the paper's tables and the book accept (the comparison methods and Table 3's ablations), with its
display name and whether it takes a mask resolution; :class:`MethodOptions` carries the settings
of a comparison run, each method reading those it uses.

Grad-CAM needs ``pip install igospp[methods]`` (pytorch-grad-cam), Integrated Gradients too (Captum).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from igospp import checks
from igospp.config import Config
from igospp.methods.base import Optimized, prepare
from igospp.methods.gradcam import GradCAM, gradcam_layer
from igospp.methods.integrated_gradients import IntegratedGrad
from igospp.methods.rise import RISE

__all__ = ["Optimized", "GradCAM", "IntegratedGrad", "RISE", "gradcam_layer", "prepare", "MethodOptions",
           "MethodSpec", "REGISTRY", "get_method", "build", "display_name"]


@dataclass(frozen=True)
class MethodOptions:
    """The settings of a comparison run; each method reads the ones listed in its :attr:`MethodSpec.uses`.

    Attributes:
        iterations: outer iterations of the optimization methods. ``None`` (default): the
            method's own (20; 500 for Mask).
        mask_iterations: iterations of Mask alone, replacing ``iterations`` for it. ``None``:
            ``iterations`` (or Mask's 500 when that is ``None`` too).
        ig_steps: integration intervals ``S`` of I-GOS, iGOS++ and the variants (not Mask, whose
            plain gradient is the one-interval path). ``None``: 20.
        rise_masks: RISE's number of masks. ``None``: 8000.
        ig_path_steps: Riemann steps of Integrated Gradients. ``None``: 50.
        batch_size: images per model call of every method. ``None``: 8 on the CPU, 64 on a GPU.
        seed: seed of the optimization noise and of RISE's masks, an integer from ``-(2**63)``
            to ``2**64 - 1``. Default 0.

    >>> MethodOptions(iterations=5).replace(seed=1).seed
    1
    """

    iterations: int | None = None
    mask_iterations: int | None = None
    ig_steps: int | None = None
    rise_masks: int | None = None
    ig_path_steps: int | None = None
    batch_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "seed":
                object.__setattr__(self, "seed", checks.seed("MethodOptions.seed", value))
            elif value is not None:
                object.__setattr__(self, f.name, checks.positive_int(f"MethodOptions.{f.name}", value))

    def replace(self, **changes: Any) -> MethodOptions:
        """A copy with some fields changed (checked like a new one)."""
        return dataclasses.replace(self, **changes)


def _set(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class MethodSpec:
    """One entry of :data:`REGISTRY`.

    Attributes:
        name: the registry key (the command line's and the records' name).
        display: the name in tables and figures (the paper's).
        takes_resolution: whether the method has a mask resolution (the optimization methods);
            the others' resolution is fixed by their nature.
        uses: the :class:`MethodOptions` fields the method reads.
        factory: ``factory(resolution, options) -> method``.
    """

    name: str
    display: str
    takes_resolution: bool
    uses: tuple[str, ...]
    factory: Callable[[int | tuple[int, int], MethodOptions], Any]


def _optimized(preset: str, **changes: Any) -> Callable[[int | tuple[int, int], MethodOptions], Optimized]:
    def factory(resolution: int | tuple[int, int], o: MethodOptions) -> Optimized:
        if preset == "mask":
            fields = _set(iterations=o.mask_iterations or o.iterations, batch_size=o.batch_size)
        else:
            fields = _set(iterations=o.iterations, ig_steps=o.ig_steps, batch_size=o.batch_size)
        return Optimized(Config.preset(preset, resolution=resolution, seed=o.seed, **fields, **changes))
    return factory


_OPTIMIZED_USES = ("iterations", "ig_steps", "batch_size", "seed")

#: Every method by name, in the paper's table order. The three ablations of Table 3 are iGOS++
#: with one :class:`~igospp.Config` field replaced. "No BTV" is read as plain TV at the mask's
#: resolution (the I-GOS regularizer) in place of BTV; the paper does not say whether the
#: smoothness term was replaced or dropped. The fixed step is the library's ``step_size`` (1.6,
#: the median accepted step at 28 x 28; the paper does not give its value).
REGISTRY: dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("gradcam", "Grad-CAM", False, (), lambda r, o: GradCAM()),
    MethodSpec("ig", "Integrated Gradients", False, ("ig_path_steps", "batch_size"),
               lambda r, o: IntegratedGrad(**_set(steps=o.ig_path_steps, batch_size=o.batch_size))),
    MethodSpec("rise", "RISE", False, ("rise_masks", "batch_size", "seed"),
               lambda r, o: RISE(seed=o.seed, **_set(n_masks=o.rise_masks, batch_size=o.batch_size))),
    MethodSpec("mask", "Mask", True, ("iterations", "mask_iterations", "batch_size", "seed"), _optimized("mask")),
    MethodSpec("igos", "I-GOS", True, _OPTIMIZED_USES, _optimized("igos")),
    MethodSpec("insertion", "Insertion", True, _OPTIMIZED_USES, _optimized("insertion")),
    MethodSpec("naive", "I-GOS + Ins (naive)", True, _OPTIMIZED_USES, _optimized("naive")),
    MethodSpec("igospp_nonoise", "iGOS++ (no noise)", True, _OPTIMIZED_USES, _optimized("igospp", noise_std=0.0)),
    MethodSpec("igospp_fixedstep", "iGOS++ (fix step size)", True, _OPTIMIZED_USES,
               _optimized("igospp", line_search=False)),
    MethodSpec("igospp_nobtv", "iGOS++ (no BTV)", True, _OPTIMIZED_USES, _optimized("igospp", smoothness="tv")),
    MethodSpec("igospp", "iGOS++", True, _OPTIMIZED_USES, _optimized("igospp")),
)}


def _spec(name: str) -> MethodSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {list(REGISTRY)}.")
    return REGISTRY[name]


def display_name(name: str) -> str:
    """The paper's name of a registry method (``"igospp"`` -> ``"iGOS++"``); other names pass through.

    >>> display_name("naive"), display_name("my_method")
    ('I-GOS + Ins (naive)', 'my_method')
    """
    return REGISTRY[name].display if name in REGISTRY else name


def build(name: str, resolution: int | tuple[int, int] = 28, options: MethodOptions | None = None) -> Any:
    """The registry method ``name`` configured by ``options`` (what the benchmark runs).

    >>> build("igospp", 7, MethodOptions(iterations=2)).config.iterations
    2
    >>> build("rise", options=MethodOptions(rise_masks=10)).n_masks
    10
    """
    return _spec(name).factory(resolution, options or MethodOptions())


def get_method(name: str, resolution: int | tuple[int, int] = 28, **options: Any) -> Any:
    """A comparison method by name, configured by keyword (for use on your own model).

    ``resolution`` and ``options`` configure the optimization methods and ablations
    (:class:`~igospp.Config` fields, e.g. ``iterations=5``); Grad-CAM, IG and RISE take their
    constructor's keywords (e.g. ``n_masks`` for RISE) and have no resolution.

    Example:
        >>> import igospp.methods
        >>> igospp.methods.get_method("igos", resolution=14, iterations=3).config.mask_size
        (14, 14)
    """
    spec = _spec(name)
    if not spec.takes_resolution:
        return spec.factory(resolution, MethodOptions()).__class__(**options)
    method = spec.factory(resolution, MethodOptions())
    return Optimized(method.config.replace(**options), baseline=method.baseline)
