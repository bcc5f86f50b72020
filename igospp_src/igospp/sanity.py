"""Sanity checks for saliency maps (Adebayo et al., 2018), as the paper's "Sanity Check" runs them.

* **Model randomization**: re-initialise the layers of a trained model one after another, from
  the logits down (*cascading* randomization), explain the same images after each step and
  compare the maps with those of the trained model. A method that explains the *model* must
  change its maps; one that merely highlights edges of the *image* does not.
* **Label randomization**: explain a model trained on the true labels and one trained on
  randomly permuted labels (:func:`random_labels`); the maps should differ.

Similarities are per image: Spearman rank correlation (:func:`rank_correlation`) and SSIM
(:func:`ssim`) of maps min-max normalised to [0, 1].
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .inputs import check_images, model_device
from .targets import Target, check_model_output, resolve_target

__all__ = ["randomize_parameters", "cascading_randomization", "grouped_layers", "random_labels", "rank_correlation",
           "ssim", "model_randomization_test", "RandomizationTest", "Explainer"]

#: A saliency method: ``(model, images (B, C, H, W), target) -> saliency (B, 1, h, w)``, like
#: the objects of :mod:`igospp.baselines`.
Explainer = Callable[[nn.Module, torch.Tensor, Target], torch.Tensor]


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters directly, in the order they were registered (input to output)."""
    return [(name, m) for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]


def randomize_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Replace each parameter that ``module`` owns by Gaussian draws with the tensor's own mean and std (in place).

    Keeping each tensor's scale keeps the activations of the randomized network in a normal
    range, so that what changes is the *learned structure*, not the magnitude (a tensor with a
    single element or zero spread keeps its mean).
    """
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            std = p.std().item() if p.numel() > 1 else 0.0
            draw = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device, p.dtype)
            p.copy_(p.mean() + std * draw)


def grouped_layers(model: nn.Module, steps: int = 6) -> list[list[str]]:
    """Steps for :func:`cascading_randomization` that cover every layer of a deep model in a few groups.

    The modules that own parameters, last to first: the output layer alone, then the others in
    ``steps - 1`` runs of (nearly) equal length.

    Example:
        >>> import torch, igospp.sanity as sanity
        >>> net = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(5)])
        >>> sanity.grouped_layers(net, 3)
        [['4'], ['3', '2'], ['1', '0']]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    owners = [name for name, _ in _layers(model)][::-1]
    if len(owners) <= steps:
        return [[name] for name in owners]
    rest, k = owners[1:], steps - 1
    bounds = [round(i * len(rest) / k) for i in range(k + 1)]
    return [[owners[0]]] + [rest[bounds[i]:bounds[i + 1]] for i in range(k)]


def _label(entry: str | Sequence[str]) -> str:
    names = [entry] if isinstance(entry, str) else list(entry)
    return names[0] if len(names) == 1 else (" + ".join(names) if len(names) == 2 else f"{names[0]} ... {names[-1]}")


def cascading_randomization(model: nn.Module, generator: torch.Generator | None = None,
                            layers: Sequence[str | Sequence[str]] | None = None
                            ) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(step name, model)`` with the layers randomized cumulatively, from the output down.

    ``model`` itself is not modified: one deep copy is randomized step by step and yielded
    after each step (so consume each step before the next, or copy it).

    Args:
        model: the trained model.
        generator: source of the random parameters; default ``torch.Generator().manual_seed(0)``.
        layers: the steps, in order. Each step is a module name (as in ``model.named_modules()``)
            or a list of names randomized together; every parameter in a named module's subtree
            is randomized (:func:`randomize_parameters`, each owning module with its own scale).
            Default: every module that owns parameters, one per step, last to first. Groups keep
            deep networks affordable: ``[["fc"], ["layer4"], ["layer3", "layer2"], ...]``.

    Example:
        >>> import torch, igospp.sanity as sanity
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
        >>> _ = net(torch.zeros(1, 1, 5, 5))
        >>> [name for name, _ in sanity.cascading_randomization(net)]
        ['2', '0']
        >>> [name for name, _ in sanity.cascading_randomization(net, layers=[["2", "0"]])]
        ['2 + 0']
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    owners = [name for name, _ in _layers(model)]
    steps: list[str | Sequence[str]] = owners[::-1] if layers is None else list(layers)
    named = dict(model.named_modules())
    unknown = [n for step in steps for n in ([step] if isinstance(step, str) else step)
               if n not in named or not any(True for _ in named[n].parameters())]
    if unknown:
        raise ValueError(f"layers {unknown} are not modules of the model that hold parameters; "
                         f"choose from model.named_modules(), e.g. {owners[-3:]}.")
    if not steps:
        raise ValueError("the model has no parameters to randomize.")
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    for step in steps:
        for name in [step] if isinstance(step, str) else step:
            for _, owner in _layers(modules[name]):
                randomize_parameters(owner, generator)
        yield _label(step), randomized


def random_labels(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The labels randomly permuted (same class balance, no relation to the images), for the label test.

    Example:
        >>> import torch, igospp.sanity as sanity
        >>> y = torch.arange(10) % 3
        >>> shuffled = sanity.random_labels(y, torch.Generator().manual_seed(0))
        >>> sorted(shuffled.tolist()) == sorted(y.tolist())
        True
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise TypeError("labels must be a 1-D tensor of class indices.")
    return labels[torch.randperm(labels.numel(), generator=generator)]


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 1:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be saliency maps of shape (B, 1, h, w), got {shape}.")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}; "
                         "upsample the coarser map first (igospp.upsample).")
    return a.detach().double().cpu(), b.detach().double().cpu()


def rank_correlation(a: torch.Tensor, b: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps, (B,), ties given their average rank.

    Args:
        a, b: saliency maps (B, 1, h, w) of the same shape.
        absolute: compare absolute values (for signed attributions).

    Returns:
        (B,) float64; NaN where a map is constant (its ranking is undefined).

    Example:
        >>> import torch, igospp.sanity as sanity
        >>> a = torch.arange(16.).reshape(1, 1, 4, 4)
        >>> sanity.rank_correlation(a, a ** 2).item(), sanity.rank_correlation(a, -a).item()
        (1.0, -1.0)
    """
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    out = torch.full((a.shape[0],), float("nan"), dtype=torch.float64)
    for i in range(a.shape[0]):
        x, y = a[i].flatten().numpy(), b[i].flatten().numpy()
        if absolute:
            x, y = np.abs(x), np.abs(y)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        out[i] = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    return out


def _normalise(t: torch.Tensor) -> torch.Tensor:
    lo = t.amin(dim=(1, 2, 3), keepdim=True)
    span = t.amax(dim=(1, 2, 3), keepdim=True) - lo
    return torch.where(span > 0, (t - lo) / span.clamp_min(1e-300), torch.zeros_like(t))


def _window_radius(sigma: float) -> int:
    """Half-width of the Gaussian SSIM window: truncated at 3.5 std, as scikit-image does."""
    return int(3.5 * sigma + 0.5)


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5, normalize: bool = True) -> torch.Tensor:
    """Structural similarity of each pair of maps, (B,), with a Gaussian window.

    The standard SSIM (Wang et al., 2004; K1 = 0.01, K2 = 0.03, data range 1) with a Gaussian
    window of std ``sigma`` truncated at 3.5 std (as scikit-image's ``gaussian_weights=True``),
    averaged over the positions where the window fits inside the map.

    Args:
        a, b: saliency maps (B, 1, h, w) of the same shape, at least 7 x 7.
        sigma: std of the window, in pixels.
        normalize: min-max normalise each map to [0, 1] first (a constant map becomes 0).

    Example:
        >>> import torch, igospp.sanity as sanity
        >>> a = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> sanity.ssim(a, a).tolist()
        [1.0, 1.0]
    """
    a, b = _pair(a, b)
    if normalize:
        a, b = _normalise(a), _normalise(b)
    radius = _window_radius(sigma)
    size = 2 * radius + 1
    if min(a.shape[-2:]) < size:
        raise ValueError(f"maps of {tuple(a.shape[-2:])} are smaller than the {size} x {size} window of "
                         f"sigma={sigma}; upsample them or use a smaller sigma.")
    g = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def filt(t: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(t, window)

    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


@dataclass
class RandomizationTest:
    """Result of :func:`model_randomization_test`.

    Attributes:
        layers: ``"trained"`` then the name of each layer randomized (cumulatively).
        saliency: one (B, 1, h, w) map per entry of ``layers``.
        rank_correlation: (L, B) Spearman correlation with the trained model's maps (row 0 is 1).
        ssim: (L, B) SSIM with the trained model's maps.
        score: (L, B) the target's score (softmax probability) on the clean images.
        target: (B,) the classes explained (those of the trained model, kept fixed; -1 for a callable target).
    """

    layers: list[str]
    saliency: list[torch.Tensor]
    rank_correlation: torch.Tensor
    ssim: torch.Tensor
    score: torch.Tensor
    target: torch.Tensor


def model_randomization_test(model: nn.Module, images: torch.Tensor, explainer: Explainer, target: Target = None,
                             generator: torch.Generator | None = None, layers: Sequence[str] | None = None,
                             sigma: float = 1.5) -> RandomizationTest:
    """Cascading model randomization: explain ``images`` with the trained and each randomized model.

    Args:
        model: the trained classifier (eval mode).
        images: (B, C, H, W) inputs as the model expects them.
        explainer: the saliency method, e.g. ``igospp.baselines.Optimized(igospp.Config.igospp(7))``.
        target: the classes to explain (see :func:`igospp.explain`); resolved once on the trained
            model and kept for every randomized one.
        generator: source of the random parameters.
        layers: see :func:`cascading_randomization`.
        sigma: SSIM window std (maps are upsampled to the image size first if they are smaller than the window).

    Returns:
        A :class:`RandomizationTest`.

    Example:
        >>> import torch, igospp, igospp.sanity as sanity
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
        >>> test = sanity.model_randomization_test(net, torch.rand(1, 3, 16, 16), igospp.baselines.GradCAM("0"))
        >>> test.layers, tuple(test.ssim.shape)
        (['trained', '4', '0'], (3, 1))
    """
    images = check_images(images)
    device, dtype = model_device(model, images)
    x = images.to(device, dtype)
    with torch.no_grad():
        scorer = resolve_target(target, check_model_output(model(x), x.shape[0]), "softmax")
    # Integer classes are fixed to the trained model's; callable targets are passed on as they are.
    fixed = target if callable(target) else scorer.classes.tolist()
    rows = torch.arange(x.shape[0], device=device)

    def run(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            score = scorer(check_model_output(net(x), x.shape[0]).float(), rows).cpu()
        s = explainer(net, x, fixed).detach().float().cpu()
        if min(s.shape[-2:]) < 2 * _window_radius(sigma) + 1:
            s = nn.functional.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return s, score

    reference, score0 = run(model)
    names, maps, scores = ["trained"], [reference], [score0]
    for name, randomized in cascading_randomization(model, generator, layers):
        s, sc = run(randomized)
        names.append(name)
        maps.append(s)
        scores.append(sc)
    rank = torch.stack([rank_correlation(reference, s) for s in maps])
    sim = torch.stack([ssim(reference, s, sigma=sigma) for s in maps])
    return RandomizationTest(names, maps, rank, sim, torch.stack(scores), scorer.classes.cpu())
