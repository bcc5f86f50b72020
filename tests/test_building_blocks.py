"""The pieces of the paper, one by one: Phi, upsampling, the blur baseline, path coefficients and images.

Citations point to the authors' code, khorrams/IGOS_pp at bbd49e3 (file:line), which the defaults reproduce.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import igospp


# ------------------------------------------ Phi (khorrams/IGOS_pp at bbd49e3, methods_helper.py:180-189)
def test_phi_endpoints_are_exact():
    g = torch.Generator().manual_seed(0)
    image, base = torch.randn(2, 3, 9, 7, generator=g), torch.randn(2, 3, 9, 7, generator=g)
    assert torch.equal(igospp.phi(image, base, torch.ones(2, 1, 9, 7)), image)
    assert torch.equal(igospp.phi(image, base, torch.zeros(2, 1, 9, 7)), base)
    # the insertion composition swaps the arguments: salient cells (0) show the image
    assert torch.equal(igospp.phi(base, image, torch.zeros(2, 1, 3, 3)), image)


def test_phi_is_the_convex_combination():
    image, base = torch.full((1, 2, 4, 4), 3.0), torch.full((1, 2, 4, 4), -1.0)
    out = igospp.phi(image, base, torch.full((1, 1, 4, 4), 0.25))
    assert torch.allclose(out, torch.full_like(out, 0.0))


# --------------------------- upsampling (khorrams/IGOS_pp at bbd49e3, methods_helper.py:10-17 and 57-65)
def test_upsampling_keeps_corners_and_constants():
    m = torch.rand(3, 1, 7, 5, generator=torch.Generator().manual_seed(0))
    up = igospp.upsample(m, (224, 100))
    assert up.shape == (3, 1, 224, 100)
    for i, j in [(0, 0), (0, -1), (-1, 0), (-1, -1)]:     # corner cells land on corner pixels
        assert torch.equal(up[:, :, i, j], m[:, :, i, j])
    c = torch.full((1, 1, 28, 28), 0.37)
    assert torch.equal(igospp.upsample(c, (224, 224)), torch.full((1, 1, 224, 224), 0.37))


def test_upsampling_is_align_corners_bilinear():
    # a 28-cell mask is not made of 8 x 8 blocks: source coordinate = index * 27 / 223
    m = torch.zeros(1, 1, 28, 28)
    m[0, 0, :, 1] = 1.0
    up = igospp.upsample(m, (224, 224))[0, 0, 0]
    x = torch.arange(224, dtype=torch.float64) * 27 / 223
    expected = torch.clamp(1 - (x - 1).abs(), min=0).float()
    assert torch.allclose(up, expected, atol=1e-6)


def test_single_cell_and_full_resolution_masks():
    assert torch.equal(igospp.upsample(torch.full((2, 1, 1, 1), 0.5), (4, 6)), torch.full((2, 1, 4, 6), 0.5))
    m = torch.rand(1, 1, 4, 6, generator=torch.Generator().manual_seed(0))
    assert igospp.upsample(m, (4, 6)) is m


# --------------------------------------- blur baseline (khorrams/IGOS_pp at bbd49e3, utils.py:112-121)
def test_gaussian_taps_match_opencv_formula():
    k = igospp.gaussian_kernel1d(51, 50.0, dtype=torch.float64)
    x = np.arange(51) - 25
    ref = np.exp(-(x**2) / (2 * 50.0**2))
    assert np.allclose(k.numpy(), ref / ref.sum())
    assert k[0] / k[25] == pytest.approx(np.exp(-625 / 5000))


def test_blur_is_reflect101_gaussian_and_scales_with_size():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 224, 112, generator=g, dtype=torch.float64)
    out = igospp.blur_baseline(x)
    (kh, sh), (kw, sw) = igospp.scaled_blur_parameters(224, 112)
    assert (kh, sh, kw, sw) == (51, 50.0, 25, 25.0)
    ref = x.numpy()
    ref = ndimage.correlate1d(ref, igospp.gaussian_kernel1d(kh, sh, dtype=torch.float64).numpy(), axis=2, mode="mirror")
    ref = ndimage.correlate1d(ref, igospp.gaussian_kernel1d(kw, sw, dtype=torch.float64).numpy(), axis=3, mode="mirror")
    assert np.allclose(out.numpy(), ref, atol=1e-12)  # scipy's "mirror" is OpenCV's BORDER_REFLECT_101


def test_blur_commutes_with_normalisation_and_keeps_constants():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    assert torch.allclose(igospp.blur_baseline((x - mean) / std), (igospp.blur_baseline(x) - mean) / std)
    c = torch.full((1, 1, 40, 30), 0.3, dtype=torch.float64)
    assert torch.allclose(igospp.blur_baseline(c), c)


@pytest.mark.parametrize("h, w", [(1, 1), (2, 3), (8, 8), (28, 28)])
def test_blur_works_on_tiny_images(h, w):
    out = igospp.blur_baseline(torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 1, h, w) and torch.isfinite(out).all()


# ---------------------------------------- path (khorrams/IGOS_pp at bbd49e3, methods_helper.py:68-95)
def test_path_coefficients_exclude_zero_include_one():
    # linspace(1/S, 1, S): a right Riemann sum (khorrams/IGOS_pp at bbd49e3, methods_helper.py:84)
    a = igospp.path_coefficients(20, dtype=torch.float64)
    assert torch.allclose(a, torch.arange(1, 21, dtype=torch.float64) * 0.05)
    assert a[0] == 0.05 and a[-1] == 1.0 and a.min() > 0


def test_path_images_endpoints():
    g = torch.Generator().manual_seed(0)
    image, base = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    ones = torch.ones(1, 1, 2, 2)
    deletion = igospp.path_images(image, base, ones, steps=20)
    insertion = igospp.path_images(base, image, ones, steps=20)
    assert torch.equal(deletion[0, -1], image[0])      # U = 1, k = S: exactly the image
    assert torch.equal(insertion[0, -1], base[0])      # the insertion path ends at the baseline
    assert torch.allclose(insertion[0, 0], 0.95 * image[0] + 0.05 * base[0])   # and starts near the image


def test_path_noise_is_gaussian_with_the_given_std():
    # N(0, 0.2^2) on every path image, after the composition (khorrams/IGOS_pp at bbd49e3, methods_helper.py:88-89)
    image = torch.zeros(1, 3, 64, 64)
    noisy = igospp.path_images(image, image, torch.ones(1, 1, 4, 4), steps=10, noise_std=0.2,
                               generator=torch.Generator().manual_seed(0))
    assert noisy.mean().abs() < 0.005 and noisy.std().item() == pytest.approx(0.2, rel=0.02)


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), sh=st.integers(1, 12), sw=st.integers(1, 12))
def test_upsample_shape_range_property(b, h, w, sh, sw):
    m = torch.rand(b, 1, sh, sw, generator=torch.Generator().manual_seed(0))
    up = igospp.upsample(m, (h, w))
    assert up.shape == (b, 1, h, w)
    assert up.min() >= m.min() - 1e-6 and up.max() <= m.max() + 1e-6


def test_upsample_equals_torch_bilinear_align_corners():
    import torch.nn.functional as F

    m = torch.rand(2, 1, 7, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for size in ((224, 224), (7, 100), (50, 28), (1, 1)):
        ref = F.interpolate(m, size=size, mode="bilinear", align_corners=True)
        assert torch.allclose(igospp.upsample(m, size), ref, atol=1e-12)
