"""Bookkeeping of every interpreter and driver thread subint_spawn has alive, and the abandoned.

One process-wide registry, written by the driver from trio tasks *and* from driver threads (a
thread whose interpreter was abandoned reaps it itself if it ever finishes), hence the lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

__all__ = ["AbandonedInterpreter", "Census", "census"]


@dataclass(frozen=True)
class AbandonedInterpreter:
    """An interpreter whose thread outlived every kill step (usually stuck inside C)."""

    interpreter_id: int
    thread_name: str
    config: str
    reason: str
    abandoned_at: float  # time.monotonic()


@dataclass(frozen=True)
class Census:
    """What subint_spawn has alive right now.

    ``interpreters``: created and still live: not yet destroyed nor handed to the background
    destroyer (abandoned ones included).  ``destroying``: finished, and waiting for or in their
    destroy in the background (an actor's interpreter, once the actor's code has ended; see
    :func:`._driver.boot`'s ``defer_destroy``).  ``threads``: driver threads still running
    (abandoned ones and background destroys included).
    ``abandoned``: interpreters currently abandoned; ``abandoned_total`` counts every abandon
    since the process started, ``reclaimed_late`` those whose stuck thread finished after all
    and whose interpreter was then destroyed by that thread.
    """

    interpreters: int
    threads: int
    abandoned: tuple[AbandonedInterpreter, ...]
    abandoned_total: int
    reclaimed_late: int
    destroying: int = 0


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interpreters: set[int] = set()
        self._destroying: set[int] = set()  # a subset of _interpreters
        self._threads: set[int] = set()  # ids of driver thread objects
        self._abandoned: dict[int, AbandonedInterpreter] = {}
        self._abandoned_total = 0
        self._reclaimed_late = 0
        # Keys of abandoned boots whose thread finished (and cleaned up) before the record
        # of their abandon came in: that record is then reclaimed at once.
        self._boots_done_early: set[int] = set()
        self._boot_keys = itertools.count(1)

    def interpreter_created(self, interpreter_id: int) -> None:
        with self._lock:
            self._interpreters.add(interpreter_id)

    def destroy_deferred(self, interpreter_id: int) -> None:
        with self._lock:
            if interpreter_id in self._interpreters:
                self._destroying.add(interpreter_id)

    def interpreter_destroyed(self, interpreter_id: int) -> None:
        with self._lock:
            self._interpreters.discard(interpreter_id)
            self._destroying.discard(interpreter_id)
            if self._abandoned.pop(interpreter_id, None) is not None:
                self._reclaimed_late += 1

    def thread_started(self, key: int) -> None:
        with self._lock:
            self._threads.add(key)

    def thread_finished(self, key: int) -> None:
        with self._lock:
            self._threads.discard(key)

    def abandoned(self, record: AbandonedInterpreter, *, key: int | None = None) -> None:
        """Count ``record``.  ``key``: a boot's key (:meth:`boot_key`): a boot has no
        interpreter id to file it under.  Already reclaimed by the time it is reported (the
        thread finished right after it was given up on): counted as reclaimed at once."""
        with self._lock:
            self._abandoned_total += 1
            if key is not None:
                if key in self._boots_done_early:
                    self._boots_done_early.discard(key)
                    self._reclaimed_late += 1
                    return
            elif record.interpreter_id not in self._interpreters:
                self._reclaimed_late += 1
                return
            self._abandoned[record.interpreter_id if key is None else key] = record

    def boot_key(self) -> int:
        """A key for one boot's possible abandon record (negative: never an interpreter id)."""
        with self._lock:
            return -next(self._boot_keys)

    def boot_reclaimed(self, key: int) -> None:
        """An abandoned boot's thread finished and destroyed what it had created."""
        with self._lock:
            if self._abandoned.pop(key, None) is not None:
                self._reclaimed_late += 1
            else:
                self._boots_done_early.add(key)

    def snapshot(self) -> Census:
        with self._lock:
            return Census(
                interpreters=len(self._interpreters) - len(self._destroying),
                threads=len(self._threads),
                abandoned=tuple(self._abandoned.values()),
                abandoned_total=self._abandoned_total,
                reclaimed_late=self._reclaimed_late,
                destroying=len(self._destroying),
            )


REGISTRY = _Registry()


def census() -> Census:
    """Tell what is alive: subint_spawn's interpreters, driver threads and abandoned interpreters."""
    return REGISTRY.snapshot()


def now() -> float:
    return time.monotonic()
