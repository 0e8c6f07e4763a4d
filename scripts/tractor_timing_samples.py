"""What the actors of scripts/tractor_timings.py run (tractor imports them by module name)."""

from __future__ import annotations

import os
import threading


async def double(x: int) -> int:
    return 2 * x


async def spin(ready_fd: int) -> None:
    os.write(ready_fd, b"r")
    while True:
        pass


async def wait_in_c(ready_fd: int) -> None:
    """Like tractor's own stuck-actor test: never checkpoints, blocks in C a second at a time."""
    os.write(ready_fd, b"r")
    never = threading.Event()
    while not never.is_set():
        never.wait(1.0)
