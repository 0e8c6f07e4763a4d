"""Actor trees: actors that spawn actors, on every backend and config."""

from __future__ import annotations

import _interpreters

import pytest
import trio

import subint_spawn
from subint_spawn import ContextCancelled, RemoteActorError
from subint_spawn.driver import drain_destroys

from . import tree_samples as ts
from .helpers import open_test_nursery


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] == "Z"  # a zombie has finished
    except FileNotFoundError:
        return True


async def wait_gone(pids: list[int]) -> None:
    while not all(process_gone(pid) for pid in pids):
        await trio.sleep(0.01)


async def test_error_at_a_leaf_reaches_the_root_naming_each_hop(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(30):
        with pytest.raises(RemoteActorError) as caught:
            async with open_test_nursery(spawn_backend, subint_config) as an:
                await an.run_in_actor(ts.mid_runs_failing_leaf, name="mid")
    error = caught.value
    assert error.hops == ("mid", "leaf")
    assert error.actor_name == "leaf"
    assert error.remote_type == "ValueError" and error.remote_message == "the leaf failed"
    assert "mid -> leaf" in str(error) and "in leaf_fail" in error.remote_traceback


async def test_cancel_at_the_root_cascades_down_the_tree(
    spawn_backend: str, subint_config: str
) -> None:
    interpreters_before = {entry[0] for entry in _interpreters.list_all()}
    with trio.fail_after(30):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            mid = await an.start_actor("mid", enable_modules=["tests.tree_samples"])
            try:
                async with mid.open_context(ts.mid_with_sleeping_leaves, leaves=2) as (_ctx, pids):
                    assert len(pids) == 2
                    an.cancel_scope.cancel()
                    await trio.sleep_forever()
            finally:
                leaf_pids = pids
    await drain_destroys()
    assert {entry[0] for entry in _interpreters.list_all()} == interpreters_before
    if spawn_backend == "trio":
        with trio.fail_after(10):
            await wait_gone(leaf_pids)


async def test_hard_killed_mid_level_actor_leaves_no_orphans(
    spawn_backend: str, subint_config: str
) -> None:
    interpreters_before = {entry[0] for entry in _interpreters.list_all()}
    with trio.fail_after(30):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            mid = await an.start_actor("mid", enable_modules=["tests.tree_samples"])
            with pytest.raises(ContextCancelled):  # its parent stopped it under the context
                async with mid.open_context(ts.mid_stuck_with_stuck_leaves, leaves=2) as (
                    _ctx,
                    pids,
                ):
                    leaf_pids = pids
                    await mid.cancel_actor()  # the mid ignores IPC: hard kill
    # Who reaps the leaves: the mid's guest, after its trio loop died (subint); the kernel,
    # through PR_SET_PDEATHSIG, when the mid process died (trio).
    await drain_destroys()
    assert {entry[0] for entry in _interpreters.list_all()} == interpreters_before
    if spawn_backend == "trio":
        with trio.fail_after(10):
            await wait_gone(leaf_pids)


async def test_hard_killed_actor_leaves_no_idle_warm_interpreters(subint_config: str) -> None:
    interpreters_before = {entry[0] for entry in _interpreters.list_all()}
    with trio.fail_after(30):
        async with open_test_nursery("subint", subint_config) as an:
            mid = await an.start_actor("mid", enable_modules=["tests.tree_samples"])
            with pytest.raises(ContextCancelled):  # its parent stopped it under the context
                async with mid.open_context(
                    ts.mid_stuck_with_a_warm_pool, warm=2, config=subint_config
                ):
                    # The mid and its two idle warm interpreters.
                    assert (
                        len({entry[0] for entry in _interpreters.list_all()} - interpreters_before)
                        == 3
                    )
                    await mid.cancel_actor()  # the mid ignores IPC: hard kill
    # The mid's guest destroyed the idle ones after its trio loop died under the kill.
    await drain_destroys()
    assert {entry[0] for entry in _interpreters.list_all()} == interpreters_before


@pytest.mark.timeout(240)
async def test_100_actors_in_one_tree_each_streaming_to_the_root(
    spawn_backend: str, subint_config: str
) -> None:
    totals: dict[str, int] = {}
    with trio.fail_after(200):
        async with (
            open_test_nursery(spawn_backend, subint_config) as an,
            trio.open_nursery() as streams,
        ):

            async def consume(portal: subint_spawn.Portal, name: str) -> None:
                async with portal.open_stream_from(ts.stream_numbers, n=100) as stream:
                    totals[name] = sum([value async for value in stream])

            for i in range(100):
                portal = await an.start_actor(f"a{i}", enable_modules=["tests.tree_samples"])
                streams.start_soon(consume, portal, f"a{i}")
    assert totals == {f"a{i}": sum(range(100)) for i in range(100)}
