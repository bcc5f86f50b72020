"""Claims: how several processes running :func:`igospp.studies.benchmark.evaluate` on one folder share the work.

Before computing an (image, method) pair, :func:`~igospp.studies.benchmark.evaluate` claims it by creating
``OUT/records/.claims/<record name>.claim`` exclusively (``O_CREAT | O_EXCL``, atomic on local
and network file systems), holding the host name, process id and start time, and removes the
claim once the record is written (or when the run fails). A pair claimed by another live
process is left to it: this process goes on with the next pair, without waiting, and counts it
in :attr:`~igospp.studies.benchmark.EvaluationRun.claimed_elsewhere`. A claim is *stale*, and taken over, when its
process is gone (same host: checked with ``os.kill(pid, 0)``), when it carries this process's
own id without being this call's (a process that reused the id of a killed one), or when it is
older than ``stale_claim_hours`` (any host; the only rule for other hosts). Two concurrent
:func:`~igospp.studies.benchmark.evaluate` calls in one process on one folder would take each other's claims for stale
(duplicate work, never a corrupt record): give each its own folder.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["claim", "release", "CLAIM_GRACE"]


CLAIM_GRACE = 60.0     # seconds an unreadable claim (its writer killed mid-write) or a takeover lock is respected


# ------------------------------------------------------------------------------------------------ claims
def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (``os.kill(pid, 0)``; unknown on Windows, where it kills)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:            # another user's live process
        return True
    except OSError:
        return False
    return True


def _claim_is_stale(path: Path, held: Any, stale_seconds: float) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if not isinstance(held, dict):                                  # its writer was killed mid-write
        return age > CLAIM_GRACE
    if age > stale_seconds:
        return True
    pid = held.get("pid")
    if held.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid == os.getpid() or not _alive(pid)       # our own id, not this call's claim: a reused id


def _remove_stale_claim(path: Path, held: Any) -> bool:
    """Remove a stale claim under a short exclusive lock, so that only one process takes it over."""
    lock = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - lock.stat().st_mtime > CLAIM_GRACE:   # its holder died while taking over
                lock.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    try:
        os.close(fd)
        try:
            if json.loads(path.read_bytes()) != held:
                return False
        except FileNotFoundError:
            return True
        except ValueError:
            if held is not None:
                return False
        path.unlink(missing_ok=True)
        return True
    finally:
        lock.unlink(missing_ok=True)


def claim(path: Path, stale_seconds: float) -> dict[str, Any] | None:
    """Create the claim file ``path`` exclusively (taking over a stale one); its content, or ``None`` if held."""
    now = time.time()
    token = {"host": socket.gethostname(), "pid": os.getpid(), "started": now,
             "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "token": uuid.uuid4().hex}
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(path.read_bytes())
            except FileNotFoundError:
                continue                                            # released meanwhile: try again
            except ValueError:
                held = None
            if not _claim_is_stale(path, held, stale_seconds) or not _remove_stale_claim(path, held):
                return None
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(token, fh)
        return token
    return None


def release(path: Path, token: dict[str, Any]) -> None:
    """Remove the claim ``path`` if it is still ``token`` (not taken over meanwhile)."""
    try:
        if json.loads(path.read_bytes()) == token:
            path.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
