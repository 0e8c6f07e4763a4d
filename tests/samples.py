"""Module-level functions for tests: actors and interpreters import them by name."""

from __future__ import annotations

import os
import threading
import time

import trio
import trio.lowlevel


def add(x: int, y: int = 0) -> int:
    return x + y


async def async_add(x: int, y: int = 0) -> int:
    await trio.lowlevel.checkpoint()
    return x + y


def import_missing() -> None:
    import subint_spawn_no_such_module  # noqa: F401


def announce(address: str) -> None:
    """Tell the test this function runs now (``tests.helpers.announcements``), if it listens."""
    if address:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(address)


async def spin_forever(ready_fd: int = -1, announce: str = "") -> None:
    """A trio task stuck in a pure-Python loop: only an injected exception can stop it."""
    await trio.lowlevel.checkpoint()
    _say_ready(ready_fd)
    _announce(announce)
    x = 0
    while True:
        x += 1


_announce = announce  # for functions whose own parameter is called `announce`


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


async def sleep_forever(ready_fd: int = -1, announce: str = "") -> None:
    _say_ready(ready_fd)
    _announce(announce)
    await trio.sleep_forever()


def leave_daemon_thread_blocked(release_fd: int) -> str:
    """Starts a daemon thread blocked in C and returns while it still runs."""
    threading.Thread(target=os.read, args=(release_fd, 1), daemon=True, name="stray").start()
    return "returned"


def leave_non_daemon_thread_blocked(release_fd: int) -> str:
    """Starts a non-daemon thread blocked in C and returns while it still runs."""
    threading.Thread(
        target=os.read, args=(release_fd, 1), daemon=False, name="stray-non-daemon"
    ).start()
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
    await trio.lowlevel.checkpoint()
    raise ValueError(message)


def spin_sync(announce: str = "") -> None:
    """A synchronous pure-Python loop: blocks its actor's trio thread for good."""
    _announce(announce)
    x = 0
    while True:
        x += 1


def read_fd(fd: int, announce: str = "") -> bytes:
    """Blocked in C until the test writes to the pipe (subint only: shares this process's fds)."""
    _announce(announce)
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


_call_cancelled = trio.Event()


async def sleep_until_cancelled(announce: str = "") -> None:
    """Sleeps; notes in this actor that it was cancelled (``wait_for_cancelled_call``)."""
    _announce(announce)
    try:
        await trio.sleep_forever()
    finally:
        _call_cancelled.set()


async def wait_for_cancelled_call() -> bool:
    await _call_cancelled.wait()
    return True


def whoami() -> list[object]:
    """``current_actor()`` as msgpack data: [name, uid, is_root, pid, interpreter_id]."""
    import subint_spawn

    me = subint_spawn.current_actor()
    return [me.name, me.uid, me.is_root, me.pid, me.interpreter_id]


async def count(n: int) -> object:
    for i in range(n):
        yield i


def takes_fn(fn: str) -> str:
    """A function whose own parameter is called ``fn``, like ``portal.run``'s."""
    return f"got {fn}"


class MultiArgError(Exception):
    """An exception whose ``__init__`` takes other arguments than it passes on (common)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def raise_multi_arg(code: int, detail: str) -> None:
    raise MultiArgError(code, detail)


class LockHoldingError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raise_lock_holding() -> None:
    raise LockHoldingError()


def greet() -> str:
    return "hello"


def _other_greeting() -> str:
    return "rebound"


def rebind_greet() -> None:
    """Rebind ``greet`` in this interpreter's copy of this module (in an actor: the actor's)."""
    global greet
    greet = _other_greeting


async def sleep_shielded(ready_fd: int = -1) -> None:
    """Idle in trio (its loop waits in epoll, in C) and deaf to cancellation."""
    with trio.CancelScope(shield=True):
        _say_ready(ready_fd)
        await trio.sleep_forever()
