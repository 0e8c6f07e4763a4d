"""One module per spawn backend; each exposes ``async spawn(name, enable_modules, config)``.

``subint``: the actor runs in a subinterpreter of this process (the default).
``trio``: the actor runs in a child process; the same runtime, so the same tests and
benchmarks compare the two.

The nursery reaches a backend only through :func:`get` and the :class:`ActorHandle` it
returns; a backend module is imported the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import Literal, Protocol

from .._core._channel import Channel
from .._core._names import BACKENDS, BackendName, Config, check_backend

__all__ = ["BACKENDS", "ActorHandle", "Backend", "BackendName", "StopOutcome", "get"]

StopOutcome = Literal["exited", "cancelled", "killed", "abandoned"]
"""How :meth:`ActorHandle.hard_stop` ended it; ``abandoned`` means it could not be stopped
(a thread stuck in C) and was left, reported, to finish on its own."""


class ActorHandle(Protocol):
    """The parent's hold on one running actor, whatever it runs in."""

    name: str
    channel: Channel

    @property
    def where(self) -> str:
        """Where the actor runs, for messages about it (e.g. Ctrl-C's abandon report)."""
        ...

    def ready(self) -> None:
        """The actor said it is serving (it holds its own end of the channel by now)."""

    @property
    def exited(self) -> bool: ...

    async def wait_exited(self) -> None:
        """Until the actor's thread or process has ended."""

    async def hard_stop(self) -> StopOutcome:
        """Stop it no matter what it is doing (bounded); return how it ended."""
        ...

    async def reap(self) -> BaseException | None:
        """After exit: release everything it held (bounded).  Returns why it died, if it
        died of an error of its own rather than being stopped."""


class Backend(Protocol):
    """What a backend module provides."""

    async def spawn(self, name: str, enable_modules: list[str], config: Config) -> ActorHandle: ...


_MODULES: dict[BackendName, str] = {"subint": "._subint", "trio": "._trio"}
assert set(_MODULES) == set(BACKENDS)


def get(name: BackendName) -> Backend:
    """The backend module called ``name`` (imported on first use)."""
    return importlib.import_module(_MODULES[check_backend(name)], __name__)  # type: ignore[return-value]
