r"""Backtracking line search with the revised Armijo condition of eq. (8).

At iteration ``k`` with masks :math:`M^k` and direction :math:`d = TG(M^k)`, a step
:math:`\alpha` is accepted when

.. math::

    F(\mathrm{clamp}(M^k - \alpha d)) \le F(M^k) - c\,\alpha\,\|d\|^2 ,

where ``F`` is the noisy, path-averaged objective (eq. 8 sums over the integration
intervals). The authors' search, reproduced here, starts at :math:`\alpha_0 = 1000` at
every iteration, multiplies by 0.2 after each failure, uses ``c = 1e-4`` and stops once
the step falls below ``1e-5``: the steps tried are :math:`1000 \cdot 0.2^j`, at most 13
of them, and the last one (``4.096e-6``) is **taken even when it fails**. Each image
has its own step (shared by the deletion and insertion masks of iGOS++), and only the
images still searching are re-evaluated.

With ``candidates > 1`` (an option for GPUs, where one large pass costs about as much as
one small one) each round evaluates the next ``candidates`` steps of every image's
sequence in one call and takes the first that satisfies the condition: the step the
sequential search would take for the same loss values, at the price of evaluations past
it that the sequential search would not spend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from igospp import checks

__all__ = ["LineSearchResult", "backtracking_line_search", "step_sequence"]


@dataclass
class LineSearchResult:
    """Outcome of :func:`backtracking_line_search` for a batch.

    Attributes:
        step: ``(B,)`` the step taken by each image.
        trials: ``(B,)`` number of loss evaluations spent on each image.
        accepted: ``(B,)`` whether the Armijo condition held at the step taken (``False``
            means the floor step was taken anyway).
        loss: ``(B,)`` the loss evaluated at the step taken.
    """

    step: torch.Tensor
    trials: torch.Tensor
    accepted: torch.Tensor
    loss: torch.Tensor


def step_sequence(initial_step: float = 1000.0, shrink: float = 0.2, min_step: float = 1e-5) -> list[float]:
    """Every step the search may try, in order (the first below ``min_step`` included).

    Example:
        >>> import igospp
        >>> seq = igospp.step_sequence()
        >>> len(seq), seq[0], seq[-1]
        (13, 1000.0, 4.096000000000002e-06)
    """
    steps = [float(initial_step)]
    while steps[-1] >= min_step:
        steps.append(steps[-1] * shrink)
    return steps


def backtracking_line_search(
    loss_fn: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor],
    masks: Sequence[torch.Tensor],
    directions: Sequence[torch.Tensor],
    base_loss: torch.Tensor,
    *,
    initial_step: float | torch.Tensor = 1000.0,
    shrink: float = 0.2,
    armijo: float = 1e-4,
    min_step: float = 1e-5,
    candidates: int = 1,
) -> LineSearchResult:
    r"""Per-image backtracking search for a step satisfying eq. (8), batched.

    Args:
        loss_fn: ``loss_fn(trial_masks, index) -> (n,)``: the loss of the images ``index``
            (a ``(n,)`` long tensor) at ``trial_masks`` (a list with one ``(n, ...)`` tensor
            per mask). Evaluated only for images still searching.
        masks: current masks, each ``(B, ...)``.
        directions: descent directions, same shapes as ``masks``.
        base_loss: ``(B,)`` the loss at ``masks``.
        initial_step: first step tried: a number for every image, or a ``(B,)`` tensor with
            one per image (a warm start). Default 1000.
        shrink: factor applied after a failed trial, in (0, 1). Default 0.2.
        armijo: the constant ``c``. Default 1e-4.
        min_step: the search stops once the step is below this. Default 1e-5.
        candidates: successive steps of the sequence evaluated together per image and
            round (never past the first step below ``min_step``). Default 1: one trial
            per round, as in the authors' code; more trade extra evaluations for fewer,
            larger calls of ``loss_fn``.

    Returns:
        A :class:`LineSearchResult`. Trial masks are ``clamp(M - step * d, 0, 1)``; the
        condition is ``loss <= base_loss - armijo * step * ||d||^2`` where ``||d||^2`` sums
        over every element of every direction of the image.

    Example:
        >>> import torch, igospp
        >>> m = torch.full((2, 1, 1, 1), 1.0)
        >>> d = torch.tensor([1e-3, 0.0]).view(2, 1, 1, 1)        # image 1 cannot decrease
        >>> loss = lambda ms, idx: ms[0].flatten(1).sum(1)         # decreasing in the mask
        >>> r = igospp.backtracking_line_search(loss, [m], [d], loss([m], torch.arange(2)))
        >>> r.step.tolist(), r.trials.tolist(), r.accepted.tolist()
        ([1000.0, 1000.0], [1, 1], [True, True])
        >>> bowl = lambda ms, idx: (ms[0].flatten(1).sum(1) - 0.5) ** 2   # lowest at mask 0.5
        >>> d = torch.full((1, 1, 1, 1), 1.0)
        >>> one = igospp.backtracking_line_search(bowl, [m[:1]], [d], bowl([m[:1]], torch.arange(1)))
        >>> four = igospp.backtracking_line_search(bowl, [m[:1]], [d], bowl([m[:1]], torch.arange(1)), candidates=4)
        >>> round(one.step.item(), 4), torch.equal(one.step, four.step), one.trials.item(), four.trials.item()
        (0.32, True, 6, 8)
    """
    candidates = checks.positive_int("candidates", candidates)
    batch = base_loss.shape[0]
    device = base_loss.device
    sq_norm = sum(d.detach().flatten(1).pow(2).sum(dim=1) for d in directions)
    slope = -armijo * sq_norm
    if isinstance(initial_step, torch.Tensor):
        step = initial_step.detach().to(dtype=base_loss.dtype, device=device).expand(batch).clone()
    else:
        step = torch.full((batch,), float(initial_step), dtype=base_loss.dtype, device=device)
    trials = torch.zeros(batch, dtype=torch.long, device=device)
    accepted = torch.zeros(batch, dtype=torch.bool, device=device)
    loss = torch.empty_like(base_loss)
    index = torch.arange(batch, device=device)
    shape = [1] * (masks[0].dim() - 1)
    while index.numel() > 0:
        # the next `candidates` steps of each image's sequence, by repeated multiplication as
        # in the one-at-a-time search; a step is tried only if the one before it was >= min_step
        cand = [step[index]]
        for _ in range(candidates - 1):
            cand.append(cand[-1] * shrink)
        cand_t = torch.stack(cand, dim=1)                                   # (n, k)
        tried = torch.ones_like(cand_t, dtype=torch.bool)
        tried[:, 1:] = (cand_t[:, :-1] >= min_step).cummin(dim=1).values
        rows, cols = tried.nonzero(as_tuple=True)
        img, s = index[rows], cand_t[rows, cols]
        trial = [(m[img] - s.view(-1, *shape) * d[img]).clamp(0.0, 1.0) for m, d in zip(masks, directions, strict=True)]
        value = loss_fn(trial, img).detach().to(base_loss.dtype)
        ok = torch.zeros_like(tried)
        ok[rows, cols] = value <= base_loss[img] + s * slope[img]
        values = torch.zeros_like(cand_t)
        values[rows, cols] = value
        trials[index] += tried.sum(dim=1)
        found = ok.any(dim=1)
        # the first accepted candidate, else the last one tried
        col = torch.where(found, ok.int().argmax(dim=1), tried.sum(dim=1) - 1)
        pick = torch.arange(index.shape[0], device=device)
        step[index] = cand_t[pick, col]
        loss[index] = values[pick, col]
        accepted[index] = found
        index = index[~found & (step[index] >= min_step)]
        step[index] *= shrink
    return LineSearchResult(step=step, trials=trials, accepted=accepted, loss=loss)
