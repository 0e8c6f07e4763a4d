"""Shared test helpers (kept out of samples.py, which actors import)."""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio

import subint_spawn
from subint_spawn._backends import BACKENDS, get

#: Seconds: generous, only there to turn a hang into a failure.
BOUND = 20


def open_test_nursery(
    spawn_backend: str, subint_config: str
) -> AbstractAsyncContextManager[subint_spawn.ActorNursery]:
    """An actor nursery on the backend/config the test was parametrized with."""
    return subint_spawn.open_nursery(backend=spawn_backend, config=subint_config)  # type: ignore[arg-type]


def running_actors(backend: str) -> set[int]:
    """Backend-specific evidence of what runs now: the ids of this process's subinterpreters
    that are running code (``subint``), or the pids of its live child processes (``trio``).
    Nothing else in a test process makes either.  An actor whose code has ended is not running
    even while its interpreter waits for its background destroy."""
    if backend == "subint":
        import _interpreters

        running = set()
        for entry in _interpreters.list_all():
            try:
                if entry[0] != 0 and _interpreters.is_running(entry[0]):
                    running.add(entry[0])
            except _interpreters.InterpreterNotFoundError:
                pass  # destroyed meanwhile
        return running
    children: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as listing:
                children.update(int(pid) for pid in listing.read().split())
        except FileNotFoundError:
            pass  # that thread ended meanwhile
    return {pid for pid in children if not process_gone(pid)}


def process_gone(pid: int) -> bool:
    """The process has finished (it is a zombie, or reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def count_spawns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the actors every backend is asked to spawn from now on, in order: the
    evidence that a refusal came *before* anything started, not after a teardown."""
    spawned: list[str] = []
    for name in BACKENDS:
        backend = get(name)
        original = backend.spawn

        async def spawn(actor: str, *args: Any, original: Any = original) -> Any:
            spawned.append(actor)
            return await original(actor, *args)

        monkeypatch.setattr(backend, "spawn", spawn)
    return spawned


_addresses = itertools.count()


@asynccontextmanager
async def announcements() -> AsyncIterator[tuple[str, Any]]:
    """``(address, heard)``: an actor function given ``announce=address`` connects there once
    it runs (``samples.announce``); ``await heard()`` returns when one has.  An abstract
    ``AF_UNIX`` address, so it works from subinterpreters and child processes alike."""
    address = f"\0subint-spawn-test-{os.getpid()}-{next(_addresses)}"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await listener.bind(address)
        listener.listen()

        async def heard() -> None:
            connection, _ = await listener.accept()
            connection.close()

        yield address, heard
    finally:
        listener.close()


async def started_call(
    portal: subint_spawn.Portal, nursery: trio.Nursery, fn: Any, **kwargs: Any
) -> None:
    """Start ``portal.run(fn, announce=..., **kwargs)`` in ``nursery``; return once ``fn`` is
    running in the actor (it said so).  The call failing with ``ChannelClosed`` later -- its
    actor stopped under it -- is what these tests expect, so it is swallowed."""
    async with announcements() as (address, heard):

        async def call() -> None:
            try:
                await portal.run(fn, announce=address, **kwargs)
            except subint_spawn.ChannelClosed:
                pass

        nursery.start_soon(call)
        await heard()


def actor_gone(peer: subint_spawn.ActorInfo | None) -> bool:
    """The actor behind a portal (``portal.channel.peer``) no longer runs: its subinterpreter
    is destroyed, or its process has finished."""
    assert peer is not None, "the actor never said ready"
    if peer.interpreter_id != 0:
        return peer.interpreter_id not in running_actors("subint")
    return process_gone(peer.pid)
