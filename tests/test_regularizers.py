"""L1, TV and bilateral TV: the values and gradients the authors' code computes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import igospp


def _grad(fn, mask):
    mask = mask.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(mask).sum(), mask)
    return g


def test_regulariser_gradients_vanish_at_the_start():
    # abs() has gradient 0 at 0 and every difference is 0 at M = 1: the first direction is the integrated
    # gradient alone (khorrams/IGOS_pp at bbd49e3, methods.py:46, 132, 262 and methods_helper.py:20-54)
    ones = torch.ones(2, 1, 28, 28, dtype=torch.float64)
    image = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(_grad(igospp.l1_term, ones), torch.zeros_like(ones))
    assert torch.equal(_grad(igospp.tv, ones), torch.zeros_like(ones))
    assert torch.equal(_grad(lambda m: igospp.bilateral_tv(image, m), ones), torch.zeros_like(ones))
    for form in ("official", "symmetric"):
        def reg(m, form=form):
            return igospp.regularizer(image, m, l1=10.0, l2=20.0, smoothness="btv", form=form)
        assert torch.equal(_grad(reg, ones), torch.zeros_like(ones))


def test_l1_is_a_mean_with_gradient_minus_one_over_cells():
    # L1 * mean|1 - M|, a mean over the cells, not a sum (khorrams/IGOS_pp at bbd49e3, methods.py:46, 132, 262)
    m = torch.full((1, 1, 7, 7), 0.5, dtype=torch.float64)
    assert igospp.l1_term(m).item() == pytest.approx(0.5)
    assert torch.allclose(_grad(igospp.l1_term, m), torch.full_like(m, -1 / 49))


def test_tv_values():
    # tv_norm: the means of the squared vertical and horizontal differences, no factor 0.5
    # (khorrams/IGOS_pp at bbd49e3, methods_helper.py:20-30)
    for s in (3, 7, 28):
        m = torch.ones(1, 1, s, s, dtype=torch.float64)
        assert igospp.tv(m).item() == 0.0
        m[0, 0, s // 2, s // 2] = 0.0
        assert igospp.tv(m).item() == pytest.approx(4 / (s * (s - 1)))
    m = torch.tensor([[[[0.0, 1.0, 3.0]]]], dtype=torch.float64)    # one row: no vertical pairs
    assert igospp.tv(m).item() == pytest.approx((1 + 4) / 2)
    assert igospp.tv(m, beta=1.0).item() == pytest.approx((1 + 2) / 2)
    assert igospp.tv(torch.zeros(3, 1, 1, 1)).tolist() == [0.0, 0.0, 0.0]


def test_btv_of_constant_masks_is_zero():
    # each term of bilateral_tv_norm is a weighted squared difference (khorrams/IGOS_pp at bbd49e3,
    # methods_helper.py:33-54)
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for value in (0.0, 0.3, 1.0):
        for form in ("official", "symmetric"):
            assert igospp.bilateral_tv(image, torch.full((1, 1, 8, 8), value), form=form).item() == 0.0


def test_official_weights_are_asymmetric():
    # Channel differences of opposite sign: the vertical weight averages them first (mean 0 ->
    # weight 1), the horizontal weight exponentiates per channel (tiny), then averages.
    image = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    image[0, 0, 1, :] = 0.1
    image[0, 1, 1, :] = -0.1
    image[0, 0, :, 1] += 0.1
    image[0, 1, :, 1] -= 0.1
    wv, wh = igospp.image_weights(image, sigma=0.01, form="official")
    assert torch.allclose(wv, torch.ones_like(wv))
    expected_h = (2 * math.exp(-0.01 / 0.01) + 1) / 3
    assert torch.allclose(wh, torch.full_like(wh, expected_h))
    sv, sh = igospp.image_weights(image, sigma=0.01, form="symmetric")
    sym = math.exp(-(0.01 + 0.01) / 3 / 0.01)
    assert torch.allclose(sv, torch.full_like(sv, sym)) and torch.allclose(sh, torch.full_like(sh, sym))


def test_official_vertical_weight_formula():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 5, 4, generator=g, dtype=torch.float64) * 0.1
    wv, wh = igospp.image_weights(image, sigma=0.01)
    dv = image[..., :-1, :] - image[..., 1:, :]
    dh = image[..., :, :-1] - image[..., :, 1:]
    assert torch.allclose(wv, torch.exp(-(dv.mean(1, keepdim=True) ** 2) / 0.01))
    assert torch.allclose(wh, torch.exp(-(dh**2) / 0.01).mean(1, keepdim=True))


def test_btv_is_half_of_tv_plus_weighted_tv_of_the_upsampled_mask():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 12, 12, generator=g, dtype=torch.float64) * 0.05
    mask = torch.rand(1, 1, 4, 4, generator=g, dtype=torch.float64)
    u = igospp.upsample(mask, (12, 12))
    wv, wh = igospp.image_weights(image)
    bil = (wv * (u[..., :-1, :] - u[..., 1:, :]) ** 2).mean() + (wh * (u[..., :, :-1] - u[..., :, 1:]) ** 2).mean()
    assert igospp.bilateral_tv(image, mask).item() == pytest.approx(0.5 * (igospp.tv(mask).item() + bil.item()))


def test_btv_is_cheap_across_image_edges_and_expensive_inside_regions():
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8:] = 2.0                           # a strong vertical edge between columns 7 and 8
    on_edge = torch.ones(1, 1, 16, 16)
    on_edge[..., 8:] = 0.0                         # the mask changes exactly on the edge
    off_edge = torch.ones(1, 1, 16, 16)
    off_edge[..., 4:] = 0.0                        # the same change inside the flat region
    assert igospp.tv(on_edge).item() == pytest.approx(igospp.tv(off_edge).item())
    assert igospp.bilateral_tv(image, on_edge) < igospp.bilateral_tv(image, off_edge)
    bil_on = 2 * igospp.bilateral_tv(image, on_edge) - igospp.tv(on_edge)
    assert bil_on.abs().item() < 1e-12


def test_regularizer_combines_terms():
    g = torch.Generator().manual_seed(2)
    image = torch.randn(1, 3, 8, 8, generator=g)
    m = torch.rand(1, 1, 4, 4, generator=g)
    r = igospp.regularizer(image, m, l1=2.0, l2=3.0, smoothness="tv")
    assert r.item() == pytest.approx(2 * igospp.l1_term(m).item() + 3 * igospp.tv(m).item(), rel=1e-6)


def test_bad_btv_form():
    with pytest.raises(ValueError, match="form"):
        igospp.image_weights(torch.zeros(1, 3, 4, 4), form="paper")


@settings(max_examples=25, deadline=None)
@given(s=st.integers(1, 9), h=st.integers(9, 20), w=st.integers(9, 20), c=st.integers(1, 3))
def test_regularisers_are_non_negative_and_finite(s, h, w, c):
    g = torch.Generator().manual_seed(3)
    m = torch.rand(2, 1, s, s, generator=g)
    image = torch.randn(2, c, h, w, generator=g)
    for value in (igospp.l1_term(m), igospp.tv(m), igospp.bilateral_tv(image, m),
                  igospp.bilateral_tv(image, m, form="symmetric")):
        assert value.shape == (2,) and torch.isfinite(value).all() and (value >= 0).all()
