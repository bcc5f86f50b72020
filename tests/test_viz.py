"""Figures: the paper's overlay convention, one-channel images, curves and montages."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import igospp
from igospp import viz


def test_overlay_colours_salient_regions_red_and_keeps_the_photo_elsewhere():
    image = np.full((16, 16, 3), 0.5)
    sal = np.zeros((4, 4))
    sal[0, 0] = 1.0
    out = viz.overlay(image, sal)
    assert out.shape == (16, 16, 3) and out.min() >= 0 and out.max() <= 1
    assert out[0, 0, 0] > 0.45 and out[0, 0, 2] < 0.05                     # JET's top is red, no blue
    assert np.allclose(out[-1, -1], image[-1, -1])                          # not salient: the photo


def test_one_channel_and_tensor_images():
    grey = np.random.default_rng(0).random((10, 12))
    assert viz.as_rgb(grey).shape == (10, 12, 3)
    assert viz.as_rgb((grey * 255).astype(np.uint8)[..., None]).shape == (10, 12, 3)
    assert viz.as_rgb(torch.rand(1, 10, 12, generator=torch.Generator().manual_seed(0))).shape == (10, 12, 3)
    assert viz.overlay(grey, torch.rand(1, 1, 3, 3, generator=torch.Generator().manual_seed(1))).shape == (10, 12, 3)
    with pytest.raises(ValueError, match="image must be"):
        viz.as_rgb(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match="one map"):
        viz.normalize(np.zeros((2, 2, 3, 3)))


def test_normalize_handles_constant_maps():
    assert np.array_equal(viz.normalize(np.ones((3, 3))), np.zeros((3, 3)))
    assert viz.normalize(np.arange(4.0).reshape(2, 2), (5, 5)).shape == (5, 5)


def test_figures():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4)).eval()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 16, 16, generator=g)
    res = igospp.metrics.insertion_deletion(model, x, torch.rand(1, 1, 4, 4, generator=g))
    fig = viz.plot_curves(res, legacy=True)
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith(f"deletion  AUC {res.deletion_auc[0]:.3f} (logged")
    assert isinstance(viz.plot_overlay(np.zeros((8, 8)), np.eye(4), title="t"), Figure)
    assert len(viz.plot_mask(np.eye(4)).axes) == 2                          # the map and its colour bar
    fig = viz.montage(np.zeros((8, 8, 3)), {"a": {"7": np.eye(7)}, "b": {"28": np.eye(28)}},
                      scores={"a": {"7": "del 0.1"}})
    assert len(fig.axes) == 4 and fig.axes[0].get_xlabel() == "del 0.1"
    assert fig.get_size_inches()[0] == pytest.approx(viz.BOOK_WIDTH)
