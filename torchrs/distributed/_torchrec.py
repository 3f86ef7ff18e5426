"""Lazy access to TorchRec: ``import torchrs`` never needs it; ``torchrs.distributed``'s functions do."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: The pinned pair that imports on torch 2.13 (torchrec 1.9 needs torch 2.14); see ``make torchrec``.
TORCHREC_VERSION = "1.8.0"
INSTALL_HINT = (
    "install it with `make torchrec` (pip install --no-deps torchrec==1.8.0 fbgemm-gpu-cpu==1.8.0, then "
    "pip install tensordict==0.15.3 pyre-extensions==0.0.32)"
)


class TorchRecNotInstalledError(ImportError):
    """TorchRec (or FBGEMM) is not importable in this environment."""


def torchrec_available() -> bool:
    """Whether TorchRec and FBGEMM are installed here (``False`` where ``make torchrec`` has not run).

    Checked without importing them (importing TorchRec takes seconds).

    >>> isinstance(torchrec_available(), bool)
    True
    """
    return all(importlib.util.find_spec(name) is not None for name in ("torchrec", "fbgemm_gpu"))


def require(name: str) -> ModuleType:
    """Imports ``name`` (a torchrec / fbgemm_gpu module), or raises with the install command.

    Args:
        name: dotted module name, e.g. ``"torchrec.distributed.embedding"``.

    Returns:
        The module.

    Raises:
        TorchRecNotInstalledError: the module cannot be imported.
    """
    try:
        return importlib.import_module(name)
    except (
        ImportError
    ) as error:  # also OSError-free: fbgemm's .so load failures surface as ImportError
        raise TorchRecNotInstalledError(
            f"torchrs.distributed needs {name}, which does not import ({error}); {INSTALL_HINT}."
        ) from error
