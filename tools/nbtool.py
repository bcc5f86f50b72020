"""Run, normalize and check the book's chapters.

    python tools/nbtool.py chapters [NAME ...]              re-run chapters in place (book profile)
    python tools/nbtool.py run NB [--profile NAME | --params FILE] [--out P]
                                                             run one chapter into _build/runs/<profile>/
    python tools/nbtool.py refs [NAME ...]                   regenerate the tiny reference notebooks (tests/notebooks)
    python tools/nbtool.py check                             CI: outputs present, no errors, not stale, refs in
                                                             sync, every profile file valid, a tiny file per chapter
    python tools/nbtool.py times                             run time of every committed chapter
    python tools/nbtool.py prose NAME [NAME ...]             a chapter's text as the reader reads it: its markdown
                                                             with every glued value in place (to reread claims
                                                             against the data after a rerun)

Profiles: the defaults of each chapter's ``parameters`` cell are the **book** profile (committed
outputs; it needs no files). Every other profile is a folder of flat parameter files, one per chapter,
named after the notebook: ``book/params/<profile>/<chapter stem>.yaml``, exactly what
``papermill -f`` takes. ``tiny`` is what CI runs (every chapter must have a file); ``full`` is the
paper's setting for a GPU. A file named ``<chapter stem>_<variant>.yaml`` is another setting of the same
chapter (``full/08_benchmark_table2.yaml``: the paper's Table 2), run with ``--params``. A profile file may
only set names that its chapter's ``parameters`` cell defines (papermill would inject any other silently).

Every executed notebook records, in ``metadata.igospp``, the profile, the parameters, its run
time, the library modules its kernel had loaded when it finished, and a hash of those modules'
source plus its own code cells and parameters: ``check`` fails when a chapter is older than the
library code it ran. (A chapter that never loads ``igospp.studies.sanity`` does not go stale when that
module changes; any change to a module it loaded, ``igospp/__init__.py`` and ``igospp_book`` included, does.)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import papermill
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "book" / "chapters"
REFS = ROOT / "tests" / "notebooks"
PARAMS = ROOT / "book" / "params"
#: The library and the notebook helpers (``igospp_book``): a chapter goes stale when either changes.
LIBRARY = ROOT / "igospp_src"


def chapters(names: list[str] | None = None) -> list[Path]:
    found = sorted(CHAPTERS.glob("*.ipynb"))
    if names:
        found = [p for p in found if any(n in p.stem for n in names)]
        if not found:
            sys.exit(f"no chapter matches {names}")
    return found


BOOK = "book"    # the profile of the committed outputs: the defaults of each parameters cell, no files
TINY = "tiny"    # what CI runs: every chapter must have a file


class ProfileError(ValueError):
    """A profile or parameter file that cannot be used as given."""


def rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def find_chapter(name: str | Path) -> Path:
    """A chapter notebook from its path (``book/chapters/04_igospp.ipynb``) or its stem (``04_igospp``)."""
    path = Path(name)
    if path.suffix == ".ipynb" or path.exists():
        if not path.is_file():
            raise ProfileError(f"{name}: no such notebook")
        return path.resolve()
    matches = [p for p in chapters() if p.stem == str(name)]
    if not matches:
        raise ProfileError(f"{name}: no chapter of that name in {rel(CHAPTERS)}")
    return matches[0]


def chapter_parameters(chapter: Path) -> list[str]:
    """The names the chapter's ``parameters`` cell assigns: the only names a profile may set."""
    nb = nbformat.read(str(chapter), as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ProfileError(f"{rel(chapter)}: has no code cell tagged `parameters`")
    names = set()
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return sorted(names)


def profile_file(profile: str, chapter: Path) -> Path:
    """Where profile ``profile`` keeps the parameters of ``chapter``: ``book/params/<profile>/<stem>.yaml``."""
    return PARAMS / profile / f"{chapter.stem}.yaml"


def profile_names() -> list[str]:
    return sorted({BOOK, *(d.name for d in PARAMS.iterdir() if d.is_dir())})


def chapter_of(params_file: Path) -> Path | None:
    """The chapter a profile file belongs to: its stem is the chapter's, or the chapter's plus ``_variant``."""
    stem = Path(params_file).stem
    found = [c for c in chapters() if stem == c.stem or stem.startswith(c.stem + "_")]
    return max(found, key=lambda c: len(c.stem)) if found else None


def load_params(path: Path, chapter: Path) -> dict:
    """A flat parameter file (what ``papermill -f`` takes), checked against ``chapter``'s parameters cell."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"{rel(path)}: no such parameter file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ProfileError(f"{rel(path)}: not valid YAML: {err}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ProfileError(f"{rel(path)}: must be a mapping of parameter names to values")
    known = chapter_parameters(chapter)
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        hint = (" (one section per chapter is the old layout: profiles are now one flat file per chapter, "
                "book/params/<profile>/<chapter>.yaml)" if any(isinstance(v, dict) for v in data.values()) else "")
        raise ProfileError(f"{rel(path)}: {', '.join(unknown)} not defined by the parameters cell of "
                           f"{chapter.name}{hint}; it defines {', '.join(known)}")
    return data


def profile_params(profile: str, chapter: Path) -> dict:
    """The parameters of ``chapter`` in profile ``profile``; only the book profile may lack a file (no overrides)."""
    path = profile_file(profile, chapter)
    if not path.exists():
        if profile == BOOK:
            return {}
        raise ProfileError(f"{rel(path)}: missing; profile {profile!r} has no file for {chapter.name}"
                           + ("" if (PARAMS / profile).is_dir() else f" (profiles: {', '.join(profile_names())})"))
    return load_params(path, chapter)


def resolve_run(notebook: str | Path, profile: str | None = None, params: str | Path | None = None,
                out: str | Path | None = None) -> tuple[Path, str, dict, Path]:
    """What ``run`` executes: (chapter, profile label, parameters, output notebook).

    ``profile`` picks ``book/params/<profile>/<stem>.yaml``; ``params`` names a flat file instead (which, inside
    ``book/params/<profile>/``, must belong to this chapter). Neither: the book profile. The output defaults to
    ``_build/runs/<profile>/<file or chapter stem>.ipynb``, never into ``book/``.
    """
    chapter = find_chapter(notebook)
    if profile and params:
        raise ProfileError("give a profile or a parameter file, not both")
    if params:
        path = Path(params).resolve()
        in_profile = path.parent.parent == PARAMS.resolve()
        if in_profile and chapter_of(path) != chapter:
            raise ProfileError(f"{rel(path)} is a parameter file for "
                               f"{(chapter_of(path) or Path('no chapter')).name}, not {chapter.name}")
        label = path.parent.name if in_profile else "custom"
        values = load_params(path, chapter)
        name = path.stem if path.stem.startswith(chapter.stem) else chapter.stem
    else:
        label = profile or BOOK
        values = profile_params(label, chapter)
        name = chapter.stem
    target = Path(out) if out else ROOT / "_build" / "runs" / label / f"{name}.ipynb"
    return chapter, label, values, target


def profile_problems() -> list[str]:
    """Every profile file must be flat, belong to a chapter and set only its parameters; tiny covers every chapter."""
    problems = []
    for path in sorted(PARAMS.glob("*.y*ml")):
        problems.append(f"{rel(path)}: profiles are folders of one flat file per chapter, "
                        f"book/params/<profile>/<chapter>.yaml")
    for path in sorted(PARAMS.glob("*/*")):
        if path.suffix not in (".yaml", ".yml"):
            continue
        chapter = chapter_of(path)
        if chapter is None:
            problems.append(f"{rel(path)}: named after no chapter (expected <chapter stem>[_variant].yaml)")
            continue
        try:
            load_params(path, chapter)
        except ProfileError as err:
            problems.append(str(err))
    for chapter in chapters():
        if not profile_file(TINY, chapter).exists():
            problems.append(f"{rel(profile_file(TINY, chapter))}: missing; every chapter needs a tiny profile "
                            f"file (CI runs it; an empty file means the chapter's defaults)")
    return problems


# Appended to a chapter before it runs and removed from the result: which library files did the kernel load?
PROBE = ("import json as _json, sys as _sys\n"
         "print(_json.dumps(sorted({getattr(_m, '__file__', None) or '' for _n, _m in list(_sys.modules.items())\n"
         "                          if _n.split('.')[0] in ('igospp', 'igospp_book')} - {''})))")
PROBE_TAG = "igospp-module-probe"


def library_files() -> list[str]:
    return sorted(str(f.relative_to(LIBRARY)) for f in LIBRARY.rglob("*.py") if not f.parts[-2].endswith(".egg-info"))


def library_hash(files: list[str] | None = None) -> str:
    """Hash of the library source files ``files`` (relative to the package; default: all of them)."""
    digest = hashlib.sha256()
    for name in sorted(files if files is not None else library_files()):
        file = LIBRARY / name
        digest.update(name.encode())
        digest.update(file.read_bytes() if file.exists() else b"<missing>")
    return digest.hexdigest()


def code_sources(nb: nbformat.NotebookNode) -> list[str]:
    """The code cells that define the chapter (papermill's injected parameters excluded)."""
    return [c.source for c in nb.cells if c.cell_type == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def source_hash(nb: nbformat.NotebookNode, params: dict, modules: list[str] | None = None) -> str:
    digest = hashlib.sha256(library_hash(modules).encode())
    for src in code_sources(nb):
        digest.update(src.encode())
    digest.update(json.dumps(params, sort_keys=True).encode())
    return digest.hexdigest()


def loaded_modules(nb: nbformat.NotebookNode) -> list[str] | None:
    """Remove the probe cell from an executed notebook and return the library files it reported."""
    probe = [c for c in nb.cells if PROBE_TAG in c.get("metadata", {}).get("tags", [])]
    nb.cells = [c for c in nb.cells if c not in probe]
    for cell in probe:
        for out in cell.get("outputs", []):
            if out.get("name") == "stdout":
                files = [Path(f).resolve() for f in json.loads(out["text"])]
                return sorted(str(f.relative_to(LIBRARY)) for f in files if f.is_relative_to(LIBRARY))
    return None


def normalize(nb: nbformat.NotebookNode, profile: str, params: dict, seconds: float) -> nbformat.NotebookNode:
    """Drop run-to-run noise (papermill and timing metadata), renumber cells, record provenance."""
    modules = loaded_modules(nb)
    if modules is None:
        raise RuntimeError("the module probe cell produced no output; is the library installed from this checkout?")
    nb.metadata.pop("papermill", None)
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            for out in cell.get("outputs", []):
                if "execution_count" in out:
                    out["execution_count"] = count
    nb.metadata["igospp"] = {"profile": profile, "parameters": params, "seconds": round(seconds, 1),
                             "modules": modules, "source_hash": source_hash(nb, params, modules)}
    return nb


def execute(src: Path, dst: Path, params: dict, profile: str) -> float:
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = nbformat.read(str(src), as_version=4)
    source.cells.append(nbformat.v4.new_code_cell(PROBE, metadata={"tags": [PROBE_TAG]}))
    probed = ROOT / "_build" / "probed" / src.name
    probed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(source, str(probed))
    os.environ.setdefault("TQDM_DISABLE", "1")  # committed outputs hold no progress bars
    start = time.perf_counter()
    nb = papermill.execute_notebook(str(probed), str(dst), parameters=params, kernel_name="python3",
                                    cwd=str(CHAPTERS), progress_bar=False, request_save_on_cell_execute=False)
    seconds = time.perf_counter() - start
    nbformat.write(normalize(nbformat.from_dict(nb), profile, params, seconds), str(dst))
    return seconds


def cmd_chapters(args: argparse.Namespace) -> None:
    for nb in chapters(args.names):
        print(f"{nb.name}: ", end="", flush=True)
        print(f"{execute(nb, nb, {}, BOOK):.0f} s", flush=True)


def cmd_run(args: argparse.Namespace) -> None:
    try:
        nb, profile, params, out = resolve_run(args.notebook, args.profile, args.params, args.out)
    except ProfileError as err:
        sys.exit(f"nbtool run: {err}")
    print(f"{nb.name} ({profile}) with {params or 'its defaults'} -> {rel(out)}: ", end="", flush=True)
    print(f"{execute(nb, out, params, profile):.0f} s", flush=True)


def cmd_refs(args: argparse.Namespace) -> None:
    try:
        runs = [(nb, profile_params(TINY, nb)) for nb in chapters(args.names)]
    except ProfileError as err:
        sys.exit(f"nbtool refs: {err}")
    for nb, params in runs:
        print(f"{nb.name} (tiny): ", end="", flush=True)
        print(f"{execute(nb, REFS / nb.name, params, TINY):.0f} s", flush=True)


def cmd_check(args: argparse.Namespace) -> None:
    problems = profile_problems()
    for nb_path in chapters():
        nb = nbformat.read(str(nb_path), as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
            problems.append(f"{nb_path.name}: has an error output")
        if not any(c.get("outputs") for c in code):
            problems.append(f"{nb_path.name}: has no outputs; run `make chapters`")
        meta = nb.metadata.get("igospp", {})
        if meta.get("profile") != "book":
            problems.append(f"{nb_path.name}: committed outputs must come from the book profile")
        elif meta.get("source_hash") != source_hash(nb, meta.get("parameters", {}), meta.get("modules")):
            problems.append(f"{nb_path.name}: stale: the library or the chapter changed since it ran; "
                            "run `make chapters`")
        ref_path = REFS / nb_path.name
        if not ref_path.exists():
            problems.append(f"{ref_path.relative_to(ROOT)}: missing; run `make refs`")
            continue
        try:
            params = profile_params(TINY, nb_path)
        except ProfileError:
            continue    # reported by profile_problems
        prepared = papermill.execute_notebook(str(nb_path), None, parameters=params, prepare_only=True,
                                              kernel_name="python3", progress_bar=False)
        ref = nbformat.read(str(ref_path), as_version=4)
        expected = [c.source for c in prepared.cells if c.cell_type == "code"]
        if [c.source for c in ref.cells if c.cell_type == "code"] != expected:
            problems.append(f"{ref_path.relative_to(ROOT)}: out of sync with {nb_path.name}; run `make refs`")
    for p in problems:
        print(f"nbtool check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"nbtool check: {len(chapters())} chapters with book-profile outputs, current, tiny references in sync, "
          f"profiles {', '.join(profile_names())} valid")


def cmd_times(args: argparse.Namespace) -> None:
    totals = {"book": 0.0, "tiny": 0.0}
    for nb_path in chapters():
        book = nbformat.read(str(nb_path), as_version=4).metadata.get("igospp", {})
        ref_path = REFS / nb_path.name
        tiny = nbformat.read(str(ref_path), as_version=4).metadata.get("igospp", {}) if ref_path.exists() else {}
        print(f"{nb_path.stem:<40} book {book.get('seconds', '?'):>7} s   tiny {tiny.get('seconds', '?'):>6} s")
        for name, meta in (("book", book), ("tiny", tiny)):
            totals[name] += float(meta.get("seconds", 0.0))
    print(f"{'total (make chapters)':<40} book {totals['book'] / 60:>7.1f} min "
          f"tiny {totals['tiny'] / 60:>5.1f} min")


#: A glue role in markdown: ``{glue:text}`name` ``, ``{glue}`name` ``, or with a format, ``{glue:text}`name:.3f` ``.
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)(?::([^`]*))?`")


def glued_values(nb: nbformat.NotebookNode) -> dict[str, str]:
    """``{name: text}``: the plain-text form of every value the executed notebook glued."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            text = out.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain") if meta else None
            if text is not None:
                values[meta["name"]] = text
    return values


def prose(nb: nbformat.NotebookNode) -> tuple[str, list[str]]:
    """The notebook's markdown with each glue role replaced by its value, and the names never glued.

    A value is shown as the book shows it: a glued string without its quotes, a number with the
    role's format. A role whose name the outputs lack reads ``[NOT GLUED: name]``.
    """
    values, missing = glued_values(nb), []

    def fill(match: re.Match) -> str:
        name, fmt = match.group(1), match.group(2)
        if name not in values:
            missing.append(name)
            return f"[NOT GLUED: {name}]"
        try:
            value = ast.literal_eval(values[name])
        except (ValueError, SyntaxError):
            return values[name]
        return format(value, fmt) if fmt else str(value)

    text = "\n\n".join(GLUE_ROLE.sub(fill, c.source) for c in nb.cells if c.cell_type == "markdown")
    return text, missing


def cmd_prose(args: argparse.Namespace) -> None:
    missing = []
    for name in args.names:
        path = find_chapter(name)
        text, lacking = prose(nbformat.read(str(path), as_version=4))
        print(f"# ===== {rel(path)}\n\n{text}\n")
        missing += [f"{path.name}: {n}" for n in lacking]
    for m in missing:
        print(f"nbtool prose: not glued by the outputs: {m}", file=sys.stderr)
    if missing:
        sys.exit(1)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("chapters")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_chapters)
    p = sub.add_parser("run", help="run one chapter with a profile or a parameter file")
    p.add_argument("notebook", help="book/chapters/NN_name.ipynb, or NN_name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--profile", default=None, help="book (default), tiny, full: book/params/PROFILE/<stem>.yaml")
    which.add_argument("--params", default=None, help="a flat YAML file of parameters (what papermill -f takes)")
    p.add_argument("--out", default=None, help="output notebook (default _build/runs/<profile>/<name>.ipynb)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("refs")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_refs)
    sub.add_parser("check").set_defaults(func=cmd_check)
    sub.add_parser("times").set_defaults(func=cmd_times)
    p = sub.add_parser("prose", help="a chapter's markdown with its glued values in place")
    p.add_argument("names", nargs="+", help="book/chapters/NN_name.ipynb, or NN_name")
    p.set_defaults(func=cmd_prose)
    return ap


def main() -> None:
    args = parser().parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
