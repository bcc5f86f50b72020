"""What the benchmark scripts share: how they name the machine they ran on and write their results."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the number of threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def write_json(path: Path, result: Any) -> None:
    """Write ``result`` to ``path`` as indented JSON, atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)
