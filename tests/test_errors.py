"""Every bad input is refused before any work, with an error that names the argument and the fix."""

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import igospp
from igospp.inputs import warn_if_training
from igospp.targets import forward_clean

from .conftest import SingleLogitModel, SmoothModel

CFG = igospp.Config.igos(resolution=4, iterations=1, ig_steps=2, low_score_threshold=None)


def _x(channels: int = 3, size: int = 16, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0))


def _with(index: tuple, value: float) -> torch.Tensor:
    x = _x()
    x[index] = value
    return x


class _Spatial(nn.Module):
    def forward(self, x):
        return x[:, :3, :2, :2]


class _Tuple(nn.Module):
    def forward(self, x):
        return x.mean((2, 3)), x


class _NaN(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 3), float("nan"))


class _Argmax(nn.Module):
    """Returns the predicted classes, not the scores."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = SmoothModel(dtype=torch.float32)

    def forward(self, x):
        return self.inner(x).argmax(dim=1, keepdim=True)


# ----------------------------------------------------------------------------- igospp.explain
# (case, the arguments that differ from explain(SmoothModel(), _x(), config=CFG), error type, message)
EXPLAIN_BAD = [
    # images
    ("images as a numpy array", dict(images=_x().numpy()), TypeError, "images must be a torch.Tensor"),
    ("one image without the batch axis", dict(images=_x()[0]), ValueError, r"\(B, C, H, W\).*unsqueeze\(0\)"),
    ("5-D images", dict(images=_x()[None]), ValueError, "images must have shape"),
    ("integer images", dict(images=(_x() * 100).to(torch.uint8)), TypeError, "floating-point"),
    ("an empty batch", dict(images=_x()[:0]), ValueError, "non-empty"),
    ("a NaN pixel", dict(images=_with((1, 2, 3, 4), float("nan"))), ValueError, "images contains 1 NaN or infinite"),
    ("an infinite pixel", dict(images=_with((1, 2, 3, 4), float("inf"))), ValueError,
     "images contains 1 NaN or infinite"),
    # baselines
    ("a NaN baseline", dict(baseline=_with((1, 2, 3, 4), float("nan"))), ValueError,
     "baseline contains 1 NaN or infinite"),
    ("an infinite baseline", dict(baseline=_with((0, 0, 0, 0), float("-inf"))), ValueError,
     "baseline contains 1 NaN or infinite"),
    ("a baseline of another size", dict(baseline=torch.zeros(2, 3, 8, 8)), ValueError,
     r"baseline has shape \(2, 3, 8, 8\) but images have shape \(2, 3, 16, 16\)"),
    ("a baseline per image, one too many", dict(baseline=torch.zeros(3, 3, 16, 16)), ValueError, "baseline has shape"),
    ("a baseline callable of the wrong shape", dict(baseline=lambda images: images[0]), ValueError,
     "baseline callable must return"),
    ("a baseline by name", dict(baseline="blur"), TypeError, "baseline must be None"),
    # targets
    ("a class out of range", dict(target=5), ValueError, r"target = 5 is out of range: the model has 5 classes"),
    ("a negative class in a list", dict(target=[0, -1]), ValueError, r"target\[1\] = -1 is out of range"),
    ("a numpy class out of range", dict(target=np.int64(7)), ValueError, r"target = 7 is out of range"),
    ("one target too many", dict(target=[0, 1, 2]), ValueError, "target has 3 entries but there are 2 images"),
    ("a float", dict(target=1.5), TypeError, "target must be None, an int"),
    ("a numpy float", dict(target=np.float64(1.0)), TypeError, "target must be None, an int"),
    ("a 0-d float tensor", dict(target=torch.tensor(1.5)), TypeError,
     r"target must hold integer class indices, got a float tensor \(torch.float32\)"),
    ("a 0-d bool tensor", dict(target=torch.tensor(True)), TypeError,
     "target must hold integer class indices, got a bool tensor"),
    ("a 1-D float tensor of whole numbers", dict(target=torch.tensor([0.0, 1.0])), TypeError,
     "target must hold integer class indices, got a float tensor"),
    ("a float numpy array", dict(target=np.array([0.5, 1.0])), TypeError,
     r"target must hold integer class indices, got a float array \(float64\)"),
    ("a 0-d float numpy array", dict(target=np.array(1.0)), TypeError,
     "target must hold integer class indices, got a float array"),
    ("a float tensor in a list", dict(target=[torch.tensor(1.0), 0]), TypeError,
     r"target\[0\] must hold integer class indices, got a float tensor"),
    ("a class name in a list", dict(target=["cat", 1]), TypeError, r"target\[0\] must be an int"),
    ("a numpy float in a list", dict(target=[0, np.float32(1.0)]), TypeError, r"target\[1\] must be an int"),
    ("a 2-D tensor", dict(target=torch.zeros(2, 1, dtype=torch.long)), ValueError, "target tensor must be 1-D"),
    ("a 2-D numpy array", dict(target=np.zeros((2, 1), np.int64)), ValueError, "target array must be 1-D"),
    ("a callable of the wrong shape", dict(target=lambda out: out), ValueError, "one score per row"),
    # the mask grid
    ("a grid finer than the image", dict(config=CFG.replace(resolution=32)), ValueError,
     r"Config.resolution 32 is larger than the image \(16 x 16\)"),
    # the model and its output
    ("a model with spatial output", dict(model=_Spatial()), ValueError,
     r"must have shape \(batch, classes\) = \(2, K\); got \(2, 3, 2, 2\)"),
    ("a model returning a tuple", dict(model=_Tuple()), TypeError, "returned tuple"),
    ("a model returning NaN", dict(model=_NaN()), ValueError, "NaN or Inf"),
    ("a model returning class indices", dict(model=_Argmax()), TypeError,
     r"the model returned an integer tensor \(torch.int64\); saliency needs float scores \(logits\)"),
    ("a single-logit model without a callable target",
     dict(model=SingleLogitModel(channels=1), images=_x(channels=1, size=8, batch=1)), ValueError,
     "single output.*callable target"),
    ("grey images for an RGB model", dict(images=_x(channels=1)), ValueError, r"images, which have 1 channel\(s\)"),
    ("a model name", dict(model="resnet50"), TypeError, "model must be a callable"),
    ("a model bundle", dict(model=igospp.ModelBundle(name="toy", model=SmoothModel(), input_size=(16, 16))),
     TypeError, "Pass bundle.model"),
    # the other arguments
    ("a config as a dict", dict(config={"method": "igospp"}), TypeError, "config must be an igospp.Config"),
    ("a seed for a generator", dict(generator=0), TypeError, "generator must be a torch.Generator"),
]


@pytest.mark.parametrize(("arguments", "error", "message"), [row[1:] for row in EXPLAIN_BAD],
                         ids=[row[0] for row in EXPLAIN_BAD])
def test_explain_refuses_bad_inputs(arguments, error, message):
    kwargs = dict(model=SmoothModel(dtype=torch.float32), images=_x(), config=CFG) | arguments
    with pytest.raises(error, match=message):
        igospp.explain(**kwargs)


def test_config_resolution_must_be_positive():
    with pytest.raises(ValueError, match="Config.resolution"):
        igospp.Config(resolution=0)


def test_reference_path_score_checks_steps():
    x = _x()
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        igospp.deletion_path_score(SmoothModel(dtype=torch.float32), x, x, torch.ones(2, 1, 4, 4), steps=0)


# ----------------------------------------------------------------------------- integer targets of every kind
def _logits() -> torch.Tensor:
    return torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])


# (case, target, the classes explained)
INTEGER_TARGETS = [
    ("a Python int", 2, [2, 2]),
    ("a numpy int64", np.int64(1), [1, 1]),
    ("a numpy uint8", np.uint8(2), [2, 2]),
    ("a 0-d numpy array", np.array(1), [1, 1]),
    ("an int tensor of shape ()", torch.tensor(2), [2, 2]),
    ("argmax() of a tensor", _logits()[0].argmax(), [1, 1]),
    ("argmax(dim=1) as numpy", _logits().numpy().argmax(axis=1), [1, 0]),
    ("an int32 tensor", torch.tensor([2, 0], dtype=torch.int32), [2, 0]),
    ("a list of numpy ints and 0-d tensors", [np.int64(0), torch.tensor(2)], [0, 2]),
]


@pytest.mark.parametrize(("target", "classes"), [row[1:] for row in INTEGER_TARGETS],
                         ids=[row[0] for row in INTEGER_TARGETS])
def test_integer_targets_of_any_integer_type(target, classes):
    assert igospp.resolve_target(target, _logits(), "softmax").classes.tolist() == classes


def test_explain_takes_a_numpy_integer_target():
    model, x = SmoothModel(dtype=torch.float32), _x()
    with torch.no_grad():
        top = model(x).numpy().argmax(axis=1)
    exp = igospp.explain(model, x, target=top, config=CFG)
    assert exp.target.tolist() == top.tolist()
    assert igospp.explain(model, x, target=np.int64(3), config=CFG).target.tolist() == [3, 3]


# ----------------------------------------------------------------------------- images the model cannot take
class _TooSmall(nn.Module):
    """A 7 x 7 convolution without padding: inputs under 7 x 7 pixels fail inside conv2d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 7)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class _FixedSize(nn.Module):
    """A linear head on the flattened image: only 3 x 16 x 16 inputs fit."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 16 * 16, 4)

    def forward(self, x):
        return self.head(x.flatten(1))


# (case, model, images, message)
CLEAN_PASS_BAD = [
    ("grey images for an RGB model", SmoothModel(dtype=torch.float32), _x(channels=1), ValueError,
     r"images, which have 1 channel\(s\) of 16 x 16 pixels.*first convolution takes 3 channel\(s\).*preprocessing"),
    ("RGBA images for an RGB model", SmoothModel(dtype=torch.float32), _x(channels=4), ValueError,
     r"which have 4 channel\(s\).*first convolution takes 3"),
    ("images smaller than the kernel", _TooSmall(), _x(size=4), ValueError,
     r"the model failed on the images, which have 3 channel\(s\) of 4 x 4 pixels.*Kernel size"),
    ("images of another size than a linear head takes", _FixedSize(), _x(size=8), ValueError,
     r"3 channel\(s\) of 8 x 8 pixels.*mat1 and mat2.*resize to the model's input size"),
    ("a model returning class indices", _Argmax(), _x(), TypeError, "the model returned an integer tensor"),
]


@pytest.mark.parametrize(("model", "images", "error", "message"), [row[1:] for row in CLEAN_PASS_BAD],
                         ids=[row[0] for row in CLEAN_PASS_BAD])
def test_images_the_model_cannot_take_are_named(model, images, error, message):
    with torch.no_grad(), pytest.raises(error, match=message) as caught:
        forward_clean(model, images)
    if error is ValueError:
        assert isinstance(caught.value.__cause__, RuntimeError)      # the model's own error is kept


def test_out_of_memory_is_not_blamed_on_the_images():
    def model(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        forward_clean(model, _x())


# ----------------------------------------------------------------------------- models left in training mode
def _norm_model(norm: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), norm, nn.Flatten(1)).train()


# (case, model in training mode, the warning's text, or None for no warning)
TRAINING = [
    ("batch norm", _norm_model(nn.BatchNorm2d(4)),
     r"training mode \(1\): its normalization layers use the statistics of each batch during the explanation, so "
     r"the scores depend on the batch and differ from eval mode \(the library restores the layers' running "
     r"statistics afterwards\).*call model.eval\(\) first"),
    ("instance norm with running statistics", _norm_model(nn.InstanceNorm2d(4, track_running_stats=True)),
     r"training mode \(1\): its normalization layers use the statistics of each batch"),
    ("dropout", nn.Sequential(nn.Dropout(0.1)).train(), r"training mode \(0\): dropout makes its scores random"),
    ("batch norm and dropout", nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.1)).train(),
     r"training mode \(0, 1\): its normalization layers .*; dropout makes its scores random"),
    ("instance norm without running statistics (the same in both modes)", _norm_model(nn.InstanceNorm2d(4)), None),
    ("batch norm without running statistics (the same in both modes)",
     _norm_model(nn.BatchNorm2d(4, track_running_stats=False)), None),
    ("no dropout or norm layer", SmoothModel().train(), None),
    ("batch norm in eval mode", _norm_model(nn.BatchNorm2d(4)).eval(), None),
]


@pytest.mark.parametrize(("model", "message"), [row[1:] for row in TRAINING], ids=[row[0] for row in TRAINING])
def test_training_mode_warning_says_what_it_changes(model, message):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_training(model)
    found = [w for w in caught if issubclass(w.category, igospp.TrainingModeWarning)]
    if message is None:
        assert not found
    else:
        assert len(found) == 1
        assert re.search(message, str(found[0].message)), found[0].message
