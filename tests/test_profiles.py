"""Parameter profiles and the commands the book prints.

Every profile file (``book/params/<profile>/<chapter>[_variant].yaml``) is a flat mapping that sets only
names its chapter's ``parameters`` cell defines, and every ``papermill`` / ``make chapter`` command printed
in README.md, book/intro.md and the chapters' markdown works as printed: papermill commands are run with
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
import papermill
import pytest
import yaml

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
