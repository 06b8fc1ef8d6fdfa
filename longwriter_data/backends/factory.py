"""Picking the backend module by the recipe's `backend.kind`.

Adding a kind: one module here with a `Backend` subclass (its `open` and `check` classmethods take the kind's
settings; `reasoning` tells `estimate` about its models), and one settings model in config.py (in BACKEND_KINDS),
whose `module` names that class and whose `placement`, `public` and `runs_on` tell resume and the dataset card about
its keys. No other module knows a kind (tests/test_backend.py adds one to a copy of the package to prove it).
Modules are imported only when their kind is used: the embedded server's needs stay unimported otherwise.
"""

from __future__ import annotations

import importlib

from ..config import BACKEND_KINDS, BackendConfig
from .base import Backend


def backend_class(kind: str) -> type[Backend]:
    module, _, name = BACKEND_KINDS[kind].module.partition(":")  # "module:class" in this folder
    return getattr(importlib.import_module(f".{module}", __package__), name)


def check_backend(settings: BackendConfig, where: str = "backend") -> None:
    """What can be checked before a run directory is created (a key in the environment, a model file)."""
    backend_class(settings.kind).check(settings, where)


def open_backend(settings: BackendConfig, max_connections: int, timeout_s: float, where: str = "backend") -> Backend:
    """The backend the settings ask for, not yet started: `async with open_backend(...) as backend:` starts it and
    stops it (its connections closed, a local server stopped) however the run ends. `where` is the recipe section
    the settings come from, named in error messages."""
    return backend_class(settings.kind).open(settings, max_connections, timeout_s, where)
