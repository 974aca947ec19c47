"""Framework adapters, installed as ``diffdsl.backends`` (from the repository's ``backends/``
folder through the pyproject's package-dir mapping).

    from diffdsl.backends.torch import TorchLayer     # needs torch only
    from diffdsl.backends.jax import JaxLayer         # needs jax only
    from diffdsl.backends.numpy import NumpyLayer     # needs nothing more

``from diffdsl.backends import TorchLayer`` works too: each name imports its framework on
first use, so torch is never imported for JAX users and vice versa.
"""
from __future__ import annotations

import importlib

_LAYERS = {"TorchLayer": "torch", "JaxLayer": "jax", "NumpyLayer": "numpy"}

__all__ = list(_LAYERS)


def __getattr__(name: str):
    if name in _LAYERS:
        return getattr(importlib.import_module(f".{_LAYERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
