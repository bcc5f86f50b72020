"""The project's promises about itself: exact pins that agree everywhere, the README's commands, the public API."""

import inspect
import re
import tomllib
from pathlib import Path

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
