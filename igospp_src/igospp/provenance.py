"""What a result was computed with: Python, the key packages, the GPU or CPU and its threads.

Every benchmark record carries :func:`versions`, and the book's chapters state the machine behind
each glued run time with it.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["versions", "cpu_name"]

#: The distributions whose versions a record states.
PACKAGES: tuple[str, ...] = ("torch", "torchvision", "numpy", "captum", "grad-cam", "timm")


def versions() -> dict[str, str]:
    """Versions of Python and the key packages, the GPU and CPU names and PyTorch's CPU threads.

    Returns:
        ``{"python", "platform", "igospp", <each of PACKAGES> ("not installed" when absent),
        "cuda" (the GPU's name or "none"), "cpu", "cpu_threads"}``, all strings.

    >>> info = versions()
    >>> sorted(info)[:4], info["cpu_threads"].isdigit()
    (['captum', 'cpu', 'cpu_threads', 'cuda'], True)
    """
    from igospp import __version__

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "igospp": __version__}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["cuda"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    out["cpu"] = cpu_name()
    out["cpu_threads"] = str(torch.get_num_threads())
    return out


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux, else what :mod:`platform` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
