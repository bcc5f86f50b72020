r"""Path-averaged ("integrated") deletion and insertion scores, whose gradients are the integrated gradients.

The integrated gradient of eq. (2) is the gradient, with respect to the mask, of the
score averaged along a straight path of masked images:

.. math::

    \mathrm{Del}(M) = \frac1S \sum_{k=1}^{S} f_c\big(\Phi(I, \tilde I, \tfrac{k}{S} M) + \varepsilon_k\big),
    \qquad
    \mathrm{Ins}(M) = \frac1S \sum_{k=1}^{S} f_c\big(\Phi(\tilde I, I, \tfrac{k}{S} M) + \varepsilon_k\big)

with path coefficients :math:`k/S`, :math:`k = 1..S` (0 excluded, 1 included: a right
Riemann sum) and Gaussian noise :math:`\varepsilon_k` (std 0.2 in normalized units)
added after the composition. The deletion path runs from the baseline towards the
deletion image :math:`\Phi(I, \tilde I, M)`; the insertion path (eq. 5) runs from the
clean image towards the insertion image :math:`\Phi(\tilde I, I, M)`. The official
code's ``integrated_gradient`` is exactly ``autograd`` of these averages.

This module has two faces: small differentiable reference functions for teaching and
testing (:func:`deletion_path_score`, :func:`insertion_path_score`), and the chunked
engine :class:`PathEngine` that the optimizer uses to evaluate every term of an
iteration in as few batched passes as possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from igospp import checks
from igospp.composition import phi, upsample
from igospp.config import Config
from igospp.targets import Scorer, check_model_output, forward_clean

__all__ = [
    "path_coefficients",
    "path_images",
    "path_score",
    "deletion_path_score",
    "insertion_path_score",
    "PathTerm",
    "PathEngine",
    "Counter",
]


def path_coefficients(steps: int, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """The ``S`` path coefficients ``k / S`` for ``k = 1..S``.

    Example:
        >>> import igospp
        >>> igospp.path_coefficients(4)
        tensor([0.2500, 0.5000, 0.7500, 1.0000])
    """
    steps = checks.positive_int("steps", steps)
    return torch.arange(1, steps + 1, dtype=torch.float64, device=device).div(steps).to(dtype)


def _noise_rows(rows: int, shape: Sequence[int], std: float, generator: torch.Generator | None,
                like: torch.Tensor) -> torch.Tensor:
    """``(rows, *shape)`` ``N(0, std^2)`` noise from ``generator`` (on its own device), moved to ``like``.

    The rows are the draws one ``randn(shape)`` call per row would give, in order, so that
    the draws do not depend on how rows are grouped into chunks. On the CPU, where the normal
    sampler fills blocks of 16 values, one call for all rows gives exactly those draws when a
    row holds a multiple of 16 values; otherwise (and on other devices) rows are drawn one by one.
    """
    device = generator.device if generator is not None else like.device
    shape = tuple(shape)
    numel = math.prod(shape)
    if torch.device(device).type == "cpu" and numel % 16 == 0:
        draw = torch.randn((rows, *shape), generator=generator, dtype=like.dtype, device=device)
    else:
        draw = torch.stack([torch.randn(shape, generator=generator, dtype=like.dtype, device=device)
                            for _ in range(rows)])
    return draw.to(like.device).mul_(std)


def path_images(image: torch.Tensor, baseline: torch.Tensor, mask: torch.Tensor, steps: int,
                noise_std: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The ``S`` images :math:`\Phi(\text{image}, \text{baseline}, \tfrac{k}{S}\,\mathrm{Up}(M)) + \varepsilon_k`.

    Args:
        image: ``(B, C, H, W)``; the path ends at it where the mask is 1.
        baseline: ``(B, C, H, W)``.
        mask: ``(B, 1, h, w)`` at any resolution.
        steps: ``S``.
        noise_std: std of the additive Gaussian noise. Default 0.
        generator: the random source of the noise.

    Returns:
        ``(B, S, C, H, W)``. For deletion call ``path_images(I, B, M)``, for insertion
        ``path_images(B, I, M)``. Noise is drawn one path image at a time, image by image,
        in that order.

    Example:
        >>> import torch, igospp
        >>> I, B = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
        >>> path = igospp.path_images(I, B, torch.ones(1, 1, 2, 2), steps=4)
        >>> path.shape, path[0, :, 0, 0, 0].tolist()          # from the baseline towards the image
        (torch.Size([1, 4, 3, 4, 4]), [0.25, 0.5, 0.75, 1.0])
    """
    alphas = path_coefficients(steps, dtype=image.dtype, device=image.device)
    up = upsample(mask, tuple(image.shape[-2:]))
    out = torch.stack([phi(image, baseline, a * up) for a in alphas], dim=1)
    if noise_std > 0:
        out = out + _noise_rows(out.shape[0] * steps, out.shape[2:], noise_std, generator, out).view_as(out)
    return out


def _class_scorer(model: torch.nn.Module, images: torch.Tensor, target: object, score: str) -> Scorer:
    from igospp.targets import resolve_target

    with torch.no_grad():
        clean = forward_clean(model, images)
    return resolve_target(target, clean, score)


def path_score(model: torch.nn.Module, start: torch.Tensor, end: torch.Tensor, mask: torch.Tensor,
               scorer: Scorer, steps: int = 20, noise_std: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Mean score along the path :math:`\Phi(\text{start}, \text{end}, \tfrac{k}{S} M) + \varepsilon_k`.

    Differentiable in ``mask``; ``scorer`` turns the model's outputs into scores.

    Returns:
        ``(B,)``.
    """
    imgs = path_images(start, end, mask, steps, noise_std, generator)
    batch = imgs.shape[0]
    flat = imgs.flatten(0, 1)
    out = check_model_output(model(flat), flat.shape[0])
    index = torch.arange(batch, device=flat.device).repeat_interleave(steps)
    return scorer(out, index).view(batch, steps).mean(dim=1)


def deletion_path_score(model: torch.nn.Module, images: torch.Tensor, baseline: torch.Tensor,
                        mask: torch.Tensor, target: object = None, steps: int = 20,
                        noise_std: float = 0.0, generator: torch.Generator | None = None,
                        score: str = "softmax") -> torch.Tensor:
    r"""Path-averaged deletion score :math:`\mathrm{Del}(M)`; its mask gradient is eq. (2).

    Args:
        model: classifier returning ``(N, K)``.
        images: ``(B, C, H, W)`` normalized images :math:`I`.
        baseline: ``(B, C, H, W)`` baseline :math:`\tilde I`.
        mask: ``(B, 1, h, w)`` mask (may require grad).
        target: as in :func:`igospp.explain` (``None``: top-1 class of the clean image).
        steps: integration intervals ``S``. Default 20.
        noise_std: noise std in normalized units. Default 0 (the optimizer uses 0.2).
        generator: random source of the noise.
        score: ``"softmax"`` or ``"logit"`` for integer targets.

    Returns:
        ``(B,)`` differentiable in ``mask``.

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> x = torch.randn(1, 3, 8, 8)
        >>> m = torch.ones(1, 1, 4, 4, requires_grad=True)
        >>> s = igospp.deletion_path_score(model, x, igospp.blur_baseline(x), m, target=0)
        >>> (grad,) = torch.autograd.grad(s.sum(), m)      # the integrated gradient
        >>> grad.shape
        torch.Size([1, 1, 4, 4])
    """
    scorer = _class_scorer(model, images, target, score)
    return path_score(model, images, baseline, mask, scorer, steps, noise_std, generator)


def insertion_path_score(model: torch.nn.Module, images: torch.Tensor, baseline: torch.Tensor,
                         mask: torch.Tensor, target: object = None, steps: int = 20,
                         noise_std: float = 0.0, generator: torch.Generator | None = None,
                         score: str = "softmax") -> torch.Tensor:
    r"""Path-averaged insertion score :math:`\mathrm{Ins}(M)`; minus its mask gradient is eq. (5).

    Same arguments as :func:`deletion_path_score`; the path runs from the clean image
    (as :math:`k/S \to 0`) to the insertion image :math:`\Phi(\tilde I, I, M)`, in which
    the salient cells (``M = 0``) show the image and the rest show the baseline.

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> x = torch.randn(1, 3, 8, 8)
        >>> m = torch.ones(1, 1, 4, 4, requires_grad=True)
        >>> s = igospp.insertion_path_score(model, x, igospp.blur_baseline(x), m, target=0)
        >>> (grad,) = torch.autograd.grad(-s.sum(), m)     # eq. (5): minus the gradient of Ins
        >>> grad.shape
        torch.Size([1, 1, 4, 4])
    """
    scorer = _class_scorer(model, images, target, score)
    return path_score(model, baseline, images, mask, scorer, steps, noise_std, generator)


# --------------------------------------------------------------------------- engine
@dataclass(frozen=True)
class PathTerm:
    """One path-averaged score of an objective.

    Attributes:
        kind: ``"deletion"`` (path :math:`\\Phi(I, \\tilde I, \\alpha U)`) or ``"insertion"``
            (path :math:`\\Phi(\\tilde I, I, \\alpha U)`).
        masks: indices of the masks whose upsampled product is ``U``.
        sign: +1 if the score is minimized, -1 if maximized.
        name: label used in histories, e.g. ``"Del(Mx*My)"``.
    """

    kind: str
    masks: tuple[int, ...]
    sign: float
    name: str


@dataclass
class Counter:
    """Images actually sent through the model (what the cost of a method is made of)."""

    forward_images: int = 0
    backward_images: int = 0


class PathEngine:
    """Evaluates the path-averaged scores of several terms and images in chunked, batched passes.

    All ``n_images x n_terms x S`` path images of one call are enumerated image by image,
    term by term, step by step, and sent through the model ``batch_size`` at a time. Noise
    is drawn one path image at a time in that order, and per-image sums are accumulated in
    that order, so ``batch_size`` changes neither the noise nor the order of the sums: on a
    float64 model the results agree to ``1e-13`` for any batch size (``tests/test_speed.py``).
    What it can change is how the model's own kernels round: on EfficientNet-Lite0 (float32,
    CPU) chunks of 3 and of 8 differ by up to ``2.9e-6`` in a logit, and after 6 iterations of
    iGOS++ at 28 x 28 (whose line search took steps of up to 40 there) by up to ``3.8e-3`` in the
    mask (``benchmarks/records/2026-12-02_cpu2_batch_size_08d6dc8.json``). The gradient of a term with
    respect to its upsampled mask ``U`` is assembled from the input gradient of each path
    image: :math:`\\partial x_k / \\partial U = \\tfrac{k}{S}(A - C)` summed over channels.

    Args:
        model: classifier returning ``(N, K)``.
        images, baselines: ``(B, C, H, W)`` on the model's device.
        scorer: turns outputs into scores (:func:`igospp.resolve_target`).
        config: the settings the passes follow: ``ig_steps`` (``S``), ``noise_std`` (0
            disables the draws), ``batch_size`` (path images per model call; ``None``: the
            device's default), ``autocast`` and ``ls_common_noise`` (keep the noise of the last
            gradient pass so that a forward pass can reuse it, ``evaluate(..., reuse_noise=True)``).
            Default ``Config()``.
        generator: random source of the noise. Default ``None``: a generator on the images'
            device seeded with ``config.seed``.
        counter: where forward/backward image counts are added. Default: a new one
            (:attr:`counter`).

    Example:
        >>> import torch, igospp
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> scorer = igospp.resolve_target(0, model(x), "softmax")
        >>> engine = igospp.PathEngine(model, x, igospp.blur_baseline(x), scorer, igospp.Config(ig_steps=4))
        >>> term = igospp.PathTerm("deletion", (0,), 1.0, "Del(M)")
        >>> values, grads = engine.evaluate([term], torch.ones(2, 1, 1, 8, 8), torch.arange(2), grad=True)
        >>> values.shape, grads.shape, engine.counter.backward_images
        (torch.Size([2, 1]), torch.Size([2, 1, 1, 8, 8]), 8)
    """

    def __init__(self, model: torch.nn.Module, images: torch.Tensor, baselines: torch.Tensor,
                 scorer: Scorer, config: Config | None = None, generator: torch.Generator | None = None,
                 counter: Counter | None = None) -> None:
        config = Config() if config is None else config
        self.model = model
        self.images = images
        self.baselines = baselines
        self.scorer = scorer
        self.config = config
        self.steps = config.ig_steps
        self.noise_std = config.noise_std
        self.generator = (torch.Generator(device=images.device).manual_seed(config.seed)
                          if generator is None else generator)
        self.batch_size = config.effective_batch_size(images.device)
        self.counter = Counter() if counter is None else counter
        self.autocast = getattr(torch, config.autocast) if config.autocast else None
        self.keep_noise = config.ls_common_noise
        self._noise: torch.Tensor | None = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.autocast is None:
            return check_model_output(self.model(x), x.shape[0])
        with torch.autocast(x.device.type, dtype=self.autocast):
            out = self.model(x)
        return check_model_output(out, x.shape[0]).to(x.dtype)

    def evaluate(self, terms: Sequence[PathTerm], upsampled: torch.Tensor, index: torch.Tensor,
                 grad: bool, *, steps: int | None = None, reuse_noise: bool = False,
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Path-averaged scores of ``terms`` for the images ``index``.

        Args:
            terms: the ``T`` terms.
            upsampled: ``(n, T, 1, H, W)`` the upsampled mask ``U`` of each term and image.
            index: ``(n,)`` which images (rows of ``self.images``) these are.
            grad: also return the gradient of each average with respect to its ``U``.
            steps: integration intervals for this call. Default ``None``: the engine's ``S``.
            reuse_noise: add the noise kept from the last gradient pass (which must have
                covered every image, with ``keep_noise=True``) instead of fresh draws.

        Returns:
            ``values (n, T)`` and, if ``grad``, ``grads (n, T, 1, H, W)`` (else ``None``).
        """
        n, n_terms = index.shape[0], len(terms)
        steps = self.steps if steps is None else steps
        device = self.images.device
        reuse_noise = reuse_noise and self.noise_std > 0   # without noise there is nothing to replay
        if reuse_noise and (self._noise is None or steps != self.steps):
            raise RuntimeError("reuse_noise needs a previous gradient pass over every image with the same "
                               "number of steps and keep_noise=True.")
        alphas = path_coefficients(steps, dtype=self.images.dtype, device=device)
        upsampled = upsampled.detach()
        scores = torch.empty(n, n_terms, steps, dtype=self.images.dtype, device=device)
        grads = torch.zeros_like(upsampled) if grad else None
        keep = grad and self.keep_noise and self.noise_std > 0
        kept = [] if keep else None
        is_deletion = torch.tensor([t.kind == "deletion" for t in terms], device=device)
        total = n * n_terms * steps
        for start in range(0, total, self.batch_size):
            rows = torch.arange(start, min(start + self.batch_size, total), device=device)
            i, t, k = rows // (n_terms * steps), (rows // steps) % n_terms, rows % steps
            img = index[i]
            deletion = is_deletion[t].view(-1, 1, 1, 1)
            first = torch.where(deletion, self.images[img], self.baselines[img])
            second = torch.where(deletion, self.baselines[img], self.images[img])
            alpha = alphas[k].view(-1, 1, 1, 1)
            x = phi(first, second, alpha * upsampled[i, t])
            if reuse_noise:
                x = x + self._noise[(img * n_terms + t) * steps + k]
            elif self.noise_std > 0:
                noise = _noise_rows(x.shape[0], x.shape[1:], self.noise_std, self.generator, x)
                if kept is not None:
                    kept.append(noise)
                x = x + noise
            if grad:
                x.requires_grad_(True)
                row_scores = self.scorer(self._forward(x), img)
                (gx,) = torch.autograd.grad(row_scores.sum() / steps, x)
                self.counter.backward_images += x.shape[0]
                contrib = alpha * (gx * (first - second)).sum(dim=1, keepdim=True)
                # Rows are added one at a time in order, so the sums do not depend on batch_size:
                # index_add_ does so on the CPU; elsewhere it uses atomics, whose order varies.
                slots = grads.view(n * n_terms, *grads.shape[2:])
                if slots.device.type == "cpu":
                    slots.index_add_(0, i * n_terms + t, contrib)
                else:
                    for j, slot in enumerate((i * n_terms + t).tolist()):
                        slots[slot] += contrib[j]
            else:
                row_scores = self.scorer(self._forward(x), img)
            self.counter.forward_images += x.shape[0]
            scores[i, t, k] = row_scores.detach().to(scores.dtype)
        if kept is not None:
            self._noise = torch.cat(kept) if n == self.images.shape[0] else None
        return scores.sum(dim=2) / steps, grads
