"""Parameter profiles, the chapters' parameter checks and the commands the book prints.

Every chapter checks its parameters by name in the cell right after its ``parameters`` cell
(``igospp_book.check_parameters``, one rule per parameter name in ``igospp_book.RULES``): every
profile passes, every bad value is refused there with a message naming the parameter. Every profile
file (``book/params/<profile>/<chapter>[_variant].yaml``) is a flat mapping that sets only names its
chapter's ``parameters`` cell defines, and every ``papermill`` / ``make chapter`` command printed in
README.md, book/intro.md and the chapters' markdown works as printed: papermill commands are run with
``--prepare-only`` (parameters injected, nothing executed) into a temporary file, ``make chapter`` commands
are expanded by make and resolved by tools/nbtool.py without running the chapter.
"""

from __future__ import annotations

import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
import yaml
from PIL import Image

from igospp import SAMPLE_IMAGES
from igospp_book import RELATIONS, RULES, ParameterError, check_parameters, load_images

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "book" / "chapters"
PARAMS = ROOT / "book" / "params"
DOCS = [ROOT / "README.md", ROOT / "book" / "intro.md"]

sys.path.insert(0, str(ROOT / "tools"))
try:
    import nbtool
finally:
    sys.path.remove(str(ROOT / "tools"))


# --- what the documentation prints -------------------------------------------------------------------------

COMMAND = re.compile(r"^(?:\.venv/bin/)?papermill\s|^make chapter(?:\s|$)")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def _blocks(text: str) -> tuple[list[list[str]], str]:
    """The fenced code blocks of a markdown text (as lists of lines) and the text outside them."""
    blocks, outside, current, fence = [], [], None, None
    for line in text.splitlines():
        match = FENCE.match(line)
        if current is None and match:
            current, fence = [], match.group(1)
        elif current is not None and match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                and not line.strip()[len(match.group(1)):].strip():
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
        else:
            outside.append(line)
    return blocks, "\n".join(outside)


def _logical_lines(lines: list[str]) -> list[str]:
    """Join backslash continuations; drop shell prompts."""
    joined, pending = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.strip()[:-1].strip() + " "
            continue
        joined.append((pending + line.strip()).strip())
        pending = ""
    if pending:
        joined.append(pending.strip())
    return [re.sub(r"^\$\s+", "", line) for line in joined]


def _markdown_sources() -> list[tuple[str, str]]:
    sources = [(str(path.relative_to(ROOT)), path.read_text()) for path in DOCS]
    for path in sorted(CHAPTERS.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        sources += [(f"{path.relative_to(ROOT)} cell {i}", cell.source) for i, cell in enumerate(nb.cells)
                    if cell.cell_type == "markdown"]
    return sources


def documented_commands() -> list[tuple[str, str, frozenset[str]]]:
    """(where, command, folders a ``mkdir -p`` earlier in the same block creates) for every printed command."""
    found = []
    for where, text in _markdown_sources():
        blocks, outside = _blocks(text)
        for block in blocks:
            made: set[str] = set()
            for line in _logical_lines(block):
                if line.startswith("mkdir -p "):
                    made.update(str(Path(d)) for d in shlex.split(line)[2:])
                elif COMMAND.match(line):
                    found.append((where, line, frozenset(made)))
        for span in re.findall(r"`([^`\n]+)`", outside):    # in prose: whole commands, not `papermill -f`
            if COMMAND.match(span.strip()) and re.search(r"\.ipynb\b|NB=", span):
                found.append((where, span.strip(), frozenset()))
    return list(dict.fromkeys(found))


COMMANDS = documented_commands()
PAPERMILL = [c for c in COMMANDS if not c[1].startswith("make")]
MAKE = [c for c in COMMANDS if c[1].startswith("make")]

# papermill's options that take values (papermill --help), by the number of values
TAKES = {"-p": 2, "--parameters": 2, "-r": 2, "--parameters_raw": 2, "-f": 1, "--parameters_file": 1,
         "-y": 1, "--parameters_yaml": 1, "-b": 1, "--parameters_base64": 1, "--cwd": 1, "-k": 1, "--kernel": 1,
         "-l": 1, "--language": 1, "--engine": 1, "--log-level": 1, "--start-timeout": 1, "--start_timeout": 1,
         "--execution-timeout": 1, "--autosave-cell-every": 1, "--stdout-file": 1, "--stderr-file": 1}


def _papermill_arguments(args: list[str]) -> tuple[list[int], dict[str, list[str]]]:
    """Indexes of the positional arguments, and the values of each option."""
    positional, options, i = [], {}, 0
    while i < len(args):
        arg = args[i]
        if arg in TAKES:
            options.setdefault(arg, []).extend(args[i + 1:i + 1 + TAKES[arg]])
            i += 1 + TAKES[arg]
        else:
            if not arg.startswith("-") or arg == "-":
                positional.append(i)
            i += 1
    return positional, options


def parameter_names(chapter: Path) -> set[str]:
    """The names assigned in the chapter's cell tagged ``parameters`` (read here without nbtool)."""
    nb = nbformat.read(str(chapter), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def injected(path: Path) -> str:
    """The source of the cell papermill injected into a prepared notebook."""
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) <= 1
    return cells[0].source if cells else ""


def assert_injected_cell_is_sound(prepared: Path, chapter: Path, where: str) -> None:
    source = injected(prepared)
    compile(source, f"<parameters injected by {where}>", "exec")
    names = {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    unknown = names - parameter_names(chapter)
    assert not unknown, f"{where} injects {sorted(unknown)}, which {chapter.name}'s parameters cell does not define"


def test_the_documentation_prints_commands_to_check():
    wheres = {where.split(" cell ")[0] for where, _, _ in COMMANDS}
    assert {"README.md", "book/intro.md"} <= wheres
    assert PAPERMILL and MAKE


@pytest.mark.parametrize(("where", "command", "made"), PAPERMILL, ids=[f"{w}: {c}" for w, c, _ in PAPERMILL])
def test_papermill_command_works_as_printed(where, command, made, tmp_path):
    args = shlex.split(command)[1:]
    positional, options = _papermill_arguments(args)
    assert len(positional) == 2, f"{where}: expected `papermill NOTEBOOK OUTPUT [options]`: {command}"
    notebook, output = Path(args[positional[0]]), Path(args[positional[1]])
    assert (ROOT / notebook).is_file(), f"{where}: {notebook} does not exist"
    for folder in options.get("--cwd", []):
        assert (ROOT / folder).is_dir(), f"{where}: --cwd {folder} does not exist"
    for file in options.get("-f", []) + options.get("--parameters_file", []):
        assert (ROOT / file).is_file(), f"{where}: parameter file {file} does not exist"
    # papermill refuses to write into a missing folder; _build/ does not exist on a fresh checkout
    parent = output.parent
    assert parent == Path(".") or str(parent) in made or (
        (ROOT / parent).is_dir() and parent.parts[0] != "_build"), (
        f"{where}: the output folder {parent} may not exist; print `mkdir -p {parent}` before the command")

    args[positional[1]] = str(tmp_path / "prepared.ipynb")
    run = subprocess.run([sys.executable, "-m", "papermill", *args, "--prepare-only"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{where}: {command}\n{run.stderr[-2000:]}"
    assert "Passed unknown parameter" not in run.stderr, f"{where}: {command}\n{run.stderr[-2000:]}"
    assert_injected_cell_is_sound(tmp_path / "prepared.ipynb", ROOT / notebook, f"{where}: {command}")


@pytest.mark.parametrize(("where", "command", "made"), MAKE, ids=[f"{w}: {c}" for w, c, _ in MAKE])
def test_make_chapter_command_works_as_printed(where, command, made, tmp_path, monkeypatch):
    words = shlex.split(command)
    assigned = dict(w.split("=", 1) for w in words[2:] if "=" in w)
    assert len(assigned) == len(words) - 2 and set(assigned) <= {"NB", "PROFILE", "PARAMS"}, (
        f"{where}: expected `make chapter NB=... [PROFILE=... | PARAMS=...]`: {command}")
    assert "NB" in assigned and (ROOT / assigned["NB"]).is_file(), f"{where}: no notebook {assigned.get('NB')}"
    if "PARAMS" in assigned:
        assert (ROOT / assigned["PARAMS"]).is_file(), f"{where}: {assigned['PARAMS']} does not exist"
    if assigned.get("PROFILE", "book") != "book":
        file = PARAMS / assigned["PROFILE"] / f"{Path(assigned['NB']).stem}.yaml"
        assert file.is_file(), f"{where}: {file.relative_to(ROOT)} does not exist"

    if shutil.which("make"):   # what the Makefile's recipe hands to nbtool
        dry = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        line = next(x for x in dry.stdout.splitlines() if "tools/nbtool.py run" in x)
        argv = shlex.split(line)
        argv = argv[argv.index("tools/nbtool.py") + 1:]
    else:
        argv = ["run", assigned["NB"]] + [f"--{k.lower()}={v}" for k, v in assigned.items() if k != "NB"]
    args = nbtool.parser().parse_args(argv)
    monkeypatch.chdir(ROOT)
    chapter, profile, params, out = nbtool.resolve_run(args.notebook, args.profile, args.params, args.out)
    assert chapter == (ROOT / assigned["NB"]).resolve()
    assert not out.resolve().is_relative_to(ROOT / "book"), f"{where}: would write into the book's sources: {out}"
    assert set(params) <= parameter_names(chapter)
    papermill.execute_notebook(str(chapter), str(tmp_path / "prepared.ipynb"), parameters=params,
                               prepare_only=True, kernel_name="python3", progress_bar=False)
    assert_injected_cell_is_sound(tmp_path / "prepared.ipynb", chapter, f"{where}: {command}")


def test_every_book_params_path_the_book_mentions_exists():
    """Paths such as ``book/params/full/04_igospp.yaml`` in the docs and chapters (cells of any kind)."""
    texts = [(str(p.relative_to(ROOT)), p.read_text()) for p in DOCS]
    for path in sorted(CHAPTERS.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        texts += [(f"{path.relative_to(ROOT)} cell {i}", c.source) for i, c in enumerate(nb.cells)]
    missing = [f"{where}: {ref}" for where, text in texts
               for ref in re.findall(r"book/params/[\w./-]*\w", text) if not (ROOT / ref).exists()]
    assert not missing, "mentioned but not there:\n" + "\n".join(missing)


# --- the profile files -------------------------------------------------------------------------------------

CHAPTER_FILES = sorted(CHAPTERS.glob("*.ipynb"))
PROFILE_FILES = sorted(p for p in PARAMS.glob("*/*") if p.suffix in (".yaml", ".yml"))


def chapter_of(path: Path) -> Path | None:
    """``NN_name.yaml`` and ``NN_name_variant.yaml`` belong to ``NN_name.ipynb``."""
    found = [c for c in CHAPTER_FILES if path.stem == c.stem or path.stem.startswith(c.stem + "_")]
    return max(found, key=lambda c: len(c.stem)) if found else None


def test_profiles_are_folders_of_flat_files():
    assert {p.name for p in PARAMS.iterdir() if p.is_dir()} >= {"tiny", "full"}
    assert not [p.name for p in PARAMS.iterdir() if p.is_file()], "profiles are folders: book/params/<profile>/"
    assert not (PARAMS / "book").exists() or all(chapter_of(p) for p in (PARAMS / "book").iterdir())
    for profile in (p for p in PARAMS.iterdir() if p.is_dir()):
        strays = [p.name for p in profile.iterdir() if p.suffix not in (".yaml", ".yml")]
        assert not strays, f"{profile.relative_to(ROOT)} holds {strays}"


@pytest.mark.parametrize("path", PROFILE_FILES, ids=[str(p.relative_to(PARAMS)) for p in PROFILE_FILES])
def test_profile_file_sets_only_its_chapters_parameters(path, tmp_path):
    chapter = chapter_of(path)
    assert chapter is not None, f"{path.name}: named after no chapter (<chapter stem>[_variant].yaml)"
    text = path.read_text()
    assert text.startswith("#"), f"{path.name}: starts with a comment saying what it is"
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{path.name}: not a mapping (papermill -f needs name: value lines)"
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    assert not nested, f"{path.name}: {nested} hold mappings; one flat file per chapter"
    unknown = set(data) - parameter_names(chapter)
    assert not unknown, f"{path.name}: {sorted(unknown)} are not parameters of {chapter.name}"
    assert "figure_path" not in data, "no profile writes figures into the book's sources"
    assert nbtool.load_params(path, chapter) == data
    papermill.execute_notebook(str(chapter), str(tmp_path / "prepared.ipynb"), parameters=data,
                               prepare_only=True, kernel_name="python3", progress_bar=False)
    assert_injected_cell_is_sound(tmp_path / "prepared.ipynb", chapter, str(path.relative_to(ROOT)))


@pytest.mark.parametrize("chapter", CHAPTER_FILES, ids=[c.stem for c in CHAPTER_FILES])
def test_tiny_profile_prepares_every_chapter(chapter, tmp_path):
    """CI runs the tiny file of every chapter: the papermill command line with it injects sound parameters."""
    tiny = PARAMS / "tiny" / f"{chapter.stem}.yaml"
    assert tiny.is_file(), f"{tiny.relative_to(ROOT)} is missing: every chapter needs a tiny profile file"
    run = subprocess.run([sys.executable, "-m", "papermill", str(chapter.relative_to(ROOT)),
                          str(tmp_path / "prepared.ipynb"), "--cwd", "book/chapters",
                          "-f", str(tiny.relative_to(ROOT)), "--prepare-only"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "Passed unknown parameter" not in run.stderr, run.stderr[-2000:]
    assert_injected_cell_is_sound(tmp_path / "prepared.ipynb", chapter, str(tiny.relative_to(ROOT)))
    assert yaml.safe_load(tiny.read_text()) in (None, nbtool.profile_params("tiny", chapter))


def test_full_profile_has_the_papers_table_2():
    table1 = yaml.safe_load((PARAMS / "full" / "08_benchmark.yaml").read_text())
    table2 = yaml.safe_load((PARAMS / "full" / "08_benchmark_table2.yaml").read_text())
    assert table1["resolutions"] == [224, 28, 7] and table1["model"] == "resnet50"
    assert table2["model"] == "vgg19" and table2["resolutions"] == [224, 28, 14]
    same = {k: v for k, v in table1.items() if k not in ("model", "resolutions", "out")}
    assert {k: table2.get(k) for k in same} == same
    assert table2["out"] != table1["out"], "the two tables keep their records apart"
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "-f book/params/full/08_benchmark_table2.yaml" in intro


def test_full_profile_placeholders_say_where_to_set_them():
    for path in sorted((PARAMS / "full").glob("*.yaml")):
        text = path.read_text()
        header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        data = yaml.safe_load(text)
        for name, value in data.items():
            if isinstance(value, str) and value.startswith("/data/"):
                assert name in header and "-p " in header, f"{path.name}: the header does not say how to set {name}"
    rerunning = (ROOT / "book" / "intro.md").read_text().split("## Rerunning a chapter")[1]
    assert "-p images /your/imagenet/val" in rerunning and "/data/imagenet/val" in rerunning


def test_nbtool_check_reports_profile_problems(tmp_path, monkeypatch):
    params = tmp_path / "params"
    shutil.copytree(PARAMS, params)
    monkeypatch.setattr(nbtool, "PARAMS", params)
    assert nbtool.profile_problems() == []
    (params / "tiny" / "04_igospp.yaml").unlink()
    (params / "full" / "02_igos.yaml").write_text("n_images: 3\nnot_a_parameter: 1\n")
    (params / "full" / "99_nothing.yaml").write_text("n_images: 3\n")
    (params / "old.yaml").write_text("04_igospp:\n  n_images: 1\n")
    problems = "\n".join(nbtool.profile_problems())
    assert "04_igospp.yaml: missing; every chapter needs a tiny profile file" in problems
    assert "not_a_parameter not defined by the parameters cell of 02_igos.ipynb" in problems
    assert "99_nothing.yaml: named after no chapter" in problems
    assert "old.yaml: profiles are folders" in problems
    chapter = CHAPTERS / "04_igospp.ipynb"
    with pytest.raises(nbtool.ProfileError, match="missing; profile 'tiny' has no file for 04_igospp.ipynb"):
        nbtool.profile_params("tiny", chapter)
    assert nbtool.profile_params("book", chapter) == {}     # the book profile: the defaults, no file needed


def test_nbtool_run_resolves_profiles_and_files(monkeypatch):
    monkeypatch.chdir(ROOT)
    chapter, profile, params, out = nbtool.resolve_run("book/chapters/04_igospp.ipynb", profile="full")
    assert profile == "full" and params["device"] == "cuda" and out == ROOT / "_build/runs/full/04_igospp.ipynb"
    assert nbtool.resolve_run("04_igospp")[1:] == ("book", {}, ROOT / "_build/runs/book/04_igospp.ipynb")
    _, profile, params, out = nbtool.resolve_run("08_benchmark", params="book/params/full/08_benchmark_table2.yaml")
    assert profile == "full" and params["model"] == "vgg19" and out.name == "08_benchmark_table2.ipynb"
    with pytest.raises(nbtool.ProfileError, match="for 08_benchmark.ipynb, not 04_igospp.ipynb"):
        nbtool.resolve_run("04_igospp", params="book/params/full/08_benchmark_table2.yaml")
    with pytest.raises(nbtool.ProfileError, match="not both"):
        nbtool.resolve_run("04_igospp", profile="full", params="book/params/full/04_igospp.yaml")
    with pytest.raises(nbtool.ProfileError, match="profiles: book, full, tiny"):
        nbtool.resolve_run("04_igospp", profile="gpu")


# --- the chapters' parameter checks (issue 13, case 6) -----------------------------------------------------

CHECK_TAG = "check-parameters"


def parameters_cell(chapter: Path) -> tuple[list, int]:
    nb = nbformat.read(str(chapter), as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    return nb.cells, index


def ordered_parameter_names(chapter: Path) -> list[str]:
    cells, index = parameters_cell(chapter)
    return [t.id for node in ast.parse(cells[index].source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)]


def defaults(chapter: Path) -> dict:
    """The values the chapter's parameters cell assigns (the book profile)."""
    cells, index = parameters_cell(chapter)
    namespace: dict = {}
    exec(compile(cells[index].source, f"<parameters of {chapter.name}>", "exec"), namespace)
    return {name: namespace[name] for name in ordered_parameter_names(chapter)}


def first_chapter_with(name: str) -> Path:
    return next(c for c in CHAPTER_FILES if name in parameter_names(c))


def hint(name: str) -> str:
    return f"(chapter parameter; set it in the parameters cell or with papermill -p {name} ...)"


def test_every_chapter_parameter_has_a_rule_and_every_rule_a_parameter():
    used = set().union(*(parameter_names(c) for c in CHAPTER_FILES))
    assert used - set(RULES) == set(), "chapter parameters without a rule in igospp_book.RULES"
    assert set(RULES) - used == set(), "rules in igospp_book.RULES for names no chapter has"
    assert len(used) > 60


def test_every_relation_applies_to_some_chapter():
    for relation in RELATIONS:
        assert any(set(relation.names) <= parameter_names(c) for c in CHAPTER_FILES), relation.names


@pytest.mark.parametrize("chapter", CHAPTER_FILES, ids=[c.stem for c in CHAPTER_FILES])
def test_chapter_defaults_pass_the_check(chapter):
    check_parameters(defaults(chapter))


def _placeholders_replaced(data: dict, root: Path) -> dict:
    """Profile values with the ``/data/...`` placeholders moved under ``root`` (folders and files made)."""
    out = dict(data)
    for name, value in data.items():
        if isinstance(value, str) and value.startswith("/data/"):
            path = root / value.lstrip("/")
            if RULES[name].path == "folder":
                path.mkdir(parents=True, exist_ok=True)
            elif RULES[name].path == "file":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            out[name] = str(path)
    return out


@pytest.mark.parametrize("path", PROFILE_FILES, ids=[str(p.relative_to(PARAMS)) for p in PROFILE_FILES])
def test_profile_file_passes_the_check(path, tmp_path):
    chapter = chapter_of(path)
    data = yaml.safe_load(path.read_text()) or {}
    check_parameters({**defaults(chapter), **_placeholders_replaced(data, tmp_path)})
    # a placeholder left as it is (no such folder here) is refused in the check cell, by name
    missing = [n for n, v in data.items() if isinstance(v, str) and v.startswith("/data/")
               and RULES[n].path in ("folder", "file") and not Path(v).exists()]
    if missing:
        with pytest.raises(ParameterError) as err:
            check_parameters({**defaults(chapter), **data})
        for name in missing:
            assert f"{name} must be" in str(err.value) and hint(name) in str(err.value)


A_FILE = str(ROOT / "README.md")
A_FOLDER = str(ROOT / "book")
# name, bad value, what the message says, chapter (None: the first that has the name), other values set.
# Every name of igospp_book.RULES has a row; the rows with a chapter test the rules on several parameters.
BAD = [
    ("device", "gpu", "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'", None, {}),
    ("device", "mps", "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'mps'", None, {}),
    ("model", "resnet5", "model must be one of ('efficientnet_lite0', 'efficientnet_lite2', 'resnet50', 'vgg19') or "
     "'timm:<name>', got 'resnet5'", None, {}),
    ("model", "timm:", "model must be one of", None, {}),
    ("images", "no/such/folder", "images must be 'bundled' or the path of an existing folder, got "
     "'no/such/folder', which does not exist", None, {}),
    ("images", A_FILE, "which is not a folder", None, {}),
    ("n_images", 2.0, "n_images must be a positive integer, got 2.0", None, {}),
    ("image_index", -1, "image_index must be an integer >= 0, got -1", None, {}),
    ("image_index", 10, "image_index must be at most 9 with images = 'bundled'", None, {}),
    ("figure_images", 0, "figure_images must be a positive integer, got 0", None, {}),
    ("figure_images", 7, "figure_images must be at most n_images (6), got 7", "10_adversarial", {"n_images": 6}),
    ("failure_image", "tulip", "failure_image must be one of ('', 'chelsea'", None, {}),
    ("seed", -1, "seed must be an integer >= 0 and <= 4294967295, got -1", None, {}),
    ("seed", 2**70, "seed must be an integer >= 0 and <= 4294967295", None, {}),
    ("threads", 0, "threads must be a positive integer or None, got 0", None, {}),
    ("resolution", 0, "resolution must be a positive integer, got 0", None, {}),
    ("resolution", 448, "resolution must be at most 224, the input side of model 'efficientnet_lite0', got 448",
     None, {}),
    ("resolutions", [], "resolutions must be a non-empty list of positive integers, got []", None, {}),
    ("resolutions", 28, "resolutions must be a non-empty list of positive integers, got 28", None, {}),
    ("resolutions", [7, -28], "resolutions[1] must be a positive integer, got -28", None, {}),
    ("resolutions", [7, 448], "resolutions must be at most 224, the input side of model", None, {}),
    ("ablation_resolutions", [28, 28], "ablation_resolutions must not repeat a value, got [28, 28]", None, {}),
    ("ablation_resolutions", [300], "ablation_resolutions must be at most 224", None, {}),
    ("mask_resolution", 2.5, "mask_resolution must be a positive integer, got 2.5", None, {}),
    ("mask_resolution", 64, "mask_resolution must be at most image_size (32), got 64", "09_sanity_checks", {}),
    ("iterations", 0, "iterations must be a positive integer, got 0", None, {}),
    ("ig_steps", -3, "ig_steps must be a positive integer, got -3", None, {}),
    ("mask_iterations", True, "mask_iterations must be a positive integer, got True", None, {}),
    ("adversarial_iterations", 0, "adversarial_iterations must be a positive integer", None, {}),
    ("label_iterations", 0, "label_iterations must be a positive integer", None, {}),
    ("label_ig_steps", 0, "label_ig_steps must be a positive integer", None, {}),
    ("explorer_iterations", "10", "explorer_iterations must be a positive integer, got '10'", None, {}),
    ("explorer_ig_steps", 0, "explorer_ig_steps must be a positive integer", None, {}),
    ("lambda_grid", [[1, -2]], "lambda_grid[0][1] must be a finite number >= 0.0, got -2", None, {}),
    ("lambda_grid", [[1, 2, 3]], "lambda_grid[0] must be a pair [l1, l2] of non-negative numbers", None, {}),
    ("lambda_grid", [[1, 2], [1.0, 2.0]], "lambda_grid must not repeat a value", None, {}),
    ("lambda2_values", [20, -1], "lambda2_values[1] must be a finite number >= 0.0, got -1", None, {}),
    ("explorer_lambda2", 20, "explorer_lambda2 must be a non-empty list of non-negative numbers", None, {}),
    ("explorer_sigma", [0.01, 0], "explorer_sigma[1] must be a finite number > 0.0, got 0", None, {}),
    ("interactive", "yes", "interactive must be True or False, got 'yes'", None, {}),
    ("fixed_steps", [1.6, 1.6], "fixed_steps must not repeat a value", None, {}),
    ("warm_start", 0.5, "warm_start must be a finite number >= 1.0, got 0.5", None, {}),
    ("trial_steps", 0, "trial_steps must be a positive integer", None, {}),
    ("insert_fraction", 1.5, "insert_fraction must be a finite number > 0.0 and <= 1.0, got 1.5", None, {}),
    ("rise_masks", 0, "rise_masks must be a positive integer", None, {}),
    ("protocol", "RISE", "protocol must be one of ('igospp', 'rise'), got 'RISE'", None, {}),
    ("batch_images", -1, "batch_images must be a positive integer, got -1", None, {}),
    ("out", A_FILE, "out must be '' (a fresh temporary folder) or a folder path (created when missing), got", None,
     {}),
    ("full_results", "/no/such/results", "full_results must be '' or the path of an existing folder, got "
     "'/no/such/results', which does not exist", None, {}),
    ("at_scale", "book/no_such_results", "at_scale must be the path of an existing folder (relative: to the "
     "repository's root), got 'book/no_such_results', which does not exist", None, {}),
    ("at_scale", "", "at_scale must be the path of an existing folder", None, {}),
    ("randomization_steps", 0, "randomization_steps must be a positive integer", None, {}),
    ("dataset", "mnist", "dataset must be one of ('digits', 'fashion_mnist'), got 'mnist'", None, {}),
    ("data_dir", A_FILE, "data_dir must be '' or the path of an existing folder", None, {}),
    ("data_dir", "", "data_dir must name torchvision's Fashion-MNIST folder with dataset = 'fashion_mnist'",
     "09_sanity_checks", {"dataset": "fashion_mnist"}),
    ("data_dir", A_FOLDER, "data_dir must be '' with dataset = 'digits', which does not read it",
     "09_sanity_checks", {}),
    ("image_size", 4, "image_size must be an integer >= 8, got 4", None, {}),
    ("image_size", 16, "image_size must be at least 32 for the synthetic films", "11_covid_case_study",
     {"mask_resolution": 8}),
    ("train_images", 0, "train_images must be a positive integer", None, {}),
    ("train_images", 1797, "train_images must be at most 1796 with dataset = 'digits'", "09_sanity_checks", {}),
    ("epochs", 0, "epochs must be a positive integer", None, {}),
    ("n_explained", 0, "n_explained must be a positive integer", None, {}),
    ("n_explained", 700, "n_explained must be at most train_images (600), got 700", "09_sanity_checks", {}),
    ("target_class", -1, "target_class must be an integer >= 0, got -1", None, {}),
    ("target_class", 1000, "target_class must be at most 999", None, {}),
    ("epsilon", 0, "epsilon must be a finite number > 0.0 and <= 1.0, got 0", None, {}),
    ("attack_steps", 0, "attack_steps must be a positive integer", None, {}),
    ("train_split_file", A_FOLDER, "train_split_file must be '' or the path of an existing file", None, {}),
    ("train_split_file", A_FILE, "train_split_file must be '' for the synthetic films", None, {}),
    ("test_split_file", "/no/such/test.txt", "test_split_file must be '' or the path of an existing file", None,
     {}),
    ("test_split_file", A_FILE, "test_split_file must be '' for the synthetic films", None, {}),
    ("n_train", -1, "n_train must be an integer >= 0, got -1", None, {}),
    ("n_train", 0, "n_train must be a positive integer for the synthetic films", None, {}),
    ("n_test", 0, "n_test must be a positive integer for the synthetic films", None, {}),
    ("covid_text_rate", 1.2, "covid_text_rate must be a finite number >= 0.0 and <= 1.0, got 1.2", None, {}),
    ("other_text_rate", -0.1, "other_text_rate must be a finite number >= 0.0", None, {}),
    ("test_text_rate", float("nan"), "test_text_rate must be a finite number", None, {}),
    ("architecture", "resnet50", "architecture must be one of ('small_cnn', 'resnet18'), got 'resnet50'", None,
     {}),
    ("width", 0, "width must be a positive integer", None, {}),
    ("lr", 0, "lr must be a finite number > 0.0, got 0", None, {}),
    ("batch_size", 0, "batch_size must be a positive integer", None, {}),
    ("seeds", [0, 0], "seeds must not repeat a value, got [0, 0]", None, {}),
    ("seeds", "0, 1", "seeds must be a non-empty list of integers", None, {}),
    ("n_mass", 0, "n_mass must be a positive integer", None, {}),
    ("insert_ratio", 0, "insert_ratio must be a finite number > 0.0 and <= 1.0, got 0", None, {}),
    ("delete_ratio", 2, "delete_ratio must be a finite number > 0.0 and <= 1.0, got 2", None, {}),
    ("confidence", 1.0, "confidence must be a finite number > 0.0 and < 1.0, got 1.0", None, {}),
    ("detector_side", 0, "detector_side must be a positive integer", None, {}),
    ("inpaint_radius", 0, "inpaint_radius must be a positive integer", None, {}),
    ("max_box_fraction", 0, "max_box_fraction must be a number > 0 and <= 1 or None, got 0", None, {}),
]


def test_every_rule_has_a_bad_value_in_the_table():
    assert set(RULES) - {row[0] for row in BAD} == set()


@pytest.mark.parametrize(("name", "value", "message", "chapter", "others"), BAD,
                         ids=[f"{row[0]}={row[1]!r}" for row in BAD])
def test_a_bad_parameter_is_refused_by_name(name, value, message, chapter, others):
    chapter = CHAPTERS / f"{chapter}.ipynb" if chapter else first_chapter_with(name)
    values = {**defaults(chapter), **others, name: value}
    with pytest.raises(ParameterError) as err:
        check_parameters(values)
    text = str(err.value)
    assert re.match(rf"{name}[ \[]", text) and message in text and text.endswith(hint(name) + "."), text
    assert isinstance(err.value, ValueError)


N_IMAGES_CHAPTERS = [c for c in CHAPTER_FILES if "n_images" in parameter_names(c)]


@pytest.mark.parametrize("chapter", N_IMAGES_CHAPTERS, ids=[c.stem for c in N_IMAGES_CHAPTERS])
@pytest.mark.parametrize(("n", "message"), [
    (-1, "n_images must be a positive integer, got -1"),      # slicing took 9 of the 10 photos
    (0, "n_images must be a positive integer, got 0"),        # failed later without naming n_images
    (len(SAMPLE_IMAGES) + 1, f"n_images must be at most {len(SAMPLE_IMAGES)} with images = 'bundled'"),
])
def test_n_images_out_of_range_is_refused_by_name(chapter, n, message):
    values = {**defaults(chapter), "images": "bundled", "n_images": n}
    if "figure_images" in values:
        values["figure_images"] = 1
    with pytest.raises(ParameterError, match="^" + re.escape(message)) as err:
        check_parameters(values)
    assert hint("n_images") in str(err.value)
    check_parameters({**values, "n_images": len(SAMPLE_IMAGES)})     # all the bundled photos are fine


def test_several_bad_parameters_are_listed_together():
    values = {**defaults(CHAPTERS / "02_igos.ipynb"), "n_images": 0, "iterations": -1}
    with pytest.raises(ParameterError) as err:
        check_parameters(values)
    lines = str(err.value).splitlines()
    assert lines[0] == "2 chapter parameters are wrong:"
    assert lines[1].startswith("- n_images must be") and lines[2].startswith("- iterations must be")


def test_names_without_a_rule_and_names_papermill_injected_by_mistake_are_refused():
    with pytest.raises(ParameterError, match="^n_imagse has no rule in igospp_book.RULES"):
        check_parameters({"n_imagse": 3})
    history = ["", "device = 'auto'\nn_images = 2\n", "# Parameters\nn_images = 1\nn_imagse = 3\n"]
    with pytest.raises(ParameterError, match=r"^n_imagse is not a parameter of this chapter, but papermill set "
                                             r"it \(papermill -p n_imagse \.\.\. or a -f file\); its parameters "
                                             r"are device, n_images\.$"):
        check_parameters({"device": "auto", "n_images": 2}, history=history)
    check_parameters({"device": "auto", "n_images": 2}, history=history[:2])


@pytest.mark.parametrize("chapter", CHAPTER_FILES, ids=[c.stem for c in CHAPTER_FILES])
def test_the_cell_after_the_parameters_cell_checks_exactly_the_chapters_parameters(chapter):
    cells, index = parameters_cell(chapter)
    cell = cells[index + 1]
    assert cell.cell_type == "code" and cell.get("id") == CHECK_TAG
    assert cell.metadata.get("tags") == [CHECK_TAG, "remove-input"], "hidden like the book's bookkeeping cells"
    assert cell.outputs == [], "the check prints nothing when the parameters are valid"
    assert sum(CHECK_TAG in c.get("metadata", {}).get("tags", []) for c in cells) == 1
    calls = [n for n in ast.walk(ast.parse(cell.source))
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "check_parameters"]
    assert len(calls) == 1
    call = calls[0]
    comprehension = call.args[0]
    assert isinstance(comprehension, ast.DictComp) and len(call.args) == 1
    assert ast.unparse(comprehension.value) == "globals()[name]"
    names = [elt.value for elt in comprehension.generators[0].iter.elts]
    assert names == ordered_parameter_names(chapter), "pass every parameter, in the parameters cell's order"
    assert [(k.arg, ast.unparse(k.value)) for k in call.keywords] == [("history", "globals().get('In')")]
    # papermill puts its injected cell between the two: the check sees the injected values
    prepared = papermill.execute_notebook(str(chapter), None, parameters={"seed": 1}, prepare_only=True,
                                          kernel_name="python3", progress_bar=False)
    tags = [c.get("metadata", {}).get("tags", []) for c in prepared.cells]
    at = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert "parameters" in tags[at - 1] and CHECK_TAG in tags[at + 1]


def test_the_check_cell_runs_in_a_kernel_after_papermill_injects_parameters():
    """One kernel: the chapter's parameters and check cells, after three papermill injections."""
    import nbclient

    chapter = CHAPTERS / "02_igos.ipynb"
    cells, index = parameters_cell(chapter)
    params, check = cells[index], cells[index + 1]
    injections = [{"n_images": 1, "iterations": 2}, {"n_images": -1}, {"n_imagse": 3}]
    nb = nbformat.v4.new_notebook(metadata=nbformat.read(str(chapter), as_version=4).metadata)
    nb.cells = [params]
    for values in injections:
        source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in values.items())
        nb.cells += [nbformat.v4.new_code_cell(source), nbformat.from_dict(dict(check))]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=True,
                            resources={"metadata": {"path": str(CHAPTERS)}}).execute()
    errors = [next((o for o in c.outputs if o.output_type == "error"), None) for c in nb.cells[2::2]]
    assert errors[0] is None
    assert errors[1].ename == "ParameterError"
    assert errors[1].evalue.startswith("n_images must be a positive integer, got -1 (chapter parameter;")
    assert errors[2].ename == "ParameterError" and "n_imagse is not a parameter of this chapter" in errors[2].evalue


class _Bundle:
    """Stands in for a ModelBundle: only ``preprocess`` is used."""

    @staticmethod
    def preprocess(images):
        import torch

        return torch.stack([torch.as_tensor(np.asarray(i, dtype=np.float32)).permute(2, 0, 1)[:, :8, :8]
                            for i in images])


@pytest.mark.parametrize(("n", "message"), [
    (-1, "n must be a positive integer, got -1"),
    (0, "n must be a positive integer, got 0"),
    (len(SAMPLE_IMAGES) + 1, f"n must be at most {len(SAMPLE_IMAGES)}, the number of bundled photos"),
    (2.0, "n must be a positive integer, got 2.0"),
])
def test_load_images_refuses_n_out_of_range_with_the_bundled_photos(n, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        load_images(_Bundle(), "bundled", n)


def test_load_images_takes_the_first_n_photos_and_refuses_more_than_a_folder_holds(tmp_path):
    x, names = load_images(_Bundle(), "bundled", 2)
    assert names == list(SAMPLE_IMAGES)[:2] and x.shape[0] == 2
    assert load_images(_Bundle(), "bundled", 1, names=["moon", "clock"])[1] == ["moon"]
    with pytest.raises(ValueError, match="^n must be at most 2, the number of bundled photos"):
        load_images(_Bundle(), "bundled", 3, names=["moon", "clock"])
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    assert load_images(_Bundle(), str(tmp_path), 2)[1] == ["img0", "img1"]
    with pytest.raises(ValueError, match=r"^n must be at most 2, the number of readable images under .*, got 3\."):
        load_images(_Bundle(), str(tmp_path), 3)
