"""The comparison methods: one calling convention, the right resolution, seeded and batched."""

import pytest
import torch

import igospp
from igospp.baselines import RISE, GradCAM, IntegratedGrad, Optimized, get_method, gradcam_layer

from .conftest import SmoothModel


@pytest.fixture(scope="module")
def lite():
    bundle = igospp.load_model("efficientnet_lite0", device="cpu")
    photos = igospp.sample_images(["chelsea", "coffee"])
    return bundle, bundle.preprocess(list(photos.values()))


def test_gradcam_is_at_the_layer_resolution_and_follows_the_class(lite):
    bundle, x = lite
    cam = GradCAM()(bundle.model, x)
    assert cam.shape == (2, 1, 7, 7) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    other = GradCAM()(bundle.model, x, target=[285, 285])           # Egyptian cat for both
    assert torch.allclose(other[0], cam[0], atol=1e-5) and not torch.allclose(other[1], cam[1], atol=1e-3)


def test_gradcam_layers_of_known_architectures():
    from torchvision.models import resnet18, vgg11

    resnet = resnet18()
    assert gradcam_layer(resnet) is resnet.layer4[-1]
    vgg = vgg11()
    layer = gradcam_layer(vgg)
    assert isinstance(layer, torch.nn.ReLU) and isinstance(vgg.features[list(vgg.features).index(layer) + 1],
                                                           torch.nn.MaxPool2d)
    with pytest.raises(ValueError, match="pass GradCAM\\(layer="):
        gradcam_layer(SmoothModel())
    cam = GradCAM(layer=resnet.layer3[-1])(resnet.eval(), torch.randn(1, 3, 64, 64), target=3)
    assert cam.shape == (1, 1, 4, 4)


def test_gradcam_with_a_callable_target_on_a_single_logit_model():
    model = SmoothModel(channels=1, classes=1, dtype=torch.float32)
    cam = GradCAM(layer=model.conv)(model, torch.randn(2, 1, 12, 12), target=lambda out: out[:, 0])
    assert cam.shape == (2, 1, 12, 12)


def test_integrated_gradients_baselines_and_attributions(lite):
    bundle, x = lite
    ig = IntegratedGrad(steps=4)(bundle.model, x[:1])
    assert ig.shape == (1, 1, 224, 224) and (ig >= 0).all()
    black = IntegratedGrad(baseline="black", steps=4, attribution="positive")(bundle.model, x[:1])
    assert black.shape == (1, 1, 224, 224) and (black >= 0).all() and not torch.allclose(black, ig)
    with pytest.raises(ValueError, match="attribution"):
        IntegratedGrad(attribution="signed")


def test_integrated_gradients_completeness_on_a_linear_model():
    """For a linear score, IG attributions sum to f(x) - f(baseline) exactly (Sundararajan's axiom)."""
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).double().eval()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    ig = IntegratedGrad(baseline=0.0, steps=8, attribution="positive")
    from captum.attr import IntegratedGradients
    raw = IntegratedGradients(lin).attribute(x, torch.zeros_like(x), target=0, n_steps=8)
    assert raw.sum().item() == pytest.approx((lin(x) - lin(torch.zeros_like(x)))[0, 0].item(), rel=1e-6)
    assert torch.allclose(ig(lin, x, target=0), raw.sum(1, keepdim=True).clamp(min=0))


def test_rise_is_seeded_batched_and_finds_the_region():
    class Region(torch.nn.Module):           # the class score is the mean of the top-left quarter
        def forward(self, x):
            s = x[:, 0, :16, :16].mean((1, 2))
            return torch.stack([4 * s, torch.zeros_like(s)], 1)

    x = torch.ones(1, 3, 32, 32)
    a = RISE(n_masks=300, cells=4, seed=1, batch_size=7)(Region(), x, target=0)
    b = RISE(n_masks=300, cells=4, seed=1, batch_size=64)(Region(), x, target=0)
    c = RISE(n_masks=300, cells=4, seed=2)(Region(), x, target=0)
    assert a.shape == (1, 1, 32, 32) and torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c)
    assert a[0, 0, :16, :16].mean() > a[0, 0, 16:, 16:].mean()
    grids, shifts = RISE(n_masks=10, cells=7).draws(224, 224)
    assert grids.shape == (10, 1, 7, 7) and shifts.max() < 32
    masks = RISE(n_masks=10, cells=7).masks(grids, shifts, 224, 224)
    assert masks.shape == (10, 1, 224, 224) and masks.min() >= 0 and masks.max() <= 1


def test_optimized_methods_return_cell_saliency():
    model = SmoothModel(dtype=torch.float32)
    x = torch.randn(2, 3, 16, 16)
    method = get_method("igos", resolution=4, iterations=1, ig_steps=2, low_score_threshold=None)
    assert isinstance(method, Optimized)
    sal = method(model, x)
    assert sal.shape == (2, 1, 4, 4) and torch.equal(sal, 1 - method.last_explanation.mask)


def test_get_method_names():
    assert isinstance(get_method("gradcam"), GradCAM) and isinstance(get_method("ig", steps=3), IntegratedGrad)
    assert get_method("rise", n_masks=5).n_masks == 5
    assert get_method("mask", resolution=7).config.ig_steps == 1
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        get_method("lime")
