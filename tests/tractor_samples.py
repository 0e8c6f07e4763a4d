"""Functions tractor actors run in tests/test_tractor.py (tractor imports them by module name)."""

from __future__ import annotations

import os
import time


async def double(x: int) -> int:
    return 2 * x


def _say_ready(ready_fd: int) -> None:
    os.write(ready_fd, b"r")


async def spin_in_python(ready_fd: int) -> None:
    """Never checkpoints: tractor's cancel request can't be handled, only the driver's kill stops it."""
    _say_ready(ready_fd)
    while True:
        pass


async def blocked_in_c(ready_fd: int, release_fd: int) -> None:
    """Blocks in ``os.read`` until the test writes to the pipe: no injected exception lands."""
    _say_ready(ready_fd)
    os.read(release_fd, 1)


async def sleeping_in_marker_frame(ready_fd: int = -1) -> None:
    """Sits in this frame (short C sleeps, so a kill lands quickly) for stack dumps to show."""
    if ready_fd >= 0:
        _say_ready(ready_fd)
    while True:
        time.sleep(0.05)  # noqa: ASYNC251 -- blocking on purpose: the frame must stay on the stack


async def sleep_shielded(ready_fd: int) -> None:
    """Idle in trio (its loop waits in epoll, in C) and deaf to cancellation, with nothing left
    that would wake the loop: it stops serving its parent's channel first.  Only an injected
    exception stops it, and only once something wakes the loop to deliver it."""
    import tractor
    import trio

    tractor.current_actor()._parent_chan_cs.cancel()
    _say_ready(ready_fd)
    with trio.CancelScope(shield=True):
        await trio.sleep(60)


async def interpreter_id() -> int:
    """The id of the subinterpreter this actor runs in."""
    import _interpreters

    return int(_interpreters.get_current()[0])
