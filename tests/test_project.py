"""The project's promises about itself: ranges and exact pins that agree, the README's commands, the public API."""

import inspect
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

import igospp

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements():
    """Every requirement of pyproject.toml, core and extras, less the extras' references to igospp itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return [Requirement(r) for r in reqs if Requirement(r).name != "igospp"]


def _name(req):
    return re.split(r"[=<>!~\[]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _lock():
    lock = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            lock[_name(name)] = version.strip()
    return lock


def test_library_states_ranges_and_the_lock_pins_them_exactly():
    for req in _pyproject_requirements():
        specs = {s.operator for s in req.specifier}
        assert ">=" in specs and "<" in specs and "==" not in specs, f"not a >=,< range: {req}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert {e: [r for r in reqs if r.startswith("igospp[")] for e, reqs in project["optional-dependencies"].items()
            if e in ("test", "book")} == {e: ["igospp[methods,xray,viz,lite2]"] for e in ("test", "book")}
    lock = _lock()
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1" and lock["jupyter-book"] == "1.0.4.post1"
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        assert not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+]+", line), \
            f"not an exact pin: {line}"


def test_environment_yml_pins_every_direct_dependency_as_the_lock_does():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = dict(p.split("==") for p in pip)
    assert sorted(_name(n) for n in pins) == sorted({_name(r.name) for r in _pyproject_requirements()})
    lock = _lock()
    for name, version in pins.items():
        assert lock.get(_name(name)) == version, f"environment.yml {name}=={version} disagrees with the lock"


def test_the_pinned_versions_satisfy_the_stated_ranges():
    lock = _lock()
    for req in _pyproject_requirements():
        assert _name(req.name) in lock, f"{req.name} is not in requirements/constraints.txt"
        assert req.specifier.contains(lock[_name(req.name)], prereleases=True), \
            f"{req.name}=={lock[_name(req.name)]} (requirements/constraints.txt) is outside {req}"


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
    code = ("import sys, igospp; before = 'igospp.studies.sanity' in sys.modules; s = igospp.studies.sanity; "
            "print(before, s.__name__, 'studies' in dir(igospp) and 'sanity' in dir(igospp.studies))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "igospp.studies.sanity", "True"]
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
    files = [str(nbtool.LIBRARY / "igospp" / "__init__.py"), str(nbtool.LIBRARY / "igospp" / "config.py"),
             str(nbtool.LIBRARY / "igospp_book" / "__init__.py"), "/elsewhere/other.py"]
    probe.outputs = [nbformat.v4.new_output("stream", name="stdout", text=json.dumps(files))]
    nb.cells.append(probe)
    assert nbtool.loaded_modules(nb) == ["igospp/__init__.py", "igospp/config.py", "igospp_book/__init__.py"]
    assert len(nb.cells) == 1
    assert all((nbtool.LIBRARY / f).exists() for f in nbtool.library_files())
    assert {"igospp/config.py", "igospp_book/__init__.py"} <= set(nbtool.library_files())
    h = nbtool.source_hash(nb, {}, ["igospp/config.py"])
    assert h == nbtool.source_hash(nb, {}, ["igospp/config.py"])
    assert h != nbtool.source_hash(nb, {}, ["igospp/config.py", "igospp/paths.py"])
    assert h != nbtool.source_hash(nb, {"n": 1}, ["igospp/config.py"])
    nb.cells[0].source = "x = 2"
    assert h != nbtool.source_hash(nb, {}, ["igospp/config.py"])


def test_prose_puts_each_glued_value_where_the_reader_sees_it():
    import nbformat

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import nbtool
    finally:
        sys.path.remove(str(ROOT / "tools"))
    prefix = "application/papermill.record/"     # what myst_nb.glue writes in an executed notebook
    code = nbformat.v4.new_code_cell("glue(...)")
    code.outputs = [nbformat.v4.new_output("display_data", data={prefix + "text/plain": text},
                                           metadata={"scrapbook": {"mime_prefix": prefix, "name": name}})
                    for name, text in (("word", "'reproduced'"), ("d", "0.12345"), ("n", "31"))]
    md = nbformat.v4.new_markdown_cell("It is {glue:text}`word` on {glue:text}`n` photos: {glue:text}`d:.3f`, "
                                       "{glue}`d`; {glue:text}`gone`.")
    text, missing = nbtool.prose(nbformat.v4.new_notebook(cells=[md, code]))
    assert text == "It is reproduced on 31 photos: 0.123, 0.12345; [NOT GLUED: gone]."
    assert missing == ["gone"]
