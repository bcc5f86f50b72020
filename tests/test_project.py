"""The project's promises about itself: exact pins that agree everywhere, the README's commands, the public API."""

import inspect
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import igospp

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pins += extra
    return pins


def _name(req):
    return re.split(r"[=<>!~\[]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_every_dependency_is_pinned_exactly():
    for req in _pyproject_pins():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.]+", req), f"not an exact pin: {req}"
    assert "torch==2.14.1" in _pyproject_pins() and "torchvision==0.29.1" in _pyproject_pins()
    assert "jupyter-book==1.0.4.post1" in _pyproject_pins()


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(_pyproject_pins())


def test_lock_file_agrees_with_the_pins():
    lock = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[_name(name)] = version.strip()
    for req in _pyproject_pins():
        name, version = req.split("==")
        assert lock.get(_name(name)) == version, f"{req} disagrees with requirements/constraints.txt"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == "make test"


def test_public_api_is_exported_and_documented():
    for name in igospp.__all__:
        obj = getattr(igospp, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"igospp.{name} has no docstring"
    for fn in (igospp.explain, igospp.deletion_path_score, igospp.bilateral_tv, igospp.backtracking_line_search,
               igospp.blur_baseline, igospp.upsample, igospp.phi):
        assert "Example:" in fn.__doc__ and "Args:" in fn.__doc__, fn.__name__


def test_optional_submodules_load_on_first_use():
    code = ("import sys, igospp; before = 'igospp.sanity' in sys.modules; s = igospp.sanity; "
            "print(before, s.__name__, 'sanity' in dir(igospp))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "igospp.sanity", "True"]
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        igospp.nothing_here  # noqa: B018


def test_chapter_hash_covers_exactly_the_modules_the_chapter_loaded(tmp_path):
    import nbformat

    sys_path = str(ROOT / "tools")
    sys.path.insert(0, sys_path)
    try:
        import nbtool
    finally:
        sys.path.remove(sys_path)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    probe = nbformat.v4.new_code_cell(nbtool.PROBE, metadata={"tags": [nbtool.PROBE_TAG]})
    files = [str(nbtool.LIBRARY / "__init__.py"), str(nbtool.LIBRARY / "config.py"), "/elsewhere/other.py"]
    probe.outputs = [nbformat.v4.new_output("stream", name="stdout", text=json.dumps(files))]
    nb.cells.append(probe)
    assert nbtool.loaded_modules(nb) == ["__init__.py", "config.py"] and len(nb.cells) == 1
    h = nbtool.source_hash(nb, {}, ["config.py"])
    assert h == nbtool.source_hash(nb, {}, ["config.py"]) != nbtool.source_hash(nb, {}, ["config.py", "paths.py"])
    assert h != nbtool.source_hash(nb, {"n": 1}, ["config.py"])
    nb.cells[0].source = "x = 2"
    assert h != nbtool.source_hash(nb, {}, ["config.py"])
