"""The warm interpreter pool: fill, take, refill, fall back, tear down, never share.

Nothing here is timed: every wait is bounded by ``trio.fail_after`` only to turn a hang into a
failure, and the plugin's leak check (threads, interpreters, fds back to baseline) runs around
every test -- each test is its own ``trio.run``, so its own pool, torn down when it ends.
"""

from __future__ import annotations

import _interpreters
import sys
import threading

import pytest
import trio
import trio.testing

import subint_spawn
from subint_spawn import BootstrapError, census
from subint_spawn._cli import _workloads
from subint_spawn._core import _driver, _pool

from . import samples
from .helpers import BOUND


def idle_ids(config: str) -> list[int]:
    owner = _pool._owner(create=False)
    assert owner is not None
    return [interp.id for interp in owner.pool(config, _pool.WARM_UP_MODULES).idle]


async def has_runtime_imported(interpreter_id: int) -> bool:
    """Ask the interpreter itself, on a dedicated thread (never on trio's thread cache)."""
    outcome: list[object] = []
    code = "import sys\nassert 'trio' in sys.modules and 'subint_spawn._core._actor' in sys.modules"
    thread = threading.Thread(
        target=lambda: outcome.append(_interpreters.exec(interpreter_id, code))
    )
    thread.start()
    await trio.to_thread.run_sync(thread.join)
    return outcome == [None]


async def actor_interpreter_ids(
    an: subint_spawn.ActorNursery, count: int, config: str
) -> list[int]:
    """Start ``count`` actors at once; each reports the id of the interpreter it runs in."""
    ids: list[int] = []

    async def one(index: int) -> None:
        portal = await an.start_actor(
            f"a{index}", enable_modules=[_workloads.__name__], config=config
        )  # type: ignore[arg-type]
        ids.append(await portal.run(_workloads.interpreter_id))

    async with trio.open_nursery() as starters:
        for index in range(count):
            starters.start_soon(one, index)
    return ids


async def test_prewarm_fills_the_pool_with_warm_interpreters(subint_config: str) -> None:
    with trio.fail_after(BOUND):
        await subint_spawn.prewarm(2, subint_config)  # type: ignore[arg-type]
        status = _pool.status(subint_config)  # type: ignore[arg-type]
        assert (status.level, status.idle, status.warming, status.booted) == (2, 2, 0, 2)
        assert census().interpreters == 2
        for interpreter_id in idle_ids(subint_config):
            assert await has_runtime_imported(interpreter_id)


async def test_spawn_takes_a_warm_interpreter_and_the_pool_refills(subint_config: str) -> None:
    with trio.fail_after(BOUND):
        await subint_spawn.prewarm(2, subint_config)  # type: ignore[arg-type]
        warm = idle_ids(subint_config)
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            (used,) = await actor_interpreter_ids(an, 1, subint_config)
            assert used == warm[0]  # the oldest idle one
            assert _pool.status(subint_config).taken == 1  # type: ignore[arg-type]
            await subint_spawn.prewarm(2, subint_config)  # back to 2: the refill has landed
            status = _pool.status(subint_config)  # type: ignore[arg-type]
            assert (status.idle, status.booted, status.cold) == (2, 3, 0)
            assert used not in idle_ids(subint_config)
        # The actor is gone and so is its interpreter: used ones are destroyed, never pooled.
        await _driver.drain_destroys()
        assert used not in {entry[0] for entry in _interpreters.list_all()}
        assert used not in idle_ids(subint_config)
        assert census().interpreters == 2  # just the two idle ones


async def test_a_warm_interpreter_holds_every_runtime_module_an_actor_loads(
    subint_config: str,
) -> None:
    """Whatever of ours an actor imports on its way to its first answer must be imported by
    the warm-up already: an import left to spawn time is paid on every warm spawn (the guards
    and stack-dump modules once made a 6 ms warm spawn out of a 4 ms one)."""
    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            portal = await an.start_actor("probe", enable_modules=["tests.samples"])
            needed = await portal.run(samples.runtime_modules)
        await subint_spawn.prewarm(1, subint_config)  # type: ignore[arg-type]
        (warm,) = idle_ids(subint_config)
        code = f"import sys\nmissing = set({needed!r}) - set(sys.modules)\nassert not missing, sorted(missing)"
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(_interpreters.exec(warm, code)))
        thread.start()
        await trio.to_thread.run_sync(thread.join)
    assert "subint_spawn._core._actor" in needed
    assert outcome == [None], (
        f"not imported by the warm-up: {getattr(outcome[0], 'msg', outcome[0])}"
    )


async def test_empty_pool_falls_back_to_a_cold_boot(subint_config: str) -> None:
    with trio.fail_after(BOUND):
        # Nothing prewarmed in this run: spawns boot cold, and nothing stays idle.
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            assert len(await actor_interpreter_ids(an, 1, subint_config)) == 1
        status = _pool.status(subint_config)  # type: ignore[arg-type]
        assert (status.level, status.idle, status.taken, status.cold) == (0, 0, 0, 1)
        assert census().interpreters == 0
        # A pool that was emptied: prewarm(0) destroys what is idle and stops refilling.
        await subint_spawn.prewarm(1, subint_config)  # type: ignore[arg-type]
        await subint_spawn.prewarm(0, subint_config)  # type: ignore[arg-type]
        assert census().interpreters == 0
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            (used,) = await actor_interpreter_ids(an, 1, subint_config)
        status = _pool.status(subint_config)  # type: ignore[arg-type]
        assert (status.taken, status.cold, status.idle, status.warming) == (0, 2, 0, 0)
        assert used not in _pool.handed_out(subint_config)  # type: ignore[arg-type]


async def test_a_pooled_interpreter_is_never_given_to_two_actors(subint_config: str) -> None:
    with trio.fail_after(BOUND):
        await subint_spawn.prewarm(3, subint_config)  # type: ignore[arg-type]
        warm = set(idle_ids(subint_config))
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            # More actors than idle interpreters, all at once: some warm, the rest cold.
            used = await actor_interpreter_ids(an, 6, subint_config)
            assert len(used) == len(set(used)) == 6  # six actors, six interpreters
            status = _pool.status(subint_config)  # type: ignore[arg-type]
            handed = _pool.handed_out(subint_config)  # type: ignore[arg-type]
            assert status.taken + status.cold == 6
            assert status.taken == len(handed) >= 3
            assert warm <= handed <= set(used)
            # Whatever the pool holds now (refills) is unused by any actor.
            assert not set(idle_ids(subint_config)) & set(used)


def test_pool_is_torn_down_when_the_run_ends() -> None:
    # Its own trio.run (a sync test), ended while interpreters are idle in both pools and a
    # refill is in flight: nothing may survive the run.
    seen: list[int] = []

    async def main() -> None:
        with trio.fail_after(BOUND):
            await subint_spawn.prewarm(2, "isolated")
            await subint_spawn.prewarm(1, "legacy")
            async with subint_spawn.open_nursery() as an:
                seen.extend(await actor_interpreter_ids(an, 1, "isolated"))
            await subint_spawn.prewarm(2, "isolated")  # the refill for the one taken landed
            seen.extend(idle_ids("isolated") + idle_ids("legacy"))
            # End the run with a warm-up in flight: raise the level without waiting for it.
            owner = _pool._owner(create=False)
            assert owner is not None
            owner.pool("isolated", _pool.WARM_UP_MODULES).level = 3
            owner.wake()
            await trio.testing.wait_all_tasks_blocked()
            assert _pool.status("isolated").warming == 1

    trio.run(main)
    assert census().interpreters == 0 and census().threads == 0 and census().abandoned == ()
    alive = {entry[0] for entry in _interpreters.list_all()}
    assert not alive & set(seen)


async def test_the_orphan_reaper_destroys_idle_warm_interpreters(subint_config: str) -> None:
    # What the guest of a hard-killed actor runs once its own trio loop is dead, when the
    # pool's owner never got to destroy the idle interpreters: they are the driver's too.
    with trio.fail_after(BOUND):
        await subint_spawn.prewarm(2, subint_config)  # type: ignore[arg-type]
        idle = idle_ids(subint_config)
        assert len(idle) == 2
        _driver.reap_orphans_blocking()
        assert not {entry[0] for entry in _interpreters.list_all()} & set(idle)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.1])
async def test_cancelled_prewarm_leaves_nothing(subint_config: str, delay: float) -> None:
    with trio.fail_after(BOUND):
        with trio.move_on_after(delay) as scope:
            await subint_spawn.prewarm(3, subint_config)  # type: ignore[arg-type]
        assert scope.cancelled_caught
        # The cancellation waited for warm-ups in flight and destroyed them.
        status = _pool.status(subint_config)  # type: ignore[arg-type]
        assert (status.level, status.idle, status.warming) == (0, 0, 0)
        assert census().interpreters == 0


async def test_cancelled_prewarm_keeps_what_an_earlier_one_asked_for() -> None:
    with trio.fail_after(BOUND):
        await subint_spawn.prewarm(1)
        with trio.move_on_after(0.01):
            await subint_spawn.prewarm(4)
        status = _pool.status()
        assert (status.level, status.idle, status.warming) == (1, 1, 0)
        assert census().interpreters == 1


async def test_a_warm_up_that_fails_is_reported_and_leaves_nothing() -> None:
    saved = sys.path[:]
    sys.path[:] = ["/nonexistent"]  # trio and the runtime cannot be found by a new interpreter
    try:
        with trio.fail_after(BOUND):
            with pytest.raises(BootstrapError, match="could not boot"):
                await subint_spawn.prewarm(1)
    finally:
        sys.path[:] = saved
    assert census().interpreters == 0
    with trio.fail_after(BOUND):
        await subint_spawn.prewarm(1)  # a new prewarm tries again
    assert _pool.status().idle == 1


async def test_prewarm_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        await subint_spawn.prewarm(-1)
    with pytest.raises(ValueError, match="config"):
        await subint_spawn.prewarm(1, "bogus")  # type: ignore[arg-type]
