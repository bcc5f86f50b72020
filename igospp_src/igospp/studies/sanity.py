"""Sanity checks for saliency maps (Adebayo et al., 2018), as the paper's "Sanity Check" runs them.

* **Model randomization**: re-initialize the layers of a trained model one after another, from
  the logits down (*cascading* randomization), explain the same images after each step and
  compare the maps with those of the trained model. A method that explains the *model* must
  change its maps; one that merely highlights edges of the *image* does not.
* **Label randomization**: explain a model trained on the true labels and one trained on
  randomly permuted labels (:func:`random_labels`); the maps should differ.

Similarities are per image: Spearman rank correlation and SSIM
(:mod:`igospp.metrics.similarity`) of maps min-max normalized to [0, 1].
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from igospp import checks
from igospp.inputs import check_images, model_device
from igospp.metrics.similarity import _window_radius, rank_correlation, ssim
from igospp.targets import Target, check_model_output, forward_clean, resolve_target

__all__ = ["randomize_parameters", "cascading_randomization", "grouped_layers", "random_labels",
           "model_randomization_test", "RandomizationTest", "Explainer"]

#: A saliency method: ``(model, images (B, C, H, W), target) -> saliency (B, 1, h, w)``, like
#: the objects of :mod:`igospp.methods`.
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
        >>> import torch, igospp.studies.sanity as sanity
        >>> net = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(5)])
        >>> sanity.grouped_layers(net, 3)
        [['4'], ['3', '2'], ['1', '0']]
    """
    steps = checks.positive_int("steps", steps)
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
        >>> import torch, igospp.studies.sanity as sanity
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
        >>> import torch, igospp.studies.sanity as sanity
        >>> y = torch.arange(10) % 3
        >>> shuffled = sanity.random_labels(y, torch.Generator().manual_seed(0))
        >>> sorted(shuffled.tolist()) == sorted(y.tolist())
        True
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1:
        raise TypeError("labels must be a 1-D tensor of class indices.")
    return labels[torch.randperm(labels.numel(), generator=generator)]


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
        explainer: the saliency method, e.g. ``igospp.methods.Optimized(igospp.Config.igospp(7))``.
        target: the classes to explain (see :func:`igospp.explain`); resolved once on the trained
            model and kept for every randomized one.
        generator: source of the random parameters.
        layers: see :func:`cascading_randomization`.
        sigma: SSIM window std (maps are upsampled to the image size first if they are smaller than the window).

    Returns:
        A :class:`RandomizationTest`.

    Example:
        >>> import torch, igospp, igospp.studies.sanity as sanity
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        ...                           torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
        >>> test = sanity.model_randomization_test(net, torch.rand(1, 3, 16, 16), igospp.methods.GradCAM("0"))
        >>> test.layers, tuple(test.ssim.shape)
        (['trained', '4', '0'], (3, 1))
    """
    images = check_images(images)
    device, dtype = model_device(model, images)
    x = images.to(device, dtype)
    with torch.no_grad():
        scorer = resolve_target(target, forward_clean(model, x), "softmax")
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
