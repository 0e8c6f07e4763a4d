"""Module-level functions that actors run in tests/test_faults.py: each injects one fault.

Modules whose *import* is the fault live in ``tests/fault_imports/``: an actor names them in
``enable_modules``, and nothing else may import them.
"""

from __future__ import annotations

import gc
import os
import select
import socket
import threading
import time
from typing import Any

import trio

import subint_spawn


class Meltdown(BaseException):
    """A ``BaseException`` that is neither ``Exception``, ``SystemExit`` nor ``KeyboardInterrupt``."""


BASE_EXCEPTIONS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "Meltdown": Meltdown,
}


def echo(value: object) -> object:
    return value


def guards_installed() -> str | None:
    from subint_spawn._core._guards import guarded_actor

    return guarded_actor()


async def echo_stream(ctx: subint_spawn.Context) -> None:
    """Echo every stream item back until the parent closes its side."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        async for item in stream:
            await stream.send(item)


def interpreter_or_process() -> tuple[int, int]:
    """(pid, interpreter id): proves later calls run in the very same actor."""
    from concurrent import interpreters

    return os.getpid(), interpreters.get_current().id


# -- base exceptions ----------------------------------------------------------------------------


def raise_base(kind: str) -> None:
    raise BASE_EXCEPTIONS[kind](f"{kind} raised on purpose")


async def async_raise_base(kind: str) -> None:
    await trio.lowlevel.checkpoint()
    raise BASE_EXCEPTIONS[kind](f"{kind} raised on purpose")


async def context_raising_base(ctx: subint_spawn.Context, kind: str) -> None:
    await ctx.started("started")
    raise BASE_EXCEPTIONS[kind](f"{kind} raised on purpose")


async def generator_raising_base(kind: str) -> Any:
    yield 1
    raise BASE_EXCEPTIONS[kind](f"{kind} raised on purpose")


# -- a broken channel ---------------------------------------------------------------------------


def _own_channel() -> Any:
    """This actor's channel to its parent: the one Channel object in this interpreter (or
    process), found the way a bug holding a stray reference would reach it."""
    from subint_spawn._core._channel import Channel

    channels = [obj for obj in gc.get_objects() if isinstance(obj, Channel)]
    if len(channels) != 1:
        raise RuntimeError(f"expected one channel in this actor, found {len(channels)}")
    return channels[0]


def _sever(how: str) -> None:
    if how == "never":  # the test breaks the channel from the parent's side
        return
    if how == "actor_closes":
        _own_channel().close_now()
    elif how == "actor_shuts_down":
        _own_channel()._sock.shutdown(socket.SHUT_RDWR)
    elif how == "process_exits":
        os._exit(7)  # trio backend only: a subinterpreter actor is refused this
    else:
        raise ValueError(f"unknown way to break the channel: {how!r}")


async def sever_then_sleep(how: str) -> None:
    """Break this actor's channel under its own running call; never return."""
    _sever(how)
    await trio.sleep_forever()


async def count_then_sever(n: int, how: str) -> Any:
    """Yield ``n`` items, then break the channel mid-stream and keep going."""
    for i in range(n):
        yield i
    if how != "never":
        await _own_channel().flush()  # the items leave before the wire breaks
    _sever(how)
    i = n
    while True:
        yield i
        i += 1


# -- threads left running -----------------------------------------------------------------------


def leave_thread_running(daemon: bool, blocked_in_c: bool, release_fd: int = -1) -> str:
    """Start a thread and return while it runs on: blocked in C reading ``release_fd``, or in
    a Python loop (short sleeps, so an injected exception could land) until ``release_fd``
    is readable.  ``release_fd`` is a pipe of the test's (a subinterpreter shares the test
    process's fds); -1 makes a pipe here that nobody ever writes to (a process actor)."""
    if release_fd < 0:
        release_fd, _write_end = os.pipe()  # both ends stay open: never readable

    def blocked() -> None:
        os.read(release_fd, 1)

    def looping() -> None:
        poller = select.poll()
        poller.register(release_fd, select.POLLIN)
        while not poller.poll(0):
            time.sleep(0.01)

    name = f"stray-{'daemon' if daemon else 'worker'}-{'c' if blocked_in_c else 'py'}"
    target = blocked if blocked_in_c else looping
    threading.Thread(target=target, daemon=daemon, name=name).start()
    return name


# -- fork ---------------------------------------------------------------------------------------


def fork_from_a_thread() -> str:
    """``os.fork`` from a thread the actor started itself, not from its trio thread."""
    outcome: list[str] = []

    def run() -> None:
        try:
            pid = os.fork()
        except Exception as exc:
            outcome.append(f"{type(exc).__qualname__}: {exc}")
            return
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        outcome.append("forked")

    thread = threading.Thread(target=run, name="forker")
    thread.start()
    thread.join()
    return outcome[0]


# -- payloads -----------------------------------------------------------------------------------


def make_bytes(size: int) -> bytes:
    return b"x" * size


async def yield_bytes(size: int) -> Any:
    yield b"x" * size


def raise_huge_message(size: int) -> None:
    raise ValueError("x" * size)


def raise_undecodable_text() -> None:
    """An error whose message holds a lone surrogate, as ``os.fsdecode`` makes of a non-UTF-8
    file name; msgpack (UTF-8) cannot carry it as is."""
    name = os.fsdecode(b"report-\xff.txt")
    raise ValueError(f"cannot process {name}")


def return_undecodable_text() -> str:
    return os.fsdecode(b"report-\xff.txt")
