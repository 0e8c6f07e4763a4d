"""tractor's own ``subint`` spawn method and subint_spawn's, side by side, in one process
(tractor's ``trio`` method, a process per actor, for reference).

    python scripts/tractor_timings.py [--rounds N] [--stuck]

Needs tractor installed (``make tractor`` puts it in .venv).  Rounds alternate between the two
methods, so both see the same machine load.  Per round, from the caller's side:

* ``spawn -> result``: ``run_in_actor`` of a trivial function until its result is in (cold:
  every actor is a fresh interpreter that imports tractor; ``subint_spawn, warm``: the
  interpreter comes from ``subint_spawn.tractor.prewarm(1)``, filled before the clock starts);
* ``result -> teardown``: from the result to the end of the actor nursery's block;
* with ``--stuck``: an actor stuck in a pure-Python loop, or in ``threading.Event.wait(1.0)``
  (C, 1 s at a time), is cancelled; ``reclaim`` is from the cancel to the end of the block,
  ``left`` how many more interpreters are alive after than before the round, once
  subint_spawn's background destroys are done (``_interpreters.list_all``; a ``trio``-method
  actor is a process, always 0; an actor abandoned in C is destroyed when its call returns).
"""

from __future__ import annotations

import _interpreters
import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tractor_timing_samples

import tractor
import tractor_timing_samples as samples

import subint_spawn.tractor as subint_tractor
from subint_spawn.driver import drain_destroys

# label: (tractor start_method, what selects the implementation behind it)
METHODS: dict[str, tuple[str, Callable[[], None]]] = {
    "tractor's trio": ("trio", subint_tractor.uninstall),
    "tractor's subint": ("subint", subint_tractor.uninstall),
    "subint_spawn": ("subint", subint_tractor.install),
    "subint_spawn, warm": ("subint", subint_tractor.install),
}
WARM = {"subint_spawn, warm"}
STUCK_METHODS = ("tractor's trio", "tractor's subint", "subint_spawn")


def free_addr() -> tuple[str, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return ("127.0.0.1", probe.getsockname()[1])


async def spawn_round(start_method: str, warm: bool = False) -> tuple[float, float]:
    # Not timed: fill the pool (this trio run's) for a warm round, empty it for a cold one.
    await subint_tractor.prewarm(1 if warm else 0)
    start = time.perf_counter()
    async with tractor.open_nursery(start_method=start_method, registry_addrs=[free_addr()]) as an:
        portal = await an.run_in_actor(samples.double, x=21, name="timed")
        assert await portal.wait_for_result() == 42
        result_at = time.perf_counter()
    return result_at - start, time.perf_counter() - result_at


def alive() -> int:
    return len([i for i in _interpreters.list_all() if i[0] != 0])


async def stuck_round(stuck: Callable[..., object], start_method: str) -> tuple[float, int]:
    await drain_destroys()  # an earlier round's background destroy is not this round's
    before = alive()
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    try:
        with trio.CancelScope() as scope:
            async with tractor.open_nursery(
                start_method=start_method, registry_addrs=[free_addr()]
            ) as an:
                await an.run_in_actor(stuck, ready_port=port, name="stuck")
                ready = await listener.accept()
                assert await ready.receive_some(1) == b"r"
                await ready.aclose()
                cancelled_at = time.perf_counter()
                scope.cancel()
        reclaim = time.perf_counter() - cancelled_at
    finally:
        await listener.aclose()
    await drain_destroys()  # subint_spawn destroys in the background once the block is over
    return reclaim, alive() - before


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} ms" if values else "      -"


async def main(rounds: int, stuck: bool) -> None:
    spawn: dict[str, list[float]] = {name: [] for name in METHODS}
    teardown: dict[str, list[float]] = {name: [] for name in METHODS}
    for _ in range(rounds):
        for name, (start_method, select) in METHODS.items():
            select()
            to_result, to_end = await spawn_round(start_method, warm=name in WARM)
            spawn[name].append(to_result)
            teardown[name].append(to_end)
    print(f"{rounds} rounds each, alternating; medians")
    print(f"{'method':18} {'spawn -> result':>16} {'result -> teardown':>19}")
    for name in METHODS:
        print(f"{name:18} {median_ms(spawn[name]):>16} {median_ms(teardown[name]):>19}")
    if not stuck:
        return
    print("\nstuck actor, cancelled (one round each; 'left' = interpreters alive afterwards)")
    for label, function in (
        ("pure-Python loop", samples.spin),
        ("Event.wait(1.0) loop", samples.wait_in_c),
    ):
        for name in STUCK_METHODS:
            start_method, select = METHODS[name]
            select()
            reclaim, left = await stuck_round(function, start_method)
            print(f"{label:22} {name:18} reclaim {reclaim * 1000:6.0f} ms  left {left}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stuck", action="store_true")
    options = parser.parse_args()
    trio.run(main, options.rounds, options.stuck)
