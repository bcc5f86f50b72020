"""Atomic file writes: a crash or a kill never leaves a half-written result behind."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_bytes", "write_json", "write_npy", "read_json"]


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
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
    """Atomically write ``payload`` as indented JSON."""
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
