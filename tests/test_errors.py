"""Every bad input is refused before any work, with an error that names the argument and the fix."""

import pytest
import torch
from torch import nn

import igospp

from .conftest import SingleLogitModel, SmoothModel

CFG = igospp.Config.igos(resolution=4, iterations=1, ig_steps=2, low_score_threshold=None)


@pytest.fixture
def model():
    return SmoothModel(dtype=torch.float32)


@pytest.fixture
def x():
    return torch.randn(2, 3, 16, 16)


def test_images_must_be_a_batch_tensor(model, x):
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        igospp.explain(model, x.numpy(), config=CFG)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*unsqueeze\(0\)"):
        igospp.explain(model, x[0], config=CFG)
    with pytest.raises(ValueError, match="images must have shape"):
        igospp.explain(model, x[None], config=CFG)
    with pytest.raises(TypeError, match="floating-point"):
        igospp.explain(model, (x * 100).to(torch.uint8), config=CFG)
    with pytest.raises(ValueError, match="non-empty"):
        igospp.explain(model, x[:0], config=CFG)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_images_and_baselines(model, x, bad):
    y = x.clone()
    y[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match="images contains 1 NaN or infinite"):
        igospp.explain(model, y, config=CFG)
    with pytest.raises(ValueError, match="baseline contains 1 NaN or infinite"):
        igospp.explain(model, x, config=CFG, baseline=y)


def test_baseline_shape_type_and_callable(model, x):
    with pytest.raises(ValueError, match=r"baseline has shape \(2, 3, 8, 8\) but images have shape \(2, 3, 16, 16\)"):
        igospp.explain(model, x, config=CFG, baseline=torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="baseline has shape"):
        igospp.explain(model, x, config=CFG, baseline=torch.zeros(3, 3, 16, 16))
    with pytest.raises(ValueError, match="baseline callable must return"):
        igospp.explain(model, x, config=CFG, baseline=lambda imgs: imgs[0])
    with pytest.raises(TypeError, match="baseline must be None"):
        igospp.explain(model, x, config=CFG, baseline="blur")


def test_targets_out_of_range_wrong_length_wrong_type(model, x):
    with pytest.raises(ValueError, match=r"target = 5 is out of range: the model has 5 classes"):
        igospp.explain(model, x, target=5, config=CFG)
    with pytest.raises(ValueError, match=r"target\[1\] = -1 is out of range"):
        igospp.explain(model, x, target=[0, -1], config=CFG)
    with pytest.raises(ValueError, match="target has 3 entries but there are 2 images"):
        igospp.explain(model, x, target=[0, 1, 2], config=CFG)
    with pytest.raises(TypeError, match="target must be None, an int"):
        igospp.explain(model, x, target=1.5, config=CFG)
    with pytest.raises(TypeError, match=r"target\[0\] must be an int"):
        igospp.explain(model, x, target=["cat", 1], config=CFG)
    with pytest.raises(ValueError, match="1-D"):
        igospp.explain(model, x, target=torch.zeros(2, 1, dtype=torch.long), config=CFG)


def test_callable_target_must_return_one_score_per_row(model, x):
    with pytest.raises(ValueError, match="one score per row"):
        igospp.explain(model, x, target=lambda out: out, config=CFG)


def test_resolution_larger_than_the_image(model, x):
    with pytest.raises(ValueError, match=r"Config.resolution 32 is larger than the image \(16 x 16\)"):
        igospp.explain(model, x, config=CFG.replace(resolution=32))
    with pytest.raises(ValueError, match="Config.resolution"):
        igospp.Config(resolution=0)


class _Spatial(nn.Module):
    def forward(self, x):
        return x[:, :3, :2, :2]


class _Tuple(nn.Module):
    def forward(self, x):
        return x.mean((2, 3)), x


class _NaN(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 3), float("nan"))


def test_model_output_must_be_batch_by_classes(x):
    with pytest.raises(ValueError, match=r"must have shape \(batch, classes\) = \(2, K\); got \(2, 3, 2, 2\)"):
        igospp.explain(_Spatial(), x, config=CFG)
    with pytest.raises(TypeError, match="returned tuple"):
        igospp.explain(_Tuple(), x, config=CFG)
    with pytest.raises(ValueError, match="NaN or Inf"):
        igospp.explain(_NaN(), x, config=CFG)


def test_single_logit_model_needs_a_callable_target():
    with pytest.raises(ValueError, match="single output.*callable target"):
        igospp.explain(SingleLogitModel(channels=1), torch.randn(1, 1, 8, 8), config=CFG)


def test_config_model_and_generator_types(model, x):
    with pytest.raises(TypeError, match="config must be an igospp.Config"):
        igospp.explain(model, x, config={"method": "igospp"})
    with pytest.raises(TypeError, match="model must be a callable"):
        igospp.explain("resnet50", x, config=CFG)
    bundle = igospp.ModelBundle(name="toy", model=model, input_size=(16, 16))
    with pytest.raises(TypeError, match="Pass bundle.model"):
        igospp.explain(bundle, x, config=CFG)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        igospp.explain(model, x, config=CFG, generator=0)


def test_reference_path_score_checks_steps(model, x):
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        igospp.deletion_path_score(model, x, x, torch.ones(2, 1, 4, 4), steps=0)
