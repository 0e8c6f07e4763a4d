"""Module-level functions for tests: actors and interpreters import them by name."""

from __future__ import annotations

import os
import threading
import time

import trio


def add(x: int, y: int = 0) -> int:
    return x + y


async def async_add(x: int, y: int = 0) -> int:
    await trio.sleep(0)
    return x + y


def import_missing() -> None:
    import subint_spawn_no_such_module  # noqa: F401


async def spin_forever(ready_fd: int = -1) -> None:
    """A trio task stuck in a pure-Python loop: only an injected exception can stop it."""
    await trio.sleep(0)
    _say_ready(ready_fd)
    x = 0
    while True:
        x += 1


def _say_ready(ready_fd: int) -> None:
    if ready_fd >= 0:
        os.write(ready_fd, b"r")


async def spin_and_swallow(ready_fd: int = -1) -> None:
    """A pure-Python loop that swallows the first injected exceptions it sees."""
    _say_ready(ready_fd)
    swallowed = 0
    while True:
        try:
            while True:
                pass
        except BaseException:
            swallowed += 1
            if swallowed >= 3:
                raise


def sleep_in_c(seconds: float) -> None:
    """Blocked inside C: no exception can be delivered until the call returns."""
    time.sleep(seconds)


def block_in_c(ready_fd: int, release_fd: int) -> bytes:
    """Blocked in ``os.read`` (C) until the test writes to ``release_fd``'s pipe."""
    _say_ready(ready_fd)
    return os.read(release_fd, 1)


async def sleep_forever(ready_fd: int = -1) -> None:
    _say_ready(ready_fd)
    await trio.sleep_forever()


def leave_daemon_thread_blocked(release_fd: int) -> str:
    """Starts a daemon thread blocked in C and returns while it still runs."""
    threading.Thread(target=os.read, args=(release_fd, 1), daemon=True, name="stray").start()
    return "returned"


def leave_non_daemon_thread_blocked(release_fd: int) -> str:
    """Starts a non-daemon thread blocked in C and returns while it still runs."""
    threading.Thread(target=os.read, args=(release_fd, 1), daemon=False, name="stray-non-daemon").start()
    return "returned"


async def use_worker_thread() -> str:
    return await trio.to_thread.run_sync(lambda: "from a worker")


def return_unpicklable() -> object:
    return lambda: None


def echo(value: object) -> object:
    return value


def fail(message: str = "boom") -> None:
    raise ValueError(message)


async def async_fail(message: str = "boom") -> None:
    await trio.sleep(0)
    raise ValueError(message)


def spin_sync() -> None:
    """A synchronous pure-Python loop: blocks its actor's trio thread for good."""
    x = 0
    while True:
        x += 1


def read_fd(fd: int) -> bytes:
    """Blocked in C until the test writes to the pipe (subint only: shares this process's fds)."""
    return os.read(fd, 1)


def import_msgspec() -> str:
    import msgspec

    return msgspec.__version__


class _Unsendable:
    """An instance of a class that neither pickle nor msgpack can carry."""

    def __reduce__(self) -> object:
        raise TypeError("this object refuses to be pickled")


def return_unsendable() -> object:
    return _Unsendable()


def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def runtime_modules() -> list[str]:
    """The modules of subint_spawn this interpreter has loaded."""
    import sys

    return sorted(name for name in sys.modules if name.split(".")[0] == "subint_spawn")


def own_pid() -> int:
    return os.getpid()
