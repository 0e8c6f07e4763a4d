"""What the actors of scripts/tractor_timings.py run (tractor imports them by module name)."""

from __future__ import annotations

import socket
import threading


async def double(x: int) -> int:
    return 2 * x


def _say_ready(port: int) -> None:
    """Over TCP, not a pipe: a ``trio``-method actor is a process that inherits no fds."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"r")


async def spin(ready_port: int) -> None:
    _say_ready(ready_port)
    while True:
        pass


async def wait_in_c(ready_port: int) -> None:
    """Like tractor's own stuck-actor test: never checkpoints, blocks in C a second at a time."""
    _say_ready(ready_port)
    never = threading.Event()
    while not never.is_set():
        never.wait(1.0)
