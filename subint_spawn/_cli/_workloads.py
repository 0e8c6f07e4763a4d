"""Module-level functions the demo and the benchmark run inside actors.

Actors find functions by module and name, so these live in an importable module (never
``__main__``).  Arguments are plain ints and strings so that every backend can carry them
(the ``trio`` backend speaks msgpack).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any


def noop() -> None:
    """Does nothing: what is left to time is the machinery around the call."""


def count_primes(limit: int) -> int:
    """Count primes below ``limit`` by trial division: pure-Python CPU work, holds the GIL."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def load_settings(path: str) -> dict[str, int]:
    """Fails a few frames deep, so that the remote traceback has something to show."""
    return _parse(path)


def _parse(path: str) -> dict[str, int]:
    return {"port": _port_of(path)}


def _port_of(path: str) -> int:
    raise ValueError(f"no 'port' setting in {path!r}")


def spin_forever(host: str, port: int) -> None:
    """Tell the parent 'spinning now' over a loopback socket, then loop forever in pure Python.

    No ``await`` and no C call to interrupt: only the runtime's hard stop can end it.  The
    signal is a socket rather than an inherited pipe fd because the ``trio`` backend's actors
    are separate processes that do not inherit the parent's descriptors.
    """
    with socket.create_connection((host, port)) as conn:
        conn.sendall(b"r")
    x = 0
    while True:
        x += 1


def interpreter_id() -> int:
    """The id of the interpreter this runs in (0 in a process of its own)."""
    import _interpreters

    return int(_interpreters.get_current()[0])


async def count_up(n: int) -> AsyncIterator[int]:
    """Yield 0..n-1 as fast as the stream takes them: one-way stream throughput."""
    for i in range(n):
        yield i


async def echo(ctx: Any) -> int:
    """A context that sends back every item it receives; returns how many it echoed."""
    await ctx.started()
    echoed = 0
    async with ctx.open_stream() as stream:
        async for item in stream:
            await stream.send(item)
            echoed += 1
    return echoed


async def bare_echo(address: str, count: int) -> None:
    """The floor under a round trip: echo ``count`` one-byte messages on a bare ``AF_UNIX``
    socket, with nothing between the reads but ``trio.lowlevel.wait_readable``."""
    import trio

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(address)
        sock.setblocking(False)
        for _ in range(count):
            await trio.lowlevel.wait_readable(sock)
            sock.send(sock.recv(64))


async def double(x: int) -> int:
    """What a tractor actor runs in the bench's tractor rows (tractor runs async functions)."""
    return 2 * x
