"""Atomic file writes: a crash or a kill never leaves a half-written result behind.

Each write goes to a temporary file in the target's folder, is flushed to disk, and replaces
the target by one rename; folders are created as needed. Readers therefore see the old file or
the new one, never a part, which is what lets ``igospp evaluate`` resume from its records.

:func:`check_folder` proves an output folder usable (created, a folder, writable) before any
work, so a bad ``--out`` fails in a second with one clear :class:`FolderError` instead of after
the computation.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from igospp.storage import read_json, write_json
    >>> path = write_json(Path(tempfile.mkdtemp()) / "records" / "a.json", {"deletion_auc": 0.1})
    >>> read_json(path), read_json(path.with_name("missing.json"))
    ({'deletion_auc': 0.1}, None)
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_bytes", "write_json", "write_npy", "read_json", "check_folder", "FolderError"]


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename.

    The file gets the permissions of an ordinary new file (``0o666`` less the umask). On any
    error the temporary file is removed and ``path`` is left as it was.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: when ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | Path, payload: Any) -> Path:
    """Atomically write ``payload`` as indented JSON (a payload JSON cannot encode raises ``TypeError``
    before anything is written)."""
    return write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Atomically write ``array`` in NumPy's ``.npy`` format."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return write_bytes(path, buffer.getvalue())


def read_json(path: str | Path) -> Any | None:
    """The JSON in ``path``, or ``None`` if the file is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class FolderError(OSError):
    """An output folder that cannot be used: a file, impossible to create, or not writable.

    An :class:`OSError`, so code that already handles file-system errors handles it; the message
    names the argument (``what``), the path and the reason, and says what to do.
    """


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def check_folder(path: str | Path, what: str = "--out") -> Path:
    """Create the folder ``path`` if needed and prove it writable, before any work is done.

    Writability is proven, not guessed from permission bits (which ``root`` ignores and which
    say nothing of read-only mounts or ``/proc``): a temporary file is created in the folder and
    removed at once, so a usable folder is left as it was.

    Args:
        path: the output folder; missing parent folders are created too.
        what: how the caller's user names ``path`` in the message: a command-line flag
            (default ``"--out"``) or an argument name such as ``"out"``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FolderError: (an :class:`OSError`) ``path`` or one of its parents is a file, the folder
            cannot be created (e.g. under ``/proc``), or a file cannot be written in it
            (permissions, a read-only file system, a full disk).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from igospp.storage import check_folder
        >>> root = Path(tempfile.mkdtemp())
        >>> out = check_folder(root / "eval" / "records")
        >>> out.is_dir(), list(out.iterdir())
        (True, [])
        >>> _ = (root / "notes.txt").write_text("a file")
        >>> check_folder(root / "notes.txt" / "eval", what="--out")     # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        igospp.storage.FolderError: --out '.../notes.txt/eval' cannot be created: '.../notes.txt' is a file, ...
    """
    path = Path(path)
    shown = f"{what} {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise FolderError(f"{shown} is a file, not a folder; give a folder (it is created if missing).")
    ancestor = next((p for p in path.parents if p.exists()), None)
    if not path.exists() and ancestor is not None and not ancestor.is_dir():
        raise FolderError(f"{shown} cannot be created: {str(ancestor)!r} is a file, not a folder; give a folder "
                          "you can write to.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FolderError(f"{shown} cannot be created ({_reason(err)}); give a folder you can write to.") from err
    try:
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".igospp-write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise FolderError(f"{shown} is not writable ({_reason(err)}); give a folder you can write to.") from err
    return path
