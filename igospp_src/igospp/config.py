"""Every knob of the optimizer in one frozen dataclass, with the paper's presets.

The defaults reproduce the authors' code (``khorrams/IGOS_pp`` at ``bbd49e3``); where
the paper's text and the code differ, the code wins by default and the paper's version
is an option.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from igospp import checks

__all__ = ["Config", "METHODS", "METHOD_DEFAULTS", "default_batch_size", "resolve_batch_size"]

Method = Literal["mask", "igos", "naive", "insertion", "igospp"]
METHODS: tuple[str, ...] = ("mask", "igos", "naive", "insertion", "igospp")
_SMOOTHNESS = ("tv", "btv")
_BTV_FORMS = ("official", "symmetric")
_SCORES = ("softmax", "logit")
_AUTOCAST = ("bfloat16", "float16")


def default_batch_size(device: torch.device | str) -> int:
    """Images per model call when none is given: 8 on the CPU (where small batches run fastest), 64 on a GPU."""
    return 64 if torch.device(device).type == "cuda" else 8


def resolve_batch_size(batch_size: int | None, device: torch.device | str) -> int:
    """``batch_size`` checked, or :func:`default_batch_size` for ``device`` when it is ``None``.

    The one place where every batched pass of the library (the optimization, the metric,
    RISE, Integrated Gradients) picks its chunk size.

    >>> resolve_batch_size(None, "cpu"), resolve_batch_size(3, "cpu")
    (8, 3)
    """
    return default_batch_size(device) if batch_size is None else checks.positive_int("batch_size", batch_size)


#: The fields whose value depends on the method, and each method's values. A field left at
#: ``None`` takes the method's value; :meth:`Config.replace` with a new ``method`` moves the
#: fields that held the old method's value to the new one's.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "mask": {"iterations": 500, "ig_steps": 1, "smoothness": "tv", "ig_scale": 1.0},
    "igos": {"iterations": 20, "ig_steps": 20, "smoothness": "tv", "ig_scale": 1.0},
    "naive": {"iterations": 20, "ig_steps": 20, "smoothness": "btv", "ig_scale": 1.0},
    "insertion": {"iterations": 20, "ig_steps": 20, "smoothness": "btv", "ig_scale": 1.0},
    "igospp": {"iterations": 20, "ig_steps": 20, "smoothness": "btv", "ig_scale": 0.5},
}


@dataclass(frozen=True)
class Config:
    r"""Settings of :func:`igospp.explain`. Build one from a preset, change fields with :meth:`replace`.

    The presets are the methods of the paper; an ablation is a field replacement::

        cfg = Config.igospp(resolution=28)                    # iGOS++ (eq. 4-8)
        cfg = cfg.replace(noise_std=0.0, line_search=False)   # ablations of Table 3

    Attributes:
        method: which objective is optimized. ``"mask"`` and ``"igos"``: the deletion
            objective of eq. (1), one mask (``"mask"`` is Fong & Vedaldi's method: the same
            objective with the plain gradient, i.e. ``ig_steps=1``). ``"naive"``: eq. (1)
            plus the insertion term on the same mask (the official ``iGOS+``).
            ``"insertion"``: the insertion term alone. ``"igospp"``: two masks, eq. (4)-(6).
            Default ``"igospp"``.
        resolution: mask size in cells, an int ``s`` (``s x s``) or a pair ``(h, w)``, from 1
            up to the image size. Default 28.
        iterations: outer iterations ``T``. Default ``None``: the method's value (20, the official
            README runs; 500 for Mask, Fong & Vedaldi's count).
        ig_steps: integration intervals ``S`` of the path-averaged scores; path
            coefficients are ``k/S`` for ``k = 1..S`` (a right Riemann sum). Default ``None``:
            the method's value (20; 1 for Mask, whose plain gradient is the one-interval path).
        l1: weight of ``mean|1 - M|``. ``None`` (default) picks the paper's value:
            10 when the mask has at least 224 cells on its shorter side, else 1.
        l2: weight of the smoothness term (TV or BTV). Default 20.
        smoothness: ``"tv"`` (I-GOS, Mask) or ``"btv"`` (bilateral TV, eq. 7; iGOS++ and the
            naive and insertion variants). Default ``None``: the method's value.
        btv_form: ``"official"`` (default): the authors' code, whose vertical and horizontal
            image weights are computed differently. ``"symmetric"``: eq. (7) of the paper,
            one color distance for both directions. See :func:`igospp.bilateral_tv`.
        tv_beta: exponent ``beta`` of TV and BTV, at least 1. Default 2.
        btv_sigma: ``sigma`` of BTV; weights are ``exp(-d^2 / sigma)`` as in the code
            (the paper writes ``sigma^2``). Default 0.01, on ImageNet-normalized images.
        noise_std: std of the Gaussian noise added to every integration-path image, in
            normalized input units. Default 0.2. 0 turns the noise off.
        ig_scale: factor applied to the summed integrated-gradient terms before the
            regularizer gradient is added. The official iGOS++ halves them (0.5,
            "to balance out the terms with the regularization terms"); the other
            methods use 1. Default ``None``: the method's value. The line-search objective is
            never scaled.
        line_search: backtracking Armijo line search of eq. (8) (default) or, when
            ``False``, a fixed step ``step_size``.
        step_size: the fixed step used when ``line_search=False``. The paper does not say which
            step its "fix step size" ablation used. Default 1.6: the median step the line search
            accepts for iGOS++ at 28 x 28 on the bundled photos (EfficientNet-Lite0, measured).
            Accepted steps grow with the number of cells (medians: 0.32 at 7 x 7, 1.6 at 28 x 28,
            40 at 224 x 224), so set it per resolution.
        ls_initial_step: first step tried at every iteration. Default 1000.
        ls_shrink: factor applied to the step after a failed trial. Default 0.2.
        ls_armijo: Armijo constant ``c`` (the paper's beta of eq. 8). Default 1e-4.
        ls_min_step: the search stops once the step falls below this floor; the last
            step tried is taken even if it failed. Default 1e-5.
        score: what the model's output is turned into for an integer target:
            ``"softmax"`` probability (default, as the official code) or raw ``"logit"``.
            A callable target defines its own score and ignores this field.
        blur_kernel_size: size of the Gaussian blur that makes the default baseline, at
            ``blur_reference_size`` pixels. Default 51 (official, at 224 px).
        blur_sigma: its sigma at ``blur_reference_size`` pixels. Default 50.
        blur_reference_size: the image size at which the two values above apply; both scale
            linearly with the image's height and width. Default 224.
        batch_size: how many integration-path images go through the model at once, a speed
            and memory knob. The noise draws and the order of the engine's sums do not depend on
            it (on a float64 model results agree to ``1e-13``, ``tests/test_speed.py``), but the
            model's kernels may round differently for another batch size, and the line search's
            large steps amplify that: on EfficientNet-Lite0 (float32, CPU) chunks of 3 and of 8
            differ by up to ``2.9e-6`` in a logit, ``3.8e-3`` in the iGOS++ mask after 6
            iterations at 28 x 28 and ``1.5e-4`` in its insertion AUC
            (``benchmarks/records/2026-12-02_cpu2_batch_size_08d6dc8.json``). ``None`` (default) picks 8 on the CPU
            (where small batches run fastest) and 64 on a GPU.
        seed: seed of the ``torch.Generator`` made when :func:`explain` gets none: an integer
            from ``-(2**63)`` to ``2**64 - 1`` (what ``manual_seed`` accepts). Default 0.
        low_score_threshold: warn when the clean-image score of the target is below this
            (the paper's failure case). ``None`` disables the warning. Default 0.1.
        ls_fresh_base: evaluate the line search's starting objective with a fresh noise draw,
            as the authors' code does (one more ``n_terms x S`` forward pass per iteration).
            Default ``False``: reuse the objective of the gradient pass, which has the same
            expectation and costs nothing.
        track_scores: record, after every iteration, the noise-free scores of the deletion
            image ``Phi(I, B, M)`` and of the insertion image ``Phi(B, I, M)`` in
            :attr:`Explanation.history` (two forward images per image and iteration, counted
            in :attr:`Explanation.stats`). Default ``True``.
        progress: show a progress bar over iterations with the objective and the step.
            ``None`` (default): when the output is interactive (a terminal or a notebook
            kernel) and the environment variable ``TQDM_DISABLE`` is not set.
        accelerate: run the passes on a private copy of the model with its batch norms folded
            into the convolutions and channels-last memory (:func:`igospp.accelerate`),
            checked against the model on the clean images. Exact up to float rounding: per
            pass the logits of EfficientNet-Lite0 move by about ``1e-5``; over many iterations
            the line search's accept/reject decisions can amplify this into visibly different
            masks, as any change of summation order would. Default ``True``; ``False`` runs
            the caller's model as it is.
        ls_warm_start: (speed option: it changes the trajectory, so it is off by default,
            as are the four after it) start each image's line search at this factor times the step it
            accepted at the previous iteration (capped at ``ls_initial_step``) instead of
            at ``ls_initial_step`` every time. At least 1. Default ``None`` (off).
        ls_common_noise: evaluate the line-search trials with the noise draw of the gradient
            pass (common random numbers), so that the Armijo test compares the objective at
            two masks under the same noise. Keeps ``n_terms x S`` noise images per image in
            memory. Default ``False``.
        ls_ig_steps: integration intervals for the line-search trials (and their base
            value, evaluated afresh) instead of ``ig_steps``. Default ``None``.
        ls_candidates: successive steps of the search evaluated together in one batched
            pass (see :func:`igospp.backtracking_line_search`). The step taken is the first
            that passes the test, as in the one-at-a-time search, but the trials see other
            noise draws and up to ``ls_candidates - 1`` evaluations per iteration are spent
            past it: worth it on a GPU with spare capacity, not on a CPU. Default 1.
        autocast: run the model under ``torch.autocast`` in ``"bfloat16"`` or ``"float16"``.
            Fast only where the hardware has such units (recent GPUs; CPUs with AVX-512-BF16
            or AMX). Default ``None`` (the model's precision).
    """

    method: Method = "igospp"
    resolution: int | tuple[int, int] = 28
    iterations: int = None  # type: ignore[assignment]  # None: the method's value
    ig_steps: int = None  # type: ignore[assignment]
    l1: float | None = None
    l2: float = 20.0
    smoothness: Literal["tv", "btv"] = None  # type: ignore[assignment]
    btv_form: Literal["official", "symmetric"] = "official"
    tv_beta: float = 2.0
    btv_sigma: float = 0.01
    noise_std: float = 0.2
    ig_scale: float = None  # type: ignore[assignment]
    line_search: bool = True
    step_size: float = 1.6
    ls_initial_step: float = 1000.0
    ls_shrink: float = 0.2
    ls_armijo: float = 1e-4
    ls_min_step: float = 1e-5
    score: Literal["softmax", "logit"] = "softmax"
    blur_kernel_size: int = 51
    blur_sigma: float = 50.0
    blur_reference_size: int = 224
    batch_size: int | None = None
    seed: int = 0
    low_score_threshold: float | None = 0.1
    ls_fresh_base: bool = False
    track_scores: bool = True
    progress: bool | None = None
    accelerate: bool = True
    ls_warm_start: float | None = None
    ls_common_noise: bool = False
    ls_ig_steps: int | None = None
    ls_candidates: int = 1
    autocast: Literal["bfloat16", "float16"] | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__  # the dataclass is frozen: checked values are stored clean
        checks.choice("Config.method", self.method, METHODS)
        for name, value in METHOD_DEFAULTS[self.method].items():
            if getattr(self, name) is None:
                put(self, name, value)
        res = self.resolution
        if isinstance(res, (list, tuple)):
            if len(res) != 2:
                raise ValueError(f"Config.resolution must be an int or a pair (h, w), got {res!r}.")
            put(self, "resolution", tuple(checks.positive_int("Config.resolution", r) for r in res))
        else:
            put(self, "resolution", checks.positive_int("Config.resolution", res))
        put(self, "iterations", checks.positive_int("Config.iterations", self.iterations))
        put(self, "ig_steps", checks.positive_int("Config.ig_steps", self.ig_steps))
        if self.l1 is not None:
            checks.number("Config.l1", self.l1, low=0.0, strict=False)
        checks.number("Config.l2", self.l2, low=0.0, strict=False)
        checks.choice("Config.smoothness", self.smoothness, _SMOOTHNESS)
        checks.choice("Config.btv_form", self.btv_form, _BTV_FORMS)
        checks.number("Config.tv_beta", self.tv_beta, low=1.0, strict=False)  # below 1 the gradient at 0 is NaN
        checks.number("Config.btv_sigma", self.btv_sigma, low=0.0, strict=True)
        checks.number("Config.noise_std", self.noise_std, low=0.0, strict=False)
        checks.number("Config.ig_scale", self.ig_scale, low=0.0, strict=True)
        for name in ("line_search", "ls_fresh_base", "track_scores", "accelerate", "ls_common_noise"):
            checks.flag(f"Config.{name}", getattr(self, name))
        checks.number("Config.step_size", self.step_size, low=0.0, strict=True)
        checks.number("Config.ls_initial_step", self.ls_initial_step, low=0.0, strict=True)
        checks.number("Config.ls_shrink", self.ls_shrink, low=0.0, strict=True, high=1.0)
        checks.number("Config.ls_armijo", self.ls_armijo, low=0.0, strict=False, high=1.0)
        checks.number("Config.ls_min_step", self.ls_min_step, low=0.0, strict=True)
        if self.ls_min_step > self.ls_initial_step:
            raise ValueError(
                f"Config.ls_min_step ({self.ls_min_step}) must not exceed "
                f"Config.ls_initial_step ({self.ls_initial_step})."
            )
        checks.choice("Config.score", self.score, _SCORES)
        put(self, "blur_kernel_size", checks.positive_int("Config.blur_kernel_size", self.blur_kernel_size))
        if self.blur_kernel_size % 2 == 0:
            raise ValueError(f"Config.blur_kernel_size must be odd, got {self.blur_kernel_size}.")
        checks.number("Config.blur_sigma", self.blur_sigma, low=0.0, strict=True)
        put(self, "blur_reference_size", checks.positive_int("Config.blur_reference_size", self.blur_reference_size))
        if self.batch_size is not None:
            put(self, "batch_size", checks.positive_int("Config.batch_size", self.batch_size))
        put(self, "seed", checks.seed("Config.seed", self.seed))
        if self.low_score_threshold is not None:
            checks.number("Config.low_score_threshold", self.low_score_threshold)
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ValueError(f"Config.progress must be True, False or None (automatic), got {self.progress!r}.")
        if self.ls_warm_start is not None:
            checks.number("Config.ls_warm_start", self.ls_warm_start, low=1.0, strict=False)
        if self.ls_ig_steps is not None:
            put(self, "ls_ig_steps", checks.positive_int("Config.ls_ig_steps", self.ls_ig_steps))
        put(self, "ls_candidates", checks.positive_int("Config.ls_candidates", self.ls_candidates))
        if self.autocast is not None:
            checks.choice("Config.autocast", self.autocast, _AUTOCAST)
        if self.ls_common_noise and (self.ls_fresh_base or self.ls_ig_steps is not None):
            other = "ls_fresh_base=True" if self.ls_fresh_base else f"ls_ig_steps={self.ls_ig_steps}"
            raise ValueError(f"Config.ls_common_noise=True reuses the gradient pass's noise draw, which {other} "
                             "replaces by new draws; set one of the two.")

    # ------------------------------------------------------------------ presets
    @classmethod
    def mask(cls, resolution: int | tuple[int, int] = 28, **fields: Any) -> Config:
        """Fong & Vedaldi's "Mask": eq. (1) with TV, descended along the plain gradient.

        The plain gradient is the one-interval path (``ig_steps=1``: the only path point is
        the masked image itself). Fong & Vedaldi run 500 iterations; this library keeps its
        own line search instead of their Adam optimizer, so the methods differ only in the
        descent direction.
        """
        return cls._preset("mask", resolution, fields)

    @classmethod
    def igos(cls, resolution: int | tuple[int, int] = 28, **fields: Any) -> Config:
        """I-GOS (Qi et al. 2020): eq. (1) with TV, descended along the integrated gradient (eq. 2-3)."""
        return cls._preset("igos", resolution, fields)

    @classmethod
    def naive(cls, resolution: int | tuple[int, int] = 28, **fields: Any) -> Config:
        """"I-GOS + Ins (naive)", the official ``iGOS+``: the insertion term added to one mask, with BTV."""
        return cls._preset("naive", resolution, fields)

    @classmethod
    def insertion(cls, resolution: int | tuple[int, int] = 28, **fields: Any) -> Config:
        """The insertion term alone on one mask, with BTV (Table 3's "Insertion" row).

        Not in the official code; built as its natural analogue.
        """
        return cls._preset("insertion", resolution, fields)

    @classmethod
    def igospp(cls, resolution: int | tuple[int, int] = 28, **fields: Any) -> Config:
        """iGOS++: deletion and insertion masks, eq. (4)-(6), BTV (eq. 7), line search (eq. 8)."""
        return cls._preset("igospp", resolution, fields)

    @classmethod
    def preset(cls, method: str, resolution: int | tuple[int, int] = 28, **fields: Any) -> Config:
        """The preset named ``method`` (one of :data:`METHODS`)."""
        checks.choice("Config.method", method, METHODS)
        return getattr(cls, method)(resolution, **fields)

    @classmethod
    def _preset(cls, method: str, resolution: Any, fields: dict[str, Any]) -> Config:
        cls._check_names(fields)
        if "method" in fields:
            raise TypeError(f"Config.{method}() sets the method itself; use Config.preset(method, ...) for another.")
        return cls(method=method, resolution=resolution, **fields)

    @classmethod
    def _check_names(cls, fields: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise TypeError(f"Config has no field(s) {unknown}; valid fields are {sorted(names)}.")

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated like a new config).

        A new ``method`` brings its own values of the method-dependent fields
        (:data:`METHOD_DEFAULTS`: ``iterations``, ``ig_steps``, ``smoothness``, ``ig_scale``)
        wherever this config holds the old method's value; values you set yourself stay.

        >>> cfg = Config.igos().replace(method="igospp")
        >>> cfg.smoothness, cfg.ig_scale
        ('btv', 0.5)
        >>> Config.igos(smoothness="btv").replace(method="mask").smoothness
        'btv'
        """
        self._check_names(changes)
        method = changes.get("method", self.method)
        if method != self.method:
            checks.choice("Config.method", method, METHODS)
            old = METHOD_DEFAULTS[self.method]
            for name in old:
                if name not in changes and getattr(self, name) == old[name]:
                    changes[name] = None
        return dataclasses.replace(self, **changes)

    @property
    def mask_size(self) -> tuple[int, int]:
        """The mask resolution as a pair ``(h, w)``."""
        res = self.resolution
        return (res, res) if isinstance(res, int) else res

    @property
    def effective_l1(self) -> float:
        """``l1``, or the paper's choice when it is ``None`` (10 at 224 cells and above, else 1)."""
        if self.l1 is not None:
            return float(self.l1)
        return 10.0 if min(self.mask_size) >= 224 else 1.0

    def effective_batch_size(self, device: torch.device | str) -> int:
        """``batch_size``, or the default for ``device`` when it is ``None`` (8 on CPU, 64 on GPU)."""
        return resolve_batch_size(self.batch_size, device)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON records."""
        out = dataclasses.asdict(self)
        out["resolution"] = list(self.mask_size)
        out["effective_l1"] = self.effective_l1
        return out
