"""Run, normalise and check the book's chapters.

    python tools/nbtool.py chapters [NAME ...]            re-run chapters in place (book profile)
    python tools/nbtool.py run NB --params FILE [--out P]  run one chapter with other parameters
    python tools/nbtool.py refs [NAME ...]                 regenerate the tiny reference notebooks (tests/notebooks)
    python tools/nbtool.py check                           CI: outputs present, no errors, not stale, refs in sync
    python tools/nbtool.py times                           run time of every committed chapter

Profiles: the defaults of each chapter's ``parameters`` cell are the **book** profile (committed
outputs); ``book/params/tiny.yaml`` is what CI runs; ``book/params/full.yaml`` is the paper's
setting for a GPU. A parameter file holds one section per chapter, keyed by the file stem.

Every executed notebook records, in ``metadata.igospp``, the profile, the parameters, its run
time, the library modules its kernel had loaded when it finished, and a hash of those modules'
source plus its own code cells and parameters: ``check`` fails when a chapter is older than the
library code it ran. (A chapter that never loads ``igospp.sanity`` does not go stale when that
module changes; any change to a module it loaded, ``igospp/__init__.py`` included, does.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
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
LIBRARY = ROOT / "igospp_src" / "igospp"


def chapters(names: list[str] | None = None) -> list[Path]:
    found = sorted(CHAPTERS.glob("*.ipynb"))
    if names:
        found = [p for p in found if any(n in p.stem for n in names)]
        if not found:
            sys.exit(f"no chapter matches {names}")
    return found


def profile_params(path: Path | None, chapter: Path) -> dict:
    """The parameters of ``chapter`` in a profile file (a section per chapter stem, or one flat mapping)."""
    if path is None:
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if any(isinstance(v, dict) for v in data.values()):
        return dict(data.get(chapter.stem, {}))
    return data


# Appended to a chapter before it runs and removed from the result: which library files did the kernel load?
PROBE = ("import json as _json, sys as _sys\n"
         "print(_json.dumps(sorted({getattr(_m, '__file__', None) or '' for _n, _m in list(_sys.modules.items())\n"
         "                          if _n == 'igospp' or _n.startswith('igospp.')} - {''})))")
PROBE_TAG = "igospp-module-probe"


def library_files() -> list[str]:
    return sorted(str(f.relative_to(LIBRARY)) for f in LIBRARY.rglob("*.py"))


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


def normalise(nb: nbformat.NotebookNode, profile: str, params: dict, seconds: float) -> nbformat.NotebookNode:
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
    start = time.perf_counter()
    nb = papermill.execute_notebook(str(probed), str(dst), parameters=params, kernel_name="python3",
                                    cwd=str(CHAPTERS), progress_bar=False, request_save_on_cell_execute=False)
    seconds = time.perf_counter() - start
    nbformat.write(normalise(nbformat.from_dict(nb), profile, params, seconds), str(dst))
    return seconds


def cmd_chapters(args: argparse.Namespace) -> None:
    for nb in chapters(args.names):
        print(f"{nb.name}: ", end="", flush=True)
        print(f"{execute(nb, nb, {}, 'book'):.0f} s", flush=True)


def cmd_run(args: argparse.Namespace) -> None:
    nb = Path(args.notebook)
    params = profile_params(Path(args.params) if args.params else None, nb)
    out = Path(args.out) if args.out else ROOT / "_build" / "runs" / nb.name
    profile = Path(args.params).stem if args.params else "book"
    print(f"{nb.name} with {params or 'its defaults'} -> {out}: {execute(nb, out, params, profile):.0f} s")


def cmd_refs(args: argparse.Namespace) -> None:
    for nb in chapters(args.names):
        params = profile_params(PARAMS / "tiny.yaml", nb)
        print(f"{nb.name} (tiny): ", end="", flush=True)
        print(f"{execute(nb, REFS / nb.name, params, 'tiny'):.0f} s", flush=True)


def cmd_check(args: argparse.Namespace) -> None:
    problems = []
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
        params = profile_params(PARAMS / "tiny.yaml", nb_path)
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
    print(f"nbtool check: {len(chapters())} chapters with book-profile outputs, current, tiny references in sync")


def cmd_times(args: argparse.Namespace) -> None:
    for nb_path in chapters():
        book = nbformat.read(str(nb_path), as_version=4).metadata.get("igospp", {})
        ref_path = REFS / nb_path.name
        tiny = nbformat.read(str(ref_path), as_version=4).metadata.get("igospp", {}) if ref_path.exists() else {}
        print(f"{nb_path.stem:<40} book {book.get('seconds', '?'):>7} s   tiny {tiny.get('seconds', '?'):>6} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("chapters")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_chapters)
    p = sub.add_parser("run")
    p.add_argument("notebook")
    p.add_argument("--params", default=None)
    p.add_argument("--out", default=None)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("refs")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_refs)
    sub.add_parser("check").set_defaults(func=cmd_check)
    sub.add_parser("times").set_defaults(func=cmd_times)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
