"""Insertion and deletion: closed-form curves, the official code's numbers, protocol presets."""

import math

import pytest
import torch
from torch import nn

import igospp
from igospp.metrics import PROTOCOLS, Protocol, insertion_deletion


class ConstantModel(nn.Module):
    """Softmax probability p for class 0 whatever the input."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.logit = math.log(p / (1 - p))

    def forward(self, x):
        z = torch.zeros(x.shape[0], 2, dtype=x.dtype, device=x.device)
        z[:, 0] = self.logit
        return z


class RegionModel(nn.Module):
    """Output 0 is the mean of channel 0 over a region: with the image 1 there and the substrate 0,
    it is the fraction of the region's pixels still showing the image."""

    def __init__(self, rows: slice, cols: slice) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols

    def forward(self, x):
        s = x[:, 0, self.rows, self.cols].mean(dim=(1, 2))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


@pytest.mark.parametrize("s, step, points, last", [(224, 1003, 52, 26), (112, 250, 52, 44), (56, 62, 52, 36),
                                                   (28, 15, 54, 4), (14, 3, 67, 1), (7, 1, 50, 1)])
def test_igospp_protocol_step_counts(s, step, points, last):  # official-algorithm.md 6.1 table
    model = ConstantModel(0.3)
    res = insertion_deletion(model, torch.zeros(1, 3, 224, 224), torch.rand(1, 1, s, s), target=0)
    assert res.step == step and res.fractions.numel() == points and res.units == s * s
    assert res.fractions[0] == 0 and res.fractions[-1] == 1
    assert round((res.fractions[-1] - res.fractions[-2]).item() * s * s) == last


def test_constant_model_gives_p_and_the_official_legacy_value():  # 10.1.9
    p = 0.3
    res = insertion_deletion(ConstantModel(p), torch.randn(2, 3, 224, 224), torch.rand(2, 1, 28, 28), target=0)
    assert torch.allclose(res.deletion_auc, torch.full((2,), p, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(res.insertion_auc, torch.full((2,), p, dtype=torch.float64), atol=1e-6)
    legacy = 780 / 784 * p + 4 / 784
    assert torch.allclose(res.legacy_deletion_auc, torch.full((2,), legacy, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(res.legacy_insertion_auc, torch.full((2,), legacy, dtype=torch.float64), atol=1e-6)


def _region_problem(unit_pixels=True):
    images = torch.zeros(1, 3, 16, 16)
    images[:, 0, 4:8, 2:10] = 1.0                 # region R: 32 pixels
    model = RegionModel(slice(4, 8), slice(2, 10))
    ideal = torch.zeros(1, 1, 16, 16)
    ideal[:, :, 4:8, 2:10] = 1.0
    return model, images, ideal


def test_region_model_gives_the_closed_form_curves():
    model, images, ideal = _region_problem()
    res = insertion_deletion(model, images, ideal, target=lambda out: out[:, 0], protocol="rise", step=8,
                             deletion_substrate="zeros", insertion_substrate="zeros")
    removed = res.fractions * 256
    expected_del = torch.clamp(1 - removed / 32, min=0)
    assert torch.allclose(res.deletion[0], expected_del, atol=1e-6)
    assert torch.allclose(res.insertion[0], 1 - expected_del, atol=1e-6)
    assert res.deletion_auc.item() == pytest.approx(32 / (2 * 256), abs=1e-6)
    assert res.insertion_auc.item() == pytest.approx(1 - 32 / (2 * 256), abs=1e-6)


def test_ideal_ranking_beats_the_reversed_one():
    model, images, ideal = _region_problem()
    kw = dict(target=lambda out: out[:, 0], protocol="rise", step=8, deletion_substrate="zeros",
              insertion_substrate="zeros")
    good = insertion_deletion(model, images, ideal, **kw)
    bad = insertion_deletion(model, images, 1 - ideal, **kw)
    assert good.deletion_auc < bad.deletion_auc and good.insertion_auc > bad.insertion_auc
    assert bad.deletion_auc.item() == pytest.approx(1 - 32 / (2 * 256), abs=1e-6)


def test_cells_are_upsampled_with_soft_edges_like_the_official_code():
    images = torch.zeros(1, 1, 8, 8)
    images[..., :4, :4] = 1.0
    seen = []

    class Recorder(nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 2)

    sal = torch.zeros(1, 1, 2, 2)
    sal[0, 0, 0, 0] = 1.0                                          # the top-left cell is most salient
    insertion_deletion(Recorder(), images, sal, target=0, protocol="igospp", step=1, deletion_substrate="zeros",
                       batch_size=100)
    after_one = seen[-1][1, 0]                                     # deletion image after the first step
    keep = igospp.upsample(torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]]), (8, 8))[0, 0]
    assert torch.allclose(after_one, images[0, 0] * keep)
    assert 0 < after_one[2, 2] < 1                                 # soft edge inside the block


def test_protocol_presets_match_their_spec():
    ig, rise = PROTOCOLS["igospp"], PROTOCOLS["rise"]
    assert (ig.deletion_substrate, ig.insertion_substrate, ig.unit, ig.n_steps, ig.score, ig.legacy) == \
        ("blur", "blur", "cells", 50, "softmax", True)
    assert (ig.blur_kernel_size, ig.blur_sigma) == (51, 50.0)
    assert (rise.deletion_substrate, rise.insertion_substrate, rise.unit, rise.step, rise.score, rise.legacy) == \
        ("zeros", "rise_blur", "pixels", 224, "softmax", False)
    assert (rise.rise_kernel_size, rise.rise_sigma) == (11, 5.0)
    k = igospp.metrics.rise_blur_kernel()
    assert k.shape == (11, 11) and k.sum().item() == pytest.approx(1.0)
    assert (k[5, 5] / k[0, 0]).item() == pytest.approx(1.14, abs=0.01)


def test_rise_protocol_on_224_pixels_and_substrates():
    model = ConstantModel(0.5)
    x = torch.randn(1, 3, 224, 224)
    res = insertion_deletion(model, x, torch.rand(1, 1, 7, 7), target=0, protocol="rise")
    assert res.units == 224 * 224 and res.step == 224 and res.fractions.numel() == 225
    assert res.legacy_deletion_auc is None and res.protocol["name"] == "rise"
    sub = igospp.metrics.substrate("rise_blur", x)
    assert sub.shape == x.shape and sub[0, :, 100:110, 100:110].std() < x[0, :, 100:110, 100:110].std()
    assert torch.equal(igospp.metrics.substrate("zeros", x), torch.zeros_like(x))


def test_result_records_protocol_and_direction():
    res = insertion_deletion(ConstantModel(0.4), torch.zeros(1, 3, 32, 32), torch.rand(1, 1, 4, 4), target=0,
                             step=2)
    assert res.protocol["step"] == 2 and res.protocol["unit"] == "cells" and "stable" in res.protocol["ranking"]
    assert res.score_direction == {"deletion": "lower is better", "insertion": "higher is better"}
    assert res.target.tolist() == [0]


def test_ties_are_broken_in_raster_order_and_chunks_do_not_matter():
    model, images, _ = _region_problem()
    flat = torch.zeros(1, 1, 16, 16)                       # all tied: raster order
    kw = dict(target=lambda out: out[:, 0], protocol="rise", step=16, deletion_substrate="zeros",
              insertion_substrate="zeros")
    a = insertion_deletion(model, images, flat, batch_size=1, **kw)
    b = insertion_deletion(model, images, flat, batch_size=64, **kw)
    assert torch.equal(a.deletion, b.deletion) and torch.equal(a.insertion, b.insertion)
    # rows 0-3 go first (no region pixel), then rows 4-7 each remove 8 region pixels
    assert a.deletion[0, :5].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0] and a.deletion[0, 5].item() == 0.75


def test_metric_on_an_explanation_end_to_end():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten()).eval()
    x = torch.randn(2, 3, 32, 32)
    exp = igospp.explain(model, x, config=igospp.Config.igospp(resolution=8, iterations=2, ig_steps=2,
                                                               low_score_threshold=None))
    cells = insertion_deletion(model, x, exp.cell_saliency, target=exp.target)
    pixels = insertion_deletion(model, x, exp.saliency, target=exp.target, unit="pixels")
    assert cells.units == 64 and pixels.units == 32 * 32
    assert torch.isfinite(cells.deletion_auc).all() and torch.isfinite(pixels.insertion_auc).all()


def test_bad_arguments():
    model = ConstantModel(0.5)
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"saliency must have shape \(B, 1, h, w\) with B = 2"):
        insertion_deletion(model, x, torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="larger than the images"):
        insertion_deletion(model, x, torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        insertion_deletion(model, x, torch.full((2, 1, 4, 4), float("nan")))
    with pytest.raises(TypeError, match="saliency must be a tensor"):
        insertion_deletion(model, x, [[0.0]])
    with pytest.raises(ValueError, match="unknown protocol 'paper'"):
        insertion_deletion(model, x, torch.rand(2, 1, 4, 4), protocol="paper")
    with pytest.raises(TypeError, match="no field"):
        insertion_deletion(model, x, torch.rand(2, 1, 4, 4), steps=3)
    with pytest.raises(ValueError, match="Protocol.unit"):
        Protocol(unit="superpixels")
    with pytest.raises(ValueError, match="Protocol.deletion_substrate"):
        Protocol(deletion_substrate="mean")
    with pytest.raises(ValueError, match="Protocol.step"):
        Protocol(step=0)
