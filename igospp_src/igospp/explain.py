"""The optimizer: one loop for Mask, I-GOS, the naive variant, insertion-only and iGOS++.

Each iteration (the authors' loop, ``methods.py:99-228`` of khorrams/IGOS_pp at ``bbd49e3``):

1. evaluate every path term of every image in one chunked forward/backward pass, giving
   the descent direction of each mask and the objective at the current masks;
2. choose a step per image by backtracking line search (eq. 8), starting from that
   objective, or take the fixed step;
3. ``M <- clamp(M - step * d, 0, 1)`` for every mask (one step per image shared by the
   deletion and insertion masks of iGOS++).

Masks start at 1 (nothing deleted). The result has low values where the image is
salient; :attr:`Explanation.saliency` is its upsampled complement for plotting and metrics.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from igospp.acceleration import accelerate
from igospp.checks import untouched
from igospp.composition import phi, upsample
from igospp.config import Config
from igospp.inputs import BaselineLike, check_images, check_resolution, model_device, resolve_baseline, warn_if_training
from igospp.line_search import backtracking_line_search
from igospp.objectives import Objective, mask_product
from igospp.paths import Counter, PathEngine
from igospp.targets import Target, check_model_output, forward_clean, resolve_target

__all__ = ["explain", "Explanation", "History", "Stats", "LowScoreWarning"]


class LowScoreWarning(UserWarning):
    """The model gives the explained class a low score on the clean image (the paper's failure case)."""


@dataclass
class History:
    """Per-iteration record of an optimization; every tensor is ``(T, B)`` unless stated.

    Attributes:
        objective: the objective at the start of each iteration (noisy path scores of the
            gradient pass plus the regularizer).
        step: the step taken.
        trials: line-search loss evaluations (0 with a fixed step).
        accepted: whether the Armijo condition held at the step taken.
        terms: ``(T, B, n_terms)`` the path-averaged scores of the gradient pass.
        term_names: names of those terms, e.g. ``["Del(Mx*My)", "Ins(Mx*My)", ...]``.
        deletion: the noise-free score of the deletion image :math:`\\Phi(I, \\tilde I, M)` after
            each iteration (lower is better); ``None`` when ``Config.track_scores`` is off.
        insertion: likewise for the insertion image :math:`\\Phi(\\tilde I, I, M)` (higher is better).
    """

    objective: torch.Tensor
    step: torch.Tensor
    trials: torch.Tensor
    accepted: torch.Tensor
    terms: torch.Tensor
    term_names: list[str]
    deletion: torch.Tensor | None = None
    insertion: torch.Tensor | None = None


@dataclass
class Stats:
    """What an explanation cost.

    Attributes:
        forward_images: images sent through the model (including those of backward passes
            and the clean-image pass that picks the target).
        backward_images: images whose input gradient was computed.
        seconds: wall-clock time of :func:`explain`.
        iterations: outer iterations run.
        line_search_evaluations: line-search loss evaluations, summed over images.
        acceleration: how the passes ran, e.g. ``"channels_last, 49 batch norms folded, 33 activations in place"``
            (see :attr:`Config.accelerate`).
    """

    forward_images: int
    backward_images: int
    seconds: float
    iterations: int
    line_search_evaluations: int
    acceleration: str = "contiguous, 0 batch norms folded, 0 activations in place"


@dataclass
class Explanation:
    """Result of :func:`explain`.

    Attributes:
        mask: ``(B, 1, h, w)`` in [0, 1], the paper's :math:`M` (:math:`M_{xy} = M_x M_y` for
            iGOS++); **low values are salient**.
        deletion_mask: ``(B, 1, h, w)`` :math:`M_x` (iGOS++ only, else ``None``).
        insertion_mask: ``(B, 1, h, w)`` :math:`M_y` (iGOS++ only, else ``None``).
        saliency: ``(B, 1, H, W)`` ``1 - Up(mask)`` at image size; **high values are salient**.
            This is what plots and metrics consume.
        target: ``(B,)`` the class explained (``-1`` for images explained with a callable target).
        clean_score: ``(B,)`` the target's score on the clean image.
        history: per-iteration record, see :class:`History`.
        stats: cost, see :class:`Stats`.
        config: the settings used (with the batch size that was used).
    """

    mask: torch.Tensor
    deletion_mask: torch.Tensor | None
    insertion_mask: torch.Tensor | None
    saliency: torch.Tensor
    target: torch.Tensor
    clean_score: torch.Tensor
    history: History
    stats: Stats
    config: Config = field(repr=False)

    @property
    def cell_saliency(self) -> torch.Tensor:
        """``(B, 1, h, w)`` ``1 - mask`` at mask resolution (high = salient): what the authors'
        metric ranks (:func:`igospp.metrics.insertion_deletion` with ``unit="cells"``)."""
        return 1 - self.mask


def _warn_low_scores(scores: torch.Tensor, threshold: float | None) -> None:
    if threshold is None:
        return
    low = (scores < threshold).nonzero().flatten().tolist()
    if low:
        values = ", ".join(f"{scores[i].item():.3g}" for i in low)
        warnings.warn(
            f"the target's score on the clean image is low for image(s) {low} ({values} < "
            f"low_score_threshold={threshold}). As in the paper's failure case, the optimized mask is "
            "then likely to be adversarial rather than informative: check its insertion curve.",
            LowScoreWarning,
            stacklevel=3,
        )


def explain(model: torch.nn.Module, images: torch.Tensor, target: Target = None, config: Config | None = None,
            baseline: BaselineLike = None, generator: torch.Generator | None = None) -> Explanation:
    r"""Optimize saliency masks for ``images`` with Mask, I-GOS, the naive variant, insertion-only or iGOS++.

    Args:
        model: a classifier mapping ``(N, C, H, W)`` normalized images to ``(N, K)`` outputs,
            in eval mode. Its device (first parameter) decides where the work runs. It is left
            as it was found (:func:`igospp.checks.untouched`): a model in training mode (which
            gets a warning) runs in training mode, but the running statistics of its batch norms
            and the ``.grad`` of its parameters are restored afterwards.
        images: ``(B, C, H, W)`` normalized images; any ``C``, any ``H x W``, any ``B``.
        target: what to explain, per image. ``None`` (default): the top-1 class on the
            clean image. An ``int`` class for all images; a sequence with one ``int`` or
            callable per image; or a callable mapping the model output ``(N, K)`` to
            ``(N,)`` scores (for sigmoid, single-logit or multi-label heads).
        config: a :class:`Config`; default ``Config.igospp()`` (28 x 28 masks).
        baseline: the image with "no evidence". ``None`` (default): the Gaussian blur of
            each image (51 x 51, sigma 50 at 224 px, scaled with the image size). Also a number
            (constant image), a tensor of the images' shape (or one ``(C, H, W)`` for all), or a
            callable ``f(images) -> baseline``.
        generator: source of every random draw (the integration-path noise). Default: a new
            generator on the model's device seeded with ``Config.seed``, so equal inputs give
            equal masks.

    Returns:
        An :class:`Explanation` (tensors on the device of ``images``).

    Raises:
        TypeError, ValueError: on bad input, before any optimization, naming the argument.

    Warns:
        TrainingModeWarning: a dropout or normalization layer of the model is in training mode.
        LowScoreWarning: the target's clean score is below ``Config.low_score_threshold``.

    Notes:
        Cost per iteration and image: ``n_terms x S`` forward+backward images (4S for
        iGOS++, S for I-GOS), plus ``n_terms x S`` forward images per line-search trial
        under ``torch.inference_mode``, plus two forward images for the tracked scores.
        The line search starts from the objective computed in the gradient pass, so its
        base value shares that pass's noise draw rather than a fresh one; the authors'
        code spends one more evaluation on a fresh draw (``Config.ls_fresh_base=True``).

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
        ...                             torch.nn.Flatten()).eval()
        >>> x = torch.randn(2, 3, 32, 32)
        >>> cfg = igospp.Config.igospp(resolution=8, iterations=2, ig_steps=4, low_score_threshold=None)
        >>> exp = igospp.explain(model, x, config=cfg)
        >>> exp.mask.shape, exp.saliency.shape, exp.deletion_mask.shape
        (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 32, 32]), torch.Size([2, 1, 8, 8]))
    """
    start_time = time.perf_counter()
    config = Config() if config is None else config
    if not isinstance(config, Config):
        raise TypeError(f"config must be an igospp.Config, got {type(config).__name__}; "
                        "build one with e.g. igospp.Config.igospp(resolution=28).")
    if not callable(model):
        hint = " Pass bundle.model, not the bundle." if hasattr(model, "model") else ""
        raise TypeError(f"model must be a callable torch module, got {type(model).__name__}.{hint}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")
    images = check_images(images)
    warn_if_training(model)
    out_device = images.device
    device, dtype = model_device(model, images)
    height, width = images.shape[-2:]
    check_resolution(config, height, width)

    with untouched(model), torch.inference_mode(False):
        x = images.detach().to(device=device, dtype=dtype).clone()
        base = resolve_baseline(baseline, x, config)
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(config.seed)
        counter = Counter()
        with torch.no_grad():
            clean_out = forward_clean(model, x)
        counter.forward_images += x.shape[0]
        if not torch.isfinite(clean_out).all():
            raise ValueError("the model's output on the clean images contains NaN or Inf; check the model "
                             "and the images' normalization.")
        scorer = resolve_target(target, clean_out, config.score)
        clean_score = scorer(clean_out, torch.arange(x.shape[0], device=device))
        _warn_low_scores(clean_score, config.low_score_threshold)

        config = config.replace(batch_size=config.effective_batch_size(device))
        fast = accelerate(model, x, clean_out, enabled=config.accelerate)
        engine = PathEngine(fast, x, base, scorer, config, generator, counter)
        objective = Objective(config, engine)
        masks, history = _optimize(objective)

    mask = mask_product(masks)
    stats = Stats(
        forward_images=counter.forward_images,
        backward_images=counter.backward_images,
        seconds=time.perf_counter() - start_time,
        iterations=config.iterations,
        line_search_evaluations=int(history.trials.sum().item()),
        acceleration=fast.description,
    )

    def to_out(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().to(out_device)

    return Explanation(
        mask=to_out(mask),
        deletion_mask=to_out(masks[0]) if len(masks) == 2 else None,
        insertion_mask=to_out(masks[1]) if len(masks) == 2 else None,
        saliency=to_out(1 - upsample(mask, (height, width))),
        target=to_out(scorer.classes),
        clean_score=to_out(clean_score),
        history=History(**{k: to_out(v) if isinstance(v, torch.Tensor) else v for k, v in vars(history).items()}),
        stats=stats,
        config=config,
    )


def _show_progress(progress: bool | None) -> bool:
    """``Config.progress``, with ``None`` meaning: interactive output and ``TQDM_DISABLE`` unset."""
    if progress is not None:
        return progress
    if os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false"):
        return False
    return "ipykernel" in sys.modules or bool(getattr(sys.stderr, "isatty", lambda: False)())


def _optimize(objective: Objective) -> tuple[list[torch.Tensor], History]:
    engine, config = objective.engine, objective.config
    x = engine.images
    batch = x.shape[0]
    index = torch.arange(batch, device=x.device)
    masks = [torch.ones(batch, 1, *config.mask_size, dtype=x.dtype, device=x.device)
             for _ in range(objective.num_masks)]
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in
                                          ("objective", "step", "trials", "accepted", "terms", "deletion", "insertion")}
    initial = torch.full((batch,), config.ls_initial_step, dtype=x.dtype, device=x.device)
    bar = tqdm(range(config.iterations), disable=not _show_progress(config.progress), desc=config.method,
               unit="it", leave=False)
    for it in bar:
        directions, value, terms = objective.direction(masks)
        if not torch.isfinite(value).all():
            raise FloatingPointError(f"the objective became NaN or Inf at iteration {it}; the model's scores "
                                     "are not finite on the masked images.")
        if config.line_search:
            if config.ls_ig_steps is not None or config.ls_fresh_base:
                base = objective.value(masks, index)
            else:
                base = value
            result = backtracking_line_search(objective.value, masks, directions, base,
                                              initial_step=initial, shrink=config.ls_shrink,
                                              armijo=config.ls_armijo, min_step=config.ls_min_step,
                                              candidates=config.ls_candidates)
            step, trials, accepted = result.step, result.trials, result.accepted
            if config.ls_warm_start is not None:
                initial = (step * config.ls_warm_start).clamp(max=config.ls_initial_step)
        else:
            step = torch.full((batch,), config.step_size, dtype=x.dtype, device=x.device)
            trials = torch.zeros(batch, dtype=torch.long, device=x.device)
            accepted = torch.ones(batch, dtype=torch.bool, device=x.device)
        s = step.view(-1, 1, 1, 1)
        masks = [(m - s * d).clamp(0.0, 1.0) for m, d in zip(masks, directions, strict=True)]
        for key, val in (("objective", value), ("step", step), ("trials", trials), ("accepted", accepted),
                         ("terms", terms)):
            rec[key].append(val.detach())
        if config.track_scores:
            deletion, insertion = _masked_scores(engine, mask_product(masks), index)
            rec["deletion"].append(deletion)
            rec["insertion"].append(insertion)
        bar.set_postfix(objective=f"{value.mean().item():.4g}", step=f"{step.median().item():.3g}", refresh=False)
    stacked = {k: torch.stack(v) if v else None for k, v in rec.items()}
    return masks, History(term_names=[t.name for t in objective.terms], **stacked)


def _masked_scores(engine: PathEngine, mask: torch.Tensor,
                   index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise-free scores of the deletion image ``Phi(I, B, M)`` and the insertion image ``Phi(B, I, M)``."""
    images, baselines = engine.images, engine.baselines
    with torch.inference_mode():
        both = torch.cat([phi(images, baselines, mask), phi(baselines, images, mask)])
        out = check_model_output(engine.model(both), both.shape[0])
        scores = engine.scorer(out, torch.cat([index, index]))
    engine.counter.forward_images += both.shape[0]
    return scores[: index.shape[0]].clone(), scores[index.shape[0]:].clone()
