"""The comparison methods: one calling convention, the right resolution, seeded and batched."""

import pytest
import torch

import igospp
from igospp.methods import RISE, GradCAM, IntegratedGrad, Optimized, get_method, gradcam_layer
from igospp.models import IMAGENET_MEAN, IMAGENET_STD

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
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cam = GradCAM(layer=resnet.layer3[-1])(resnet.eval(), x, target=3)
    assert cam.shape == (1, 1, 4, 4)


def test_gradcam_callable_target_gives_the_map_of_the_equivalent_class():
    model = SmoothModel(dtype=torch.float32)
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    cam = GradCAM(layer=model.conv)
    by_index = cam(model, x, target=2)
    by_callable = cam(model, x, target=lambda out: out[:, 2])         # the logit of class 2, as Grad-CAM scores it
    other = cam(model, x, target=lambda out: out[:, 4])
    assert by_index.shape == (2, 1, 12, 12)
    assert torch.allclose(by_callable, by_index, atol=1e-6)
    for b in range(2):                                                 # another class, another map, image by image
        assert not torch.allclose(other[b], by_index[b], atol=1e-3)
    mixed = cam(model, x, target=[lambda out: out[:, 2], 4])           # one target per image, of either kind
    assert torch.allclose(mixed[0], by_index[0], atol=1e-6) and torch.allclose(mixed[1], other[1], atol=1e-6)


def test_gradcam_with_a_callable_target_on_a_single_logit_model():
    model = SmoothModel(channels=1, classes=1, dtype=torch.float32)
    x = torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(5))
    cam = GradCAM(layer=model.conv)
    up = cam(model, x, target=lambda out: out[:, 0])
    assert up.shape == (2, 1, 12, 12)
    assert torch.allclose(up, cam(model, x, target=0), atol=1e-6)
    down = cam(model, x, target=lambda out: -out[:, 0])                # the opposite evidence
    assert not torch.allclose(up, down, atol=1e-3)


def test_integrated_gradients_baselines_and_attributions(lite):
    bundle, x = lite
    ig = IntegratedGrad(steps=4)(bundle.model, x[:1])
    black = IntegratedGrad(baseline="black", steps=4, attribution="positive")(bundle.model, x[:1])
    assert ig.shape == black.shape == (1, 1, 224, 224) and not torch.allclose(black, ig)
    with pytest.raises(ValueError, match="attribution"):
        IntegratedGrad(attribution="signed")


def test_integrated_gradients_on_a_linear_model_are_known_in_closed_form():
    """For a linear score w.x + b the path gradient is w everywhere, so IG's attribution is exactly
    (x - x0) * w at any number of steps; it sums to f(x) - f(x0) (Sundararajan's completeness)."""
    from captum.attr import IntegratedGradients

    g = torch.Generator().manual_seed(6)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).double().eval()
    with torch.no_grad():
        for p in lin.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    w = lin[1].weight[0].detach().view(1, 3, 8, 8)
    zero = torch.zeros_like(x)
    raw = IntegratedGradients(lin).attribute(x, zero, target=0, n_steps=8)
    assert torch.allclose(raw, x * w)
    assert raw.sum().item() == pytest.approx((lin(x) - lin(zero))[0, 0].item(), rel=1e-6)

    # "abs": the channel sum of |attribution|; "positive": the positive part of the channel sum
    assert torch.allclose(IntegratedGrad(baseline=0.0, steps=3)(lin, x, target=0), (x * w).abs().sum(1, keepdim=True))
    positive = IntegratedGrad(baseline=0.0, steps=3, attribution="positive")(lin, x, target=0)
    assert torch.allclose(positive, (x * w).sum(1, keepdim=True).clamp(min=0))
    assert (positive == 0).any() and (positive > 0).any()            # both sides of the clamp are exercised
    # "black": black pixels in normalized units, (0 - mean) / std per channel
    black = ((0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).double().view(1, 3, 1, 1)
    assert torch.allclose(IntegratedGrad(baseline="black", steps=3)(lin, x, target=0),
                          ((x - black) * w).abs().sum(1, keepdim=True))


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


#: Bad RISE arguments: (keywords, message). Each is refused by the constructor, before any model pass.
BAD_RISE_ARGUMENTS = [
    (dict(n_masks=0), "RISE.n_masks must be a positive integer"),
    (dict(cells=0), "RISE.cells must be a positive integer"),
    (dict(p=0.0), "RISE.p must be a finite number > 0.0"),
    (dict(batch_size=-1), "RISE.batch_size must be a positive integer"),
    (dict(seed=2**70), r"RISE.seed must be an integer from -\(2\*\*63\) to 2\*\*64 - 1"),
    (dict(seed=2**64), "RISE.seed must be an integer from"),
    (dict(seed=-(2**63) - 1), "RISE.seed must be an integer from"),
    (dict(seed=1.0), "RISE.seed must be an integer from"),
    (dict(accelerate="yes"), "RISE.accelerate must be True or False"),
]


@pytest.mark.parametrize("kwargs, message", BAD_RISE_ARGUMENTS)
def test_rise_refuses_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RISE(**kwargs)


@pytest.mark.parametrize("seed", [-(2**63), 2**64 - 1])
def test_rise_takes_the_extreme_seeds(seed):
    grids, shifts = RISE(n_masks=3, cells=2, seed=seed).draws(8, 8)
    assert grids.shape == (3, 1, 2, 2) and shifts.shape == (3, 2)


def test_optimized_methods_return_cell_saliency():
    model = SmoothModel(dtype=torch.float32)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7))
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
