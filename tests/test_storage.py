"""Atomic writes (igospp.storage): ordinary files, no temporaries left, the old file kept on failure; output
folders proven usable before any work."""

import errno
import os
import stat
from pathlib import Path

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


# ----------------------------------------------------------------------------- check_folder: output folders
def test_check_folder_creates_a_missing_folder_and_leaves_a_usable_one_as_it_was(tmp_path):
    out = storage.check_folder(str(tmp_path / "eval" / "records"))
    assert out == tmp_path / "eval" / "records" and out.is_dir() and not list(out.iterdir())
    write_json(out / "r.json", {"a": 1})
    assert storage.check_folder(out, what="out") == out and [p.name for p in out.iterdir()] == ["r.json"]


def _read_only(monkeypatch, folder):
    """Writing in ``folder`` fails as on a read-only mount (permission bits would not stop root)."""
    mkstemp = storage.tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if Path(dir) == folder:
            raise PermissionError(errno.EROFS, "Read-only file system")
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(storage.tempfile, "mkstemp", refuse)


#: (the folder to check under tmp_path, with {tmp} for it, whether it is made read-only, the message)
UNUSABLE_FOLDERS = [
    ("{tmp}/notes.txt", False, "--out '{tmp}/notes.txt' is a file, not a folder; give a folder (it is created if "
                               "missing)."),
    ("{tmp}/notes.txt/sub/records", False, "--out '{tmp}/notes.txt/sub/records' cannot be created: '{tmp}/notes.txt' "
                                           "is a file, not a folder; give a folder you can write to."),
    ("/proc/igospp_test", False, "--out '/proc/igospp_test' cannot be created (No such file or directory); give a "
                                 "folder you can write to."),
    ("{tmp}/ro", True, "--out '{tmp}/ro' is not writable (Read-only file system); give a folder you can write to."),
]


@pytest.mark.parametrize("folder, read_only, message", UNUSABLE_FOLDERS)
def test_check_folder_refuses_an_unusable_folder_naming_the_flag(tmp_path, monkeypatch, folder, read_only,
                                                                  message):
    if folder.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc")
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "ro").mkdir()
    if read_only:
        _read_only(monkeypatch, tmp_path / "ro")
    with pytest.raises(storage.FolderError) as caught:
        storage.check_folder(folder.format(tmp=tmp_path))
    assert str(caught.value) == message.format(tmp=tmp_path) and isinstance(caught.value, OSError)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notes.txt", "ro"]          # nothing created or left
