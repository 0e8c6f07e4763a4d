"""One module per spawn backend; each exposes ``spawn(...) -> ActorHandle``.

``subint``: the actor runs in a subinterpreter of this process (the default).
``trio``: the actor runs in a child process; the same runtime, so the same tests and
benchmarks compare the two.
"""

from __future__ import annotations

from typing import Literal, Protocol

from .._core._channel import Channel

BackendName = Literal["subint", "trio"]
BACKENDS: tuple[BackendName, ...] = ("subint", "trio")


class ActorHandle(Protocol):
    """The parent's hold on one running actor, whatever it runs in."""

    name: str
    channel: Channel

    def ready(self) -> None:
        """The actor said it is serving (it holds its own end of the channel by now)."""

    @property
    def exited(self) -> bool: ...

    async def wait_exited(self) -> None:
        """Until the actor's thread or process has ended."""

    async def hard_stop(self) -> str:
        """Stop it no matter what it is doing (bounded); return how it ended."""

    async def reap(self) -> BaseException | None:
        """After exit: release everything it held (bounded).  Returns why it died, if it
        died of an error of its own rather than being stopped."""
