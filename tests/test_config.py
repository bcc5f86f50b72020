"""Config: presets carry the paper's and the official code's constants; bad values are refused early."""

import pytest
import torch

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


#: Bad values of Config fields: (field, value). Each is refused by Config itself, naming the field.
BAD_CONFIG_VALUES = [
    ("method", "gradcam"), ("resolution", 0), ("resolution", (7,)), ("resolution", 2.5), ("iterations", 0),
    ("ig_steps", -1), ("l1", -1.0), ("l2", float("nan")), ("smoothness", "tv2"), ("btv_form", "paper"),
    ("tv_beta", 0.5), ("btv_sigma", 0.0), ("noise_std", -0.1), ("ig_scale", 0.0), ("step_size", 0.0),
    ("ls_shrink", 1.0), ("ls_armijo", 1.5), ("ls_min_step", 0.0), ("ls_min_step", 2000.0), ("score", "prob"),
    ("blur_kernel_size", 50), ("blur_sigma", -1.0), ("batch_size", 0), ("seed", "0"), ("line_search", 1),
    ("track_scores", "yes"), ("iterations", True),
    # seeds torch.Generator.manual_seed would refuse late, with an overflow
    ("seed", 2**70), ("seed", 2**64), ("seed", -(2**63) - 1), ("seed", 1.5),
]


@pytest.mark.parametrize("field, value", BAD_CONFIG_VALUES)
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"Config.{field}"):
        Config(**{field: value})


def test_a_bad_seed_is_refused_with_the_range():
    with pytest.raises(ValueError, match=r"Config.seed must be an integer from -\(2\*\*63\) to 2\*\*64 - 1"):
        Config(seed=2**70)


@pytest.mark.parametrize("seed", [-(2**63), 2**64 - 1])
def test_the_extreme_seeds_explain(seed):
    """Both ends of the range are seeds torch takes: explain runs with them (and they differ)."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cfg = Config.igos(resolution=2, iterations=1, ig_steps=2, seed=seed, low_score_threshold=None, progress=False)
    assert igospp.explain(model, x, config=cfg).mask.shape == (1, 1, 2, 2)


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


# ----------------------------------------------------------------------------- the method-dependent fields
DEPENDENT = ("iterations", "ig_steps", "smoothness", "ig_scale")


def _dependent(c):
    return {name: getattr(c, name) for name in DEPENDENT}


def test_method_defaults_cover_every_method_and_only_the_dependent_fields():
    from igospp.config import METHOD_DEFAULTS

    assert tuple(METHOD_DEFAULTS) == igospp.METHODS
    assert all(tuple(values) == DEPENDENT for values in METHOD_DEFAULTS.values())
    assert all(getattr(Config, name) is None for name in DEPENDENT)   # the dataclass defaults defer to the method


@pytest.mark.parametrize("method", igospp.METHODS)
def test_config_of_a_method_is_its_preset(method):
    assert Config(method=method) == Config.preset(method)
    assert Config(method=method, resolution=14, l2=3.0) == Config.preset(method, resolution=14, l2=3.0)


@pytest.mark.parametrize("new", igospp.METHODS)
@pytest.mark.parametrize("old", igospp.METHODS)
def test_replacing_the_method_brings_the_new_methods_values(old, new):
    moved = Config.preset(old, resolution=14, noise_std=0.1).replace(method=new)
    fresh = Config.preset(new, resolution=14, noise_std=0.1)
    assert _dependent(moved) == _dependent(fresh)
    assert moved == fresh                                     # and nothing else changed


@pytest.mark.parametrize("new", igospp.METHODS)
@pytest.mark.parametrize("old", igospp.METHODS)
def test_replacing_the_method_keeps_the_values_the_user_set(old, new):
    # values that differ from every method's own, so they cannot be mistaken for a default
    mine = dict(iterations=7, ig_steps=3, ig_scale=0.25)
    moved = Config.preset(old, **mine).replace(method=new)
    assert (moved.method, moved.iterations, moved.ig_steps, moved.ig_scale) == (new, 7, 3, 0.25)
    # a field set in the same replace wins over the new method's value
    assert Config.preset(old).replace(method=new, ig_steps=2).ig_steps == 2


def test_a_smoothness_the_user_chose_survives_a_change_of_method():
    tv_igospp = Config.igospp(smoothness="tv")
    for method in igospp.METHODS:
        moved = tv_igospp.replace(method=method)
        assert moved.smoothness == "tv"
        assert (moved.ig_scale, moved.ig_steps) == (Config.preset(method).ig_scale, Config.preset(method).ig_steps)
    assert Config.igos(smoothness="btv").replace(method="mask").smoothness == "btv"
    # there and back again: only the dependent fields travelled
    assert Config.igospp(resolution=7).replace(method="mask").replace(method="igospp") == Config.igospp(resolution=7)


def test_replace_without_a_new_method_leaves_the_dependent_fields_alone():
    c = Config.mask(resolution=7)
    assert _dependent(c.replace(l2=1.0)) == _dependent(c) == dict(iterations=500, ig_steps=1, smoothness="tv",
                                                                  ig_scale=1.0)
    assert c.replace(method="mask") == c
    with pytest.raises(ValueError, match="Config.method must be one of"):
        c.replace(method="gradcam")


@pytest.mark.parametrize("method", igospp.METHODS)
def test_a_preset_refuses_a_method(method):
    other = "igos" if method != "igos" else "mask"
    with pytest.raises(TypeError, match=f"Config.{method}\\(\\) sets the method itself"):
        getattr(Config, method)(method=other)
    with pytest.raises(TypeError):
        Config.preset(method, method=other)


# ----------------------------------------------------------------------------- the registry of methods
#: Bad MethodOptions: (field, value, message). Each is refused by MethodOptions itself, naming the field.
BAD_METHOD_OPTIONS = [
    ("iterations", 0, "MethodOptions.iterations must be a positive integer"),
    ("batch_size", -1, "MethodOptions.batch_size must be a positive integer"),
    ("rise_masks", 2.0, "MethodOptions.rise_masks must be a positive integer"),
    ("seed", 2**70, r"MethodOptions.seed must be an integer from -\(2\*\*63\) to 2\*\*64 - 1"),
    ("seed", 2**64, r"MethodOptions.seed must be an integer from"),
    ("seed", -(2**63) - 1, r"MethodOptions.seed must be an integer from"),
    ("seed", None, r"MethodOptions.seed must be an integer from"),
]


@pytest.mark.parametrize("field, value, message", BAD_METHOD_OPTIONS)
def test_bad_method_options_are_refused_naming_the_field(field, value, message):
    from igospp.methods import MethodOptions

    with pytest.raises(ValueError, match=message):
        MethodOptions(**{field: value})


def test_every_registry_method_builds():
    import dataclasses

    from igospp.methods import REGISTRY, RISE, GradCAM, IntegratedGrad, MethodOptions, Optimized, build

    options = MethodOptions(iterations=1, ig_steps=2, rise_masks=4)
    kinds = {"gradcam": GradCAM, "ig": IntegratedGrad, "rise": RISE}
    fields = {f.name for f in dataclasses.fields(MethodOptions)}
    for name, spec in REGISTRY.items():
        assert spec.name == name
        method = build(name, 7, options)
        assert callable(method)
        assert spec.takes_resolution == isinstance(method, Optimized), name
        assert isinstance(method, kinds.get(name, Optimized)), name
        assert set(spec.uses) <= fields and len(set(spec.uses)) == len(spec.uses), name
        if spec.takes_resolution:
            assert method.config.resolution == 7 and method.config.iterations == 1
            assert method.config.ig_steps == (1 if name == "mask" else 2)
    assert build("rise", 7, options).n_masks == 4
    displays = [spec.display for spec in REGISTRY.values()]
    assert len(set(displays)) == len(displays)
    assert set(igospp.METHODS) <= set(REGISTRY)


def test_each_registry_method_reads_exactly_the_options_it_lists():
    """Changing an option changes the built method if and only if the method lists it in ``uses``."""
    import dataclasses

    from igospp.methods import REGISTRY, MethodOptions, Optimized, build

    changed = dict(iterations=3, mask_iterations=4, ig_steps=5, rise_masks=6, ig_path_steps=7, batch_size=9, seed=11)
    assert set(changed) == {f.name for f in dataclasses.fields(MethodOptions)}

    def state(method):
        return (method.config, method.baseline) if isinstance(method, Optimized) else vars(method)

    for name, spec in REGISTRY.items():
        reference = state(build(name, 7, MethodOptions()))
        for field, value in changed.items():
            differs = state(build(name, 7, MethodOptions(**{field: value}))) != reference
            assert differs == (field in spec.uses), (name, field)


def test_ablations_are_igospp_with_one_field_replaced():
    from igospp.methods import MethodOptions, build, display_name

    options = MethodOptions(iterations=2)
    base = build("igospp", 14, options).config
    assert build("igospp_nonoise", 14, options).config == base.replace(noise_std=0.0)
    assert build("igospp_fixedstep", 14, options).config == base.replace(line_search=False)
    assert build("igospp_nobtv", 14, options).config == base.replace(smoothness="tv")
    assert build("mask", 14, MethodOptions(iterations=2, mask_iterations=9)).config.iterations == 9
    assert build("mask", 14).config.iterations == 500
    assert display_name("igospp") == "iGOS++" and display_name("my_method") == "my_method"
