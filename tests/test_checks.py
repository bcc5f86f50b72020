"""igospp.checks: every argument check accepts exactly the good values, returns them clean and names the argument."""

import math

import numpy as np
import pytest
import torch

from igospp import checks

# ----------------------------------------------------------------------------- integer
GOOD_INTEGERS = [
    # value, keywords, returned
    (0, {}, 0),
    (-7, {}, -7),
    (3, {"low": 0, "high": 3}, 3),                   # both bounds are inclusive
    (0, {"low": 0, "high": 3}, 0),
    (2**40, {"low": 1}, 2**40),
    (np.int64(5), {"low": 1}, 5),                    # NumPy integers are integers
    (np.int8(-2), {"high": 0}, -2),
    (np.uint16(9), {}, 9),
]

BAD_INTEGERS = [
    # value, keywords, message
    (True, {}, "must be an integer, got True"),                   # bool is not an integer here
    (False, {"low": 0}, "must be an integer >= 0, got False"),
    (np.bool_(True), {}, "must be an integer"),
    (2.0, {}, "must be an integer, got 2.0"),                     # an integral float is still a float
    (np.float64(2.0), {}, "must be an integer"),
    ("3", {}, "must be an integer, got '3'"),
    (None, {}, "must be an integer, got None"),
    (float("nan"), {}, "must be an integer, got nan"),
    (-1, {"low": 0}, "must be an integer >= 0, got -1"),
    (4, {"low": 0, "high": 3}, "must be an integer >= 0 and <= 3, got 4"),
    (4, {"high": 3}, "must be an integer <= 3, got 4"),
    (0, {"low": 1}, "must be a positive integer, got 0"),
    (np.int64(-3), {"low": 1}, "must be a positive integer, got -3"),
]


@pytest.mark.parametrize("value, kw, expected", GOOD_INTEGERS)
def test_integer_accepts_python_and_numpy_integers_and_returns_an_int(value, kw, expected):
    out = checks.integer("shard", value, **kw)
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value, kw, message", BAD_INTEGERS)
def test_integer_refuses_and_names_the_argument(value, kw, message):
    with pytest.raises(ValueError, match="^Config.shard " + _re(message)):
        checks.integer("Config.shard", value, **kw)


# ----------------------------------------------------------------------------- positive_int
@pytest.mark.parametrize("value, expected", [(1, 1), (20, 20), (np.int32(8), 8), (np.uint8(255), 255)])
def test_positive_int_accepts(value, expected):
    out = checks.positive_int("batch_size", value)
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", [0, -1, np.int64(0), True, 1.0, 1.5, "1", None, float("inf")])
def test_positive_int_refuses_with_the_documented_message(value):
    with pytest.raises(ValueError) as err:
        checks.positive_int("Config.iterations", value)
    assert str(err.value) == f"Config.iterations must be a positive integer, got {_shown(value)!r}."


# ----------------------------------------------------------------------------- number
GOOD_NUMBERS = [
    # value, keywords, returned
    (0.5, {}, 0.5),
    (20, {"low": 0.0}, 20.0),                        # an int is a number, returned as a float
    (0.0, {"low": 0.0}, 0.0),                        # low is inclusive unless strict
    (1e-300, {"low": 0.0, "strict": True}, 1e-300),
    (-1e300, {}, -1e300),
    (0.99, {"low": 0.0, "high": 1.0}, 0.99),
    (np.float32(0.25), {"low": 0.0}, 0.25),          # NumPy scalars are numbers
    (np.int64(3), {"low": 0.0}, 3.0),
]

BAD_NUMBERS = [
    (float("nan"), {}, "must be a finite number, got nan"),
    (float("inf"), {}, "must be a finite number, got inf"),
    (-math.inf, {"low": 0.0}, "must be a finite number >= 0.0, got -inf"),
    (np.float64("nan"), {"low": 0.0}, "must be a finite number >= 0.0"),
    (True, {}, "must be a finite number, got True"),               # bool is not a number here
    ("0.5", {}, "must be a finite number, got '0.5'"),
    (None, {}, "must be a finite number, got None"),
    (1 + 0j, {}, "must be a finite number"),                       # complex is not real
    (-0.1, {"low": 0.0}, "must be a finite number >= 0.0, got -0.1"),
    (0.0, {"low": 0.0, "strict": True}, "must be a finite number > 0.0, got 0.0"),
    (1.0, {"low": 0.0, "strict": True, "high": 1.0}, "must be a finite number > 0.0 and < 1.0, got 1.0"),
    (2.0, {"high": 1.0}, "must be a finite number < 1.0, got 2.0"),   # high is exclusive
]


@pytest.mark.parametrize("value, kw, expected", GOOD_NUMBERS)
def test_number_accepts_finite_reals_and_returns_a_float(value, kw, expected):
    out = checks.number("sigma", value, **kw)
    assert out == expected and type(out) is float


@pytest.mark.parametrize("value, kw, message", BAD_NUMBERS)
def test_number_refuses_and_names_the_argument(value, kw, message):
    with pytest.raises(ValueError, match="^Config.btv_sigma " + _re(message)):
        checks.number("Config.btv_sigma", value, **kw)


# ----------------------------------------------------------------------------- probability
@pytest.mark.parametrize("value", [0.95, 1e-9, 0.5, np.float64(0.999)])
def test_probability_accepts_the_open_unit_interval(value):
    out = checks.probability("confidence", value)
    assert out == pytest.approx(float(value)) and type(out) is float


@pytest.mark.parametrize("value", [0.0, 1.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.9", None])
def test_probability_refuses_and_names_the_argument(value):
    with pytest.raises(ValueError, match=r"^confidence must be a finite number > 0\.0 and < 1\.0, got "):
        checks.probability("confidence", value)


# ----------------------------------------------------------------------------- choice
@pytest.mark.parametrize("value, choices", [("btv", ("tv", "btv")), ("tv", ["tv", "btv"]), (None, (None, "a")),
                                            (3, range(5)), ("logit", {"softmax", "logit"})])
def test_choice_returns_the_value_itself(value, choices):
    assert checks.choice("smoothness", value, choices) is value


@pytest.mark.parametrize("value, choices, shown", [
    ("prob", ("softmax", "logit"), "('softmax', 'logit')"),
    ("TV", ["tv", "btv"], "('tv', 'btv')"),            # case matters; a list is shown as a tuple
    (None, ("tv", "btv"), "('tv', 'btv')"),
    (5, range(5), "(0, 1, 2, 3, 4)"),
])
def test_choice_refuses_listing_the_choices(value, choices, shown):
    with pytest.raises(ValueError) as err:
        checks.choice("Config.score", value, choices)
    assert str(err.value) == f"Config.score must be one of {shown}, got {value!r}."


# ----------------------------------------------------------------------------- flag
@pytest.mark.parametrize("value", [True, False])
def test_flag_accepts_booleans(value):
    assert checks.flag("line_search", value) is value


@pytest.mark.parametrize("value", [1, 0, "yes", "True", None, 1.0, np.bool_(True)])
def test_flag_refuses_everything_else(value):
    with pytest.raises(ValueError) as err:
        checks.flag("Config.line_search", value)
    assert str(err.value) == f"Config.line_search must be True or False, got {value!r}."


# ----------------------------------------------------------------------------- seed
#: torch.Generator.manual_seed takes -(2**63) .. 2**64 - 1; both ends are seeds, one past either is not.
GOOD_SEEDS = [0, 1, -1, -(2**63), 2**63, 2**64 - 1, np.int64(-5), np.uint64(2**64 - 1)]
BAD_SEEDS = [2**64, -(2**63) - 1, 2**70, -(2**70), True, 1.0, 0.5, "0", None, float("nan")]


@pytest.mark.parametrize("value", GOOD_SEEDS)
def test_seed_accepts_every_seed_torch_takes(value):
    out = checks.seed("Config.seed", value)
    assert out == int(value) and type(out) is int
    torch.Generator().manual_seed(out)                    # and torch indeed takes it


@pytest.mark.parametrize("value", BAD_SEEDS)
def test_seed_refuses_stating_the_range(value):
    with pytest.raises(ValueError) as err:
        checks.seed("RISE.seed", value)
    assert str(err.value) == (f"RISE.seed must be an integer from -(2**63) to 2**64 - 1 (what "
                              f"torch.Generator.manual_seed accepts), got {value!r}.")


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_the_seed_range_is_torchs(value):
    """Just past either end, torch itself fails (late, with an overflow): the check is not stricter than torch."""
    assert checks.SEED_RANGE == (-(2**63), 2**64 - 1)
    with pytest.raises((ValueError, RuntimeError, OverflowError)):
        torch.Generator().manual_seed(value)


# ----------------------------------------------------------------------------- untouched
def test_untouched_does_nothing_for_a_plain_function():
    with checks.untouched(lambda x: x):
        pass


def test_untouched_restores_batch_norm_statistics_gradients_and_modes():
    """The guard itself (tests/test_side_effects.py checks every entry point that uses it)."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).train()
    net(torch.randn(5, 3, generator=gen)).sum().backward()
    net[2].bias.grad = None
    grad, mean, count = net[0].weight.grad, net[1].running_mean.clone(), net[1].num_batches_tracked.clone()
    old_grad = grad.clone()
    with checks.untouched(net):
        net(torch.randn(5, 3, generator=gen)).sum().backward()
        net.zero_grad()
        net(torch.randn(5, 3, generator=gen)).sum().backward()
        net.eval()
    assert net[0].weight.grad is grad and torch.equal(grad, old_grad)
    assert net[2].bias.grad is None
    assert torch.equal(net[1].running_mean, mean) and torch.equal(net[1].num_batches_tracked, count)
    assert net.training and all(m.training for m in net)


def test_untouched_works_inside_inference_mode():
    net = torch.nn.BatchNorm1d(2).train()
    with torch.inference_mode(), checks.untouched(net):
        net(torch.ones(3, 2) * torch.arange(3.0).view(3, 1))
    assert torch.equal(net.running_mean, torch.zeros(2)) and int(net.num_batches_tracked) == 0


# ----------------------------------------------------------------------------- helpers
def _re(message: str) -> str:
    """``message`` as a regular expression matching it literally."""
    import re

    return re.escape(message)


def _shown(value):
    """The value as the message shows it: NumPy integers are converted to int before the bound is checked."""
    return int(value) if isinstance(value, np.integer) else value
