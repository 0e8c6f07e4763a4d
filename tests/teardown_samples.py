"""Actor functions for test_teardown: an interpreter whose destroy blocks until released."""

from __future__ import annotations

import atexit
import os


def _wait_for_release(release_fd: int) -> None:
    os.read(release_fd, 1)


def block_destroy_until(release_fd: int) -> str:
    """Destroying this interpreter runs its atexit hooks: this one waits for the test."""
    atexit.register(_wait_for_release, release_fd)
    return "registered"
