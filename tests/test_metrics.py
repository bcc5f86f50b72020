"""The metrics: insertion and deletion (closed-form curves, the authors' numbers, protocol presets), the
similarity of two maps (rank correlation, SSIM) and the top fraction of a map."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import igospp
from igospp.metrics import PROTOCOLS, Protocol, insertion_deletion, rank_correlation, ssim, top_fraction


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
def test_igospp_protocol_step_counts(s, step, points, last):
    # step = N // 50 cells, then range(0, N, step) (khorrams/IGOS_pp at bbd49e3, main.py:69 and
    # methods_helper.py:249-257)
    model = ConstantModel(0.3)
    saliency = torch.rand(1, 1, s, s, generator=torch.Generator().manual_seed(s))
    res = insertion_deletion(model, torch.zeros(1, 3, 224, 224), saliency, target=0)
    assert res.step == step and res.fractions.numel() == points and res.units == s * s
    assert res.fractions[0] == 0 and res.fractions[-1] == 1
    assert round((res.fractions[-1] - res.fractions[-2]).item() * s * s) == last


def test_constant_model_gives_p_and_the_official_legacy_value():
    # the logged score adds the count N - last instead of score x count on the last step
    # (khorrams/IGOS_pp at bbd49e3, methods_helper.py:264-265 and 274-275); RISE's trapezoid gives p
    # (eclique/RISE at d91ea00, evaluation.py:27)
    p = 0.3
    g = torch.Generator().manual_seed(0)
    res = insertion_deletion(ConstantModel(p), torch.randn(2, 3, 224, 224, generator=g),
                             torch.rand(2, 1, 28, 28, generator=g), target=0)
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
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 224, 224, generator=g)
    res = insertion_deletion(model, x, torch.rand(1, 1, 7, 7, generator=g), target=0, protocol="rise")
    assert res.units == 224 * 224 and res.step == 224 and res.fractions.numel() == 225
    assert res.legacy_deletion_auc is None and res.protocol["name"] == "rise"
    sub = igospp.metrics.substrate("rise_blur", x)
    assert sub.shape == x.shape and sub[0, :, 100:110, 100:110].std() < x[0, :, 100:110, 100:110].std()
    assert torch.equal(igospp.metrics.substrate("zeros", x), torch.zeros_like(x))


def test_result_records_protocol_and_direction():
    res = insertion_deletion(ConstantModel(0.4), torch.zeros(1, 3, 32, 32),
                             torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2)), target=0,
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
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    exp = igospp.explain(model, x, config=igospp.Config.igospp(resolution=8, iterations=2, ig_steps=2,
                                                               low_score_threshold=None))
    cells = insertion_deletion(model, x, exp.cell_saliency, target=exp.target)
    pixels = insertion_deletion(model, x, exp.saliency, target=exp.target, unit="pixels")
    assert cells.units == 64 and pixels.units == 32 * 32
    assert torch.isfinite(cells.deletion_auc).all() and torch.isfinite(pixels.insertion_auc).all()


def _rand(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


#: Bad arguments of insertion_deletion on two 16 x 16 images: (keywords, error, message). Each is
#: refused before any model pass, naming the argument.
BAD_METRIC_ARGUMENTS = [
    (dict(saliency=_rand(1, 1, 4, 4)), ValueError, r"saliency must have shape \(B, 1, h, w\) with B = 2"),
    (dict(saliency=_rand(2, 1, 32, 32)), ValueError, "saliency is 32 x 32, larger than the images"),
    (dict(saliency=torch.full((2, 1, 4, 4), float("nan"))), ValueError, "saliency contains NaN"),
    (dict(saliency=[[0.0]]), TypeError, "saliency must be a tensor"),
    (dict(saliency=torch.zeros(2, 1, 0, 0)), ValueError, r"saliency is empty \(shape \(2, 1, 0, 0\)\)"),
    (dict(saliency=torch.zeros(2, 0, 0)), ValueError, r"saliency is empty \(shape \(2, 1, 0, 0\)\)"),
    (dict(saliency=torch.zeros(2, 1, 4, 0)), ValueError, "saliency is empty"),
    (dict(saliency=torch.zeros(2, 1, 0, 4), unit="pixels"), ValueError, "saliency is empty"),
    (dict(protocol="paper"), ValueError, "unknown protocol 'paper'"),
    (dict(protocol=3), TypeError, "protocol must be a name or a Protocol"),
    (dict(steps=3), TypeError, "Protocol has no field"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(batch_size=-1), ValueError, "batch_size must be a positive integer"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_METRIC_ARGUMENTS)
def test_insertion_deletion_refuses_bad_arguments_before_any_work(kwargs, error, message):
    class Untouchable(nn.Module):
        def forward(self, x):
            raise AssertionError("the model ran before the arguments were checked")

    kwargs = {"saliency": _rand(2, 1, 4, 4), **kwargs}
    with pytest.raises(error, match=message):
        insertion_deletion(Untouchable(), torch.zeros(2, 3, 16, 16), **kwargs)


#: Bad Protocol fields: (keywords, message).
BAD_PROTOCOLS = [
    (dict(unit="superpixels"), "Protocol.unit"),
    (dict(deletion_substrate="mean"), "Protocol.deletion_substrate"),
    (dict(step=0), "Protocol.step"),
    (dict(step=None, n_steps=None), "Protocol needs step"),
    (dict(score="prob"), "Protocol.score"),
]


@pytest.mark.parametrize("kwargs, message", BAD_PROTOCOLS)
def test_protocol_refuses_bad_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**kwargs)


# ----------------------------------------------------------------------------- similarity: rank correlation and SSIM
def test_rank_correlation_of_known_pairs():
    a = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert rank_correlation(a, torch.exp(a)).item() == pytest.approx(1.0)
    assert rank_correlation(a, -a).item() == pytest.approx(-1.0)
    assert rank_correlation(a, -a, absolute=True).item() == pytest.approx(1.0)
    assert torch.isnan(rank_correlation(a, torch.ones_like(a))).all()


@given(st.integers(0, 10_000), st.integers(1, 3))
def test_rank_correlation_matches_scipy_with_ties(seed, batch):
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 5, (batch, 1, 6, 5), generator=g).double()
    b = a + torch.randint(0, 3, (batch, 1, 6, 5), generator=g)
    ours = rank_correlation(a, b)
    for i in range(batch):
        ref = spearmanr(a[i].flatten(), b[i].flatten()).statistic
        assert ours[i].item() == pytest.approx(ref, nan_ok=True)


@given(st.integers(0, 10_000))
def test_ssim_matches_scikit_image(seed):
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, 1, 20, 17, generator=g, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(2, 1, 20, 17, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(a, b, normalize=False)
    for i in range(2):
        ref = structural_similarity(a[i, 0].numpy(), b[i, 0].numpy(), gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0)
        assert ours[i].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_is_one_on_identical_maps_and_invariant_to_scale_when_normalised():
    a = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert ssim(a, a).item() == pytest.approx(1.0)
    assert ssim(a, 5 * a + 2).item() == pytest.approx(1.0)
    assert ssim(a, 1 - a).item() < 0


def test_similarity_inputs_are_checked():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, 12, 12, generator=g)
    with pytest.raises(ValueError, match="same shape.*upsample"):
        ssim(a, torch.rand(1, 1, 11, 12, generator=g))
    with pytest.raises(ValueError, match=r"\(B, 1, h, w\)"):
        rank_correlation(a[0], a[0])
    small = torch.rand(1, 1, 7, 7, generator=g)
    with pytest.raises(ValueError, match="smaller than the 11 x 11 window"):
        ssim(small, small)

# ----------------------------------------------------------------------------- localization: the top fraction
@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (3, 1, 7, 5)])
@pytest.mark.parametrize("fraction", [0.06, 0.12, 0.5, 1.0])
def test_top_fraction_keeps_exactly_the_highest_pixels(shape, fraction):
    sal = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    keep = top_fraction(sal, fraction)
    k = max(1, round(fraction * shape[2] * shape[3]))
    assert keep.shape == sal.shape and (keep.flatten(1).sum(1) == k).all()
    for b in range(shape[0]):                                 # every kept pixel outranks every dropped one
        kept, dropped = sal[b][keep[b] == 1], sal[b][keep[b] == 0]
        assert dropped.numel() == 0 or kept.min() > dropped.max()


def test_top_fraction_rejects_bad_input():
    sal = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for bad in (0.0, -0.5, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="^fraction "):
            top_fraction(sal, bad)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        top_fraction(sal[0, 0], 0.5)
