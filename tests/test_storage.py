"""Atomic writes (igospp.storage): ordinary files, no temporaries left, the old file kept on failure."""

import os
import stat

import numpy as np
import pytest

from igospp import storage
from igospp.storage import read_json, write_bytes, write_json, write_npy


def test_atomic_writes_leave_ordinary_files_and_no_temporaries(tmp_path):
    path = write_json(tmp_path / "sub" / "r.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert read_json(path) == {"a": 1} and read_json(tmp_path / "missing.json") is None
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    write_json(path, {"a": 2})                                                  # replaced in place
    assert read_json(path) == {"a": 2} and [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_npy_round_trip_and_unreadable_json(tmp_path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(np.load(write_npy(tmp_path / "a.npy", array)), array)
    (tmp_path / "half.json").write_text('{"a": ')                              # what a crash could leave
    assert read_json(tmp_path / "half.json") is None


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = write_bytes(tmp_path / "r.json", b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        write_json(path, {"a": {1}})
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        write_bytes(path, "text")
    assert path.read_bytes() == b"old"
