"""The backend and interpreter config a spawn uses when it is not told one.

Per interpreter (a subinterpreter actor has module state of its own), and inherited: every
actor starts with its parent's choice, so a tree is made of one kind of actor unless its code
asks otherwise.  Kept apart from the nursery so an actor can take over its parent's defaults
without importing the spawning machinery it may never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._backends import BACKENDS

if TYPE_CHECKING:
    from .._backends import BackendName
    from ._driver import Config

__all__ = ["check_backend", "check_config", "current_config", "current_spawn_backend", "set_default_config", "set_spawn_backend"]

_backend: BackendName = "subint"
_config: Config = "isolated"


def set_spawn_backend(name: BackendName) -> None:
    """Choose the backend used when ``open_nursery``/``start_actor`` are not told one."""
    global _backend
    _backend = check_backend(name)


def current_spawn_backend() -> BackendName:
    return _backend


def set_default_config(config: Config) -> None:
    """Choose the interpreter config used when none is given (actors inherit their parent's)."""
    global _config
    _config = check_config(config)


def current_config() -> Config:
    return _config


def check_backend(name: str) -> BackendName:
    if name not in BACKENDS:
        raise ValueError(f"unknown spawn backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name  # type: ignore[return-value]


def check_config(config: str) -> Config:
    if config not in ("isolated", "legacy"):
        raise ValueError(f"unknown interpreter config {config!r}: use 'isolated' or 'legacy'")
    return config  # type: ignore[return-value]
