"""Small analytic models whose exact behaviour is known, shared by the tests."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings
from PIL import Image
from torch import nn

import igospp
from igospp.models import ModelBundle

# Property tests draw the same examples on every run, so CI is reproducible.
settings.register_profile("igospp", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("igospp")


class PatchModel(nn.Module):
    """Two classes whose logits depend only on the pixels of one rectangle.

    ``logit_0 = weight * mean(x[:, :, rows, cols])`` and ``logit_1 = -logit_0``: the softmax
    probability of class 0 is ``sigmoid(2 * logit_0)``, raised by bright pixels in the patch
    and blind to everything outside it.
    """

    def __init__(self, rows: slice, cols: slice, weight: float = 4.0) -> None:
        super().__init__()
        self.rows, self.cols, self.weight = rows, cols, weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.weight * x[:, :, self.rows, self.cols].mean(dim=(1, 2, 3))
        return torch.stack([s, -s], dim=1)


class SmoothModel(nn.Module):
    """A small smooth convolutional classifier (tanh activations), seeded, any input size."""

    def __init__(self, channels: int = 3, classes: int = 5, seed: int = 0, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(channels, 6, 3, padding=1)
        self.head = nn.Linear(6 * 4 * 4, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.to(dtype)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x))
        h = nn.functional.adaptive_avg_pool2d(h, 4)
        return self.head(h.flatten(1))


class SingleLogitModel(nn.Module):
    """A binary classifier with one output logit (sigmoid head), as in medical imaging."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.inner = SmoothModel(channels=channels, classes=1, seed=3, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.fixture
def smooth_model() -> SmoothModel:
    return SmoothModel()


@pytest.fixture
def images64() -> torch.Tensor:
    """Two float64 3 x 16 x 20 images (non-square on purpose)."""
    return torch.randn(2, 3, 16, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


# ----------------------------------------------------------------------------- notebooks and the built book
def pytest_addoption(parser):
    parser.addoption("--book", action="store_true", default=False,
                     help="run the browser checks of the built book (_build/html); needs Debian's chromium")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--book"):
        return
    skip = pytest.mark.skip(reason="browser checks run with --book after `make book`")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def pytest_collectstart(collector):
    """nbval: compare text outputs only; figures, widgets and warnings on stderr vary by design."""
    if collector.__class__.__name__ == "IPyNbFile":
        collector.skip_compare += ("stderr", "image/svg+xml", "application/javascript",
                                   "application/papermill.record/image/png", "text/html",
                                   "application/vnd.jupyter.widget-state+json")


#: The classes of :func:`tiny_bundle`.
CLASSES = ["tabby", "tiger cat", "Egyptian cat", "espresso", "cup"]


def tiny_bundle() -> ModelBundle:
    """A seeded convolutional classifier of five classes on 32 x 32 images: every method runs in a moment."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                          nn.Linear(64, len(CLASSES)))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return ModelBundle("tiny", model.eval().requires_grad_(False), (32, 32), class_names=CLASSES)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, image in igospp.sample_images(["chelsea", "coffee"]).items():
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


@pytest.fixture
def metric_batch_sizes(monkeypatch):
    """A spy on the runner's insertion/deletion metric: the list of the ``batch_size`` of every call."""
    from igospp.studies import benchmark

    seen, metric = [], benchmark.insertion_deletion

    def spy(*args, **kwargs):
        seen.append(kwargs["batch_size"])
        return metric(*args, **kwargs)

    monkeypatch.setattr(benchmark, "insertion_deletion", spy)
    return seen
