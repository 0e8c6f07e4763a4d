"""Functions for the stack-dump tests, each stuck in a function whose name the dump must show.

Each one first connects to the test's loopback listener and says ``r``, so the test knows the
actor reached its blocking point without sleeping; closing that connection releases it.  A
socket rather than an inherited fd, because ``trio``-backend actors are other processes.
"""

from __future__ import annotations

import socket
import time

import subint_spawn


def _say_ready(host: str, port: int) -> socket.socket:
    conn = socket.create_connection((host, port))
    conn.sendall(b"r")
    return conn


def blocked_in_recv_marker(host: str, port: int) -> str:
    """Sync, so it runs right on the actor's thread and is on that thread's stack."""
    with _say_ready(host, port) as conn:
        conn.recv(1)  # in C until the test closes its end
    return "released"


def sleeping_in_c_marker(host: str, port: int) -> str:
    """Almost always inside ``time.sleep`` (C, GIL released) when looked at."""
    with _say_ready(host, port) as conn:
        conn.setblocking(False)
        while True:
            time.sleep(0.05)
            try:
                if conn.recv(1) == b"":
                    return "released"
            except BlockingIOError:
                continue


def spinning_marker(host: str, port: int) -> None:
    """A pure-Python loop that never yields: only a hard stop ends it."""
    with _say_ready(host, port):
        x = 0
        while True:
            x += 1


async def parent_of_blocked_child(host: str, port: int) -> str:
    """An actor whose own child blocks in :func:`blocked_in_recv_marker` (nested actors)."""
    async with subint_spawn.open_nursery() as an:
        child = await an.run_in_actor(
            blocked_in_recv_marker, name="grandchild", host=host, port=port
        )
        result: str = await child.wait_for_result()
    return result


def blocked_forever_marker() -> None:
    """Blocks in C for good (the hang the pytest plugin's dump must explain)."""
    mine, theirs = socket.socketpair()
    with mine, theirs:
        mine.recv(1)
