"""The backend and interpreter config a spawn uses when it is not told one.

Held in context variables, not process globals, so a choice is scoped: it holds for the code
that made it and the tasks that code starts afterwards (trio tasks inherit their parent's
context; ``trio.run`` starts from the caller's), and a library that picks a backend inside its
own task cannot change what the rest of the program spawns.  :func:`spawn_defaults` scopes a
choice to a ``with`` block.

Inherited across the actor boundary too: every actor starts with its parent's choice (seeded by
``actor_main``), so a tree is made of one kind of actor unless its code asks otherwise.  Kept
apart from the nursery so an actor can take over its parent's defaults without importing the
spawning machinery it may never use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._names import BackendName, Config, check_backend, check_config

__all__ = [
    "current_config",
    "current_spawn_backend",
    "set_default_config",
    "set_spawn_backend",
    "spawn_defaults",
]

_backend: ContextVar[BackendName] = ContextVar("subint_spawn_backend", default="subint")
_config: ContextVar[Config] = ContextVar("subint_spawn_config", default="isolated")


def set_spawn_backend(name: BackendName) -> None:
    """Choose the backend used when ``open_nursery``/``start_actor`` are not told one, for the
    current context from now on (and the tasks and actors it starts)."""
    _backend.set(check_backend(name))


def current_spawn_backend() -> BackendName:
    return _backend.get()


def set_default_config(config: Config) -> None:
    """Choose the interpreter config used when none is given, for the current context from now
    on (actors inherit their parent's)."""
    _config.set(check_config(config))


def current_config() -> Config:
    return _config.get()


@contextmanager
def spawn_defaults(
    *, backend: BackendName | None = None, config: Config | None = None
) -> Iterator[None]:
    """Use ``backend`` and/or ``config`` as the defaults inside the block, then restore."""
    tokens = []
    try:
        if backend is not None:
            tokens.append((_backend, _backend.set(check_backend(backend))))
        if config is not None:
            tokens.append((_config, _config.set(check_config(config))))
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)  # type: ignore[attr-defined]
