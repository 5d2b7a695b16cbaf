"""detectlib: the thin library behind the notebooks of the AI-image detection kit.

One import line in every notebook, ``import detectlib as dl``; submodules load on first use
(``dl.data``, ``dl.synth``, ``dl.models`` ...), so command-line tools import only what their job needs.
"""

from __future__ import annotations

import importlib

from .config import CLASSES, get_paths, get_profile

__version__ = "0.1.0"
__all__ = ["CLASSES", "get_paths", "get_profile", "__version__"]


def __getattr__(name: str):
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name == f"{__name__}.{name}":
            raise AttributeError(f"module 'detectlib' has no attribute {name!r}") from None
        raise
    globals()[name] = module
    return module
