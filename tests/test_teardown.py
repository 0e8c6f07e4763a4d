"""An actor's teardown returns once its code has ended; the destroy runs in the background."""

from __future__ import annotations

import os

import trio

import subint_spawn
from subint_spawn import census
from subint_spawn.driver import drain_destroys

from . import teardown_samples
from .helpers import BOUND


async def test_the_block_does_not_wait_for_the_interpreter_destroy(subint_config: str) -> None:
    release_read, release_write = os.pipe()
    try:
        with trio.fail_after(BOUND):
            async with subint_spawn.open_nursery(backend="subint", config=subint_config) as an:  # type: ignore[arg-type]
                portal = await an.run_in_actor(
                    teardown_samples.block_destroy_until, release_fd=release_read
                )
                assert await portal.wait_for_result() == "registered"
            # The actor's destroy is stuck in its atexit hook, and the block returned anyway.
            assert census().interpreters == 0
            assert census().destroying == 1
            os.write(release_write, b"x")
            await drain_destroys()
            assert census().destroying == 0
    finally:
        os.close(release_read)
        os.close(release_write)


def test_pending_destroys_are_finished_before_trio_run_returns() -> None:
    release_read, release_write = os.pipe()

    async def main() -> None:
        with trio.fail_after(BOUND):
            async with subint_spawn.open_nursery(backend="subint") as an:
                portal = await an.run_in_actor(
                    teardown_samples.block_destroy_until, release_fd=release_read
                )
                await portal.wait_for_result()
            assert census().destroying == 1
            os.write(release_write, b"x")  # released, but nobody in this run waits for it

    try:
        trio.run(main)
        assert census().destroying == 0 and census().interpreters == 0 and census().threads == 0
    finally:
        os.close(release_read)
        os.close(release_write)
