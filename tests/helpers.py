"""Shared test helpers (kept out of samples.py, which actors import)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import subint_spawn

#: Seconds: generous, only there to turn a hang into a failure.
BOUND = 20


def open_test_nursery(spawn_backend: str, subint_config: str) -> AbstractAsyncContextManager[subint_spawn.ActorNursery]:
    """An actor nursery on the backend/config the test was parametrized with."""
    return subint_spawn.open_nursery(backend=spawn_backend, config=subint_config)  # type: ignore[arg-type]
