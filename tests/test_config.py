"""Config: presets carry the paper's and the official code's constants; bad values are refused early."""

import pytest

import igospp
from igospp import Config


def test_defaults_are_the_official_constants():
    c = Config()
    assert c == Config.igospp()
    assert (c.iterations, c.ig_steps, c.l2, c.tv_beta, c.btv_sigma, c.noise_std) == (20, 20, 20.0, 2.0, 0.01, 0.2)
    assert (c.ls_initial_step, c.ls_shrink, c.ls_armijo, c.ls_min_step) == (1000.0, 0.2, 1e-4, 1e-5)
    assert (c.blur_kernel_size, c.blur_sigma, c.blur_reference_size) == (51, 50.0, 224)
    assert c.ig_scale == 0.5 and c.smoothness == "btv" and c.btv_form == "official" and c.score == "softmax"


@pytest.mark.parametrize(
    "method, smoothness, ig_scale, steps",
    [("mask", "tv", 1.0, 1), ("igos", "tv", 1.0, 20), ("naive", "btv", 1.0, 20),
     ("insertion", "btv", 1.0, 20), ("igospp", "btv", 0.5, 20)],
)
def test_presets(method, smoothness, ig_scale, steps):
    c = Config.preset(method, resolution=14)
    assert (c.method, c.smoothness, c.ig_scale, c.ig_steps) == (method, smoothness, ig_scale, steps)
    assert c.mask_size == (14, 14)


def test_l1_follows_the_paper_with_resolution():
    assert Config.igospp(resolution=28).effective_l1 == 1.0
    assert Config.igospp(resolution=224).effective_l1 == 10.0
    assert Config.igospp(resolution=28).replace(resolution=224).effective_l1 == 10.0
    assert Config.igospp(resolution=(224, 100)).effective_l1 == 1.0
    assert Config.igospp(resolution=224, l1=3.0).effective_l1 == 3.0


def test_replace_is_an_ablation():
    c = Config.igospp().replace(noise_std=0.0, line_search=False)
    assert (c.noise_std, c.line_search, c.method) == (0.0, False, "igospp")


def test_resolution_pair_and_dict():
    c = Config(resolution=[7, 9])
    assert c.resolution == (7, 9) and c.mask_size == (7, 9)
    assert c.to_dict()["resolution"] == [7, 9] and c.to_dict()["effective_l1"] == 1.0


@pytest.mark.parametrize(
    "field, value",
    [("method", "gradcam"), ("resolution", 0), ("resolution", (7,)), ("resolution", 2.5), ("iterations", 0),
     ("ig_steps", -1), ("l1", -1.0), ("l2", float("nan")), ("smoothness", "tv2"), ("btv_form", "paper"),
     ("tv_beta", 0.5), ("btv_sigma", 0.0), ("noise_std", -0.1), ("ig_scale", 0.0), ("step_size", 0.0),
     ("ls_shrink", 1.0), ("ls_armijo", 1.5), ("ls_min_step", 0.0), ("ls_min_step", 2000.0), ("score", "prob"),
     ("blur_kernel_size", 50), ("blur_sigma", -1.0), ("batch_size", 0), ("seed", "0"), ("line_search", 1),
     ("track_scores", "yes"), ("iterations", True)],
)
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"Config.{field}"):
        Config(**{field: value})


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(TypeError, match="no field.*'noise'.*valid fields"):
        Config().replace(noise=0.0)
    with pytest.raises(TypeError, match="no field"):
        Config.igos(itterations=3)


def test_methods_constant():
    assert igospp.METHODS == ("mask", "igos", "naive", "insertion", "igospp")


def test_batch_size_default_depends_on_the_device():
    assert Config().batch_size is None
    assert Config().effective_batch_size("cpu") == 8 and Config().effective_batch_size("cuda") == 64
    assert Config(batch_size=3).effective_batch_size("cuda") == 3
