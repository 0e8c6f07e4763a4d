"""Snapshots of what a process holds -- threads, interpreters, fds -- to prove nothing leaked.

Threads are counted at the OS level (``/proc/self/task``): a thread stranded inside a destroyed
subinterpreter is invisible to ``threading.enumerate()`` in the main interpreter but still
costs an OS thread.  trio's own idle worker threads in *this* interpreter are excluded: they
belong to trio's process-wide cache and idle out by themselves.
"""

from __future__ import annotations

import _interpreters
import os
import threading
import time
from dataclasses import dataclass, field

from ._trio_private import idle_worker_count

__all__ = ["Snapshot", "leaks_between", "leaks_since", "snapshot"]


@dataclass(frozen=True)
class Snapshot:
    os_threads: int
    interpreters: frozenset[int]
    fds: frozenset[int] = field(repr=False)
    thread_names: tuple[str, ...] = field(repr=False, default=())


def _open_fds() -> frozenset[int]:
    try:
        return frozenset(int(name) for name in os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # not Linux: fall back to probing
        found = set()
        for fd in range(1024):
            try:
                os.fstat(fd)
            except OSError:
                continue
            found.add(fd)
        return frozenset(found)


def _os_thread_names() -> tuple[str, ...]:
    names = []
    try:
        tasks = os.listdir("/proc/self/task")
    except FileNotFoundError:
        return tuple(t.name for t in threading.enumerate())
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:
            continue  # it ended while we looked
    return tuple(sorted(names))


def snapshot() -> Snapshot:
    fds = _open_fds()
    names = _os_thread_names()
    return Snapshot(
        os_threads=len(names) - idle_worker_count(),
        interpreters=frozenset(entry[0] for entry in _interpreters.list_all()),
        fds=fds,
        thread_names=names,
    )


def leaks_between(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences; an empty list means nothing leaked."""
    problems = []
    if after.os_threads > before.os_threads:
        problems.append(
            f"{after.os_threads - before.os_threads} OS thread(s) leaked "
            f"(before: {', '.join(before.thread_names)}; after: {', '.join(after.thread_names)})"
        )
    new_interps = after.interpreters - before.interpreters
    if new_interps:
        problems.append(f"interpreter(s) {sorted(new_interps)} not destroyed")
    new_fds = after.fds - before.fds
    if new_fds:
        described = []
        for fd in sorted(new_fds):
            try:
                described.append(f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}")
            except OSError:
                described.append(str(fd))
        problems.append(f"fd(s) left open: {', '.join(described)}")
    return problems


def leaks_since(before: Snapshot, settle: float = 2.0) -> list[str]:
    """Compare now with ``before``; on a difference, look again for up to ``settle`` seconds.

    A thread that was told to stop and already said it did (faulthandler's timer thread after
    ``cancel_dump_traceback_later``, a joined worker) can still be listed by the kernel for a
    moment while it exits.  Only what is still there after the settle time is a leak.
    """
    deadline = time.monotonic() + settle
    while True:
        problems = leaks_between(before, snapshot())
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(0.01)
