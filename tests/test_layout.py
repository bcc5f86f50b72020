"""The module layout of 0.2: a lean core on ``import igospp``, the rest on first use, the old names deprecated."""

import importlib
import importlib.util
import json
import subprocess
import sys
import warnings

import pytest

import igospp

#: What ``import igospp`` may load: the algorithm's core (private helpers ``igospp._*`` aside).
CORE = {
    "igospp", "igospp.acceleration", "igospp.blur", "igospp.checks", "igospp.composition", "igospp.config",
    "igospp.explain", "igospp.images", "igospp.inputs", "igospp.line_search", "igospp.models",
    "igospp.objectives", "igospp.paths", "igospp.regularizers", "igospp.targets",
}
#: Dependencies of the comparison methods, the studies and the figures, never needed by the core.
HEAVY = ("captum", "pytorch_grad_cam", "timm", "cv2", "easyocr", "matplotlib")

_PROBE = """
import json, sys
import igospp
before = sorted(sys.modules)
igospp.methods, igospp.metrics, igospp.studies.benchmark
after = sorted(sys.modules)
print(json.dumps({"before": before, "after": after}))
"""


@pytest.fixture(scope="module")
def loaded():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_igospp_loads_the_core_only(loaded):
    ours = {m for m in loaded["before"] if m == "igospp" or m.startswith("igospp.") or m.startswith("igospp_")}
    extra = sorted(m for m in ours - CORE if not m.startswith("igospp._"))
    assert extra == [], f"import igospp loaded modules outside the core: {extra}"
    assert CORE <= ours, f"CORE lists modules import igospp no longer loads: {sorted(CORE - ours)}"
    heavy = sorted(m for m in loaded["before"] if m.split(".")[0] in HEAVY)
    assert heavy == [], f"import igospp loaded optional dependencies: {heavy}"


def test_the_other_modules_load_on_first_use(loaded):
    assert {"igospp.methods", "igospp.metrics", "igospp.studies", "igospp.studies.benchmark"} <= set(loaded["after"])
    assert "igospp_book" not in loaded["after"]


@pytest.mark.parametrize("old, new", sorted(igospp.MOVED.items()))
def test_old_module_names_warn_and_give_the_new_module(old, new):
    with pytest.warns(DeprecationWarning, match=f"igospp.{old} moved to {new} in igospp 0.2"):
        module = getattr(igospp, old)
    assert module is importlib.import_module(new)
    with pytest.warns(DeprecationWarning, match=f"igospp.{old} moved"):
        exec(f"from igospp import {old} as again", {})   # the `from` form goes through the same hook


def test_the_moved_table_is_complete():
    assert set(igospp.MOVED) == {"baselines", "evaluation", "stats", "paper", "sanity", "attacks", "training",
                                 "xray", "text_removal", "datasets", "data", "book"}
    for old in igospp.MOVED:
        assert importlib.util.find_spec(f"igospp.{old}") is None, f"igospp/{old}.py is back: remove it from MOVED"


@pytest.mark.parametrize("name", ["methods", "metrics", "studies", "viz", "storage", "cli"])
def test_new_module_names_do_not_warn(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        module = getattr(igospp, name)
    assert module is importlib.import_module(f"igospp.{name}")
    assert name in dir(igospp)


def test_studies_are_reached_through_igospp_studies():
    for name in ("benchmark", "stats", "paper", "sanity", "attacks", "training", "xray", "text_removal", "datasets"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            assert importlib.import_module(f"igospp.studies.{name}").__name__ == f"igospp.studies.{name}"


def test_metrics_reexport_their_submodules():
    from igospp.metrics import causal, localization, similarity

    assert igospp.metrics.insertion_deletion is causal.insertion_deletion
    assert igospp.metrics.rank_correlation is similarity.rank_correlation and igospp.metrics.ssim is similarity.ssim
    assert igospp.metrics.top_fraction is localization.top_fraction
    assert set(igospp.metrics.__all__) >= {"insertion_deletion", "Protocol", "PROTOCOLS", "rank_correlation",
                                           "ssim", "top_fraction"}


def test_unknown_attributes_raise_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        igospp.nothing_here  # noqa: B018
    with pytest.raises(AttributeError):
        igospp._private_thing  # noqa: B018
