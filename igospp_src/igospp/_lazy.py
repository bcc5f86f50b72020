"""Submodules loaded on first attribute access (PEP 562), shared by ``igospp`` and ``igospp.studies``."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable, Iterable
from types import ModuleType


def lazy_submodules(package: str, path: Iterable[str],
                    names: Callable[[], Iterable[str]]) -> tuple[Callable[[str], ModuleType], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``package.<sub>`` imports the submodule when first touched.

    Args:
        package: the package's ``__name__``.
        path: its ``__path__``.
        names: returns the package's own global names (``lambda: globals()``), for ``dir()``.

    >>> import igospp.studies
    >>> "sanity" in dir(igospp.studies)
    True
    """
    def __getattr__(name: str) -> ModuleType:
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(names()) | {m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_")})

    return __getattr__, __dir__
