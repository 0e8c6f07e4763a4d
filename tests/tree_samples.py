"""Functions for actor-tree tests: actors that spawn actors."""

from __future__ import annotations

import os
from typing import Any

import trio

import subint_spawn


def leaf_fail() -> None:
    raise ValueError("the leaf failed")


async def mid_runs_failing_leaf() -> None:
    async with subint_spawn.open_nursery() as an:
        portal = await an.run_in_actor(leaf_fail, name="leaf")
        await portal.wait_for_result()


def getpid() -> int:
    return os.getpid()


def spin() -> None:
    x = 0
    while True:
        x += 1


async def sleep_forever() -> None:
    await trio.sleep_forever()


async def mid_with_sleeping_leaves(ctx: subint_spawn.Context, leaves: int) -> None:
    """Spawn sleeping leaves, report their pids, then wait to be cancelled."""
    async with subint_spawn.open_nursery() as an:
        pids = []
        for i in range(leaves):
            portal = await an.run_in_actor(sleep_forever, name=f"leaf{i}")
            del portal
            leaf = await an.start_actor(f"pid{i}", enable_modules=[__name__])
            pids.append(await leaf.run(getpid))
        await ctx.started(pids)
        await trio.sleep_forever()


async def mid_stuck_with_stuck_leaves(ctx: subint_spawn.Context, leaves: int) -> None:
    """Leaves spinning in pure Python, then the mid spins too: only hard kills end this tree."""
    async with subint_spawn.open_nursery() as an, trio.open_nursery() as calls:
        pids = []
        for i in range(leaves):
            leaf = await an.start_actor(f"leaf{i}", enable_modules=[__name__])
            pids.append(await leaf.run(getpid))
            calls.start_soon(leaf.run, spin)
        await ctx.started(pids)
        spin()


async def mid_stuck_with_a_warm_pool(ctx: subint_spawn.Context, warm: int, config: str) -> None:
    """A warm pool of its own, then the mid spins: only a hard kill ends it, and its trio
    loop dies before the pool's owner can destroy the idle interpreters."""
    await subint_spawn.prewarm(warm, config)  # type: ignore[arg-type]
    await ctx.started(None)
    spin()


async def stream_numbers(n: int) -> Any:
    for i in range(n):
        yield i
