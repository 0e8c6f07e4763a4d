"""``python -m subint_spawn demo``: a guided tour for a newcomer, in three short scenes.

1. Real parallelism: two ``isolated`` actors (each interpreter has its own GIL) run pure-Python
   CPU work at the same time, against the same two jobs one after the other; the ``legacy``
   config (one GIL shared by every interpreter) is run too, as the contrast.
2. A remote error: what you get when a function raises inside an actor.
3. A stuck actor: a pure-Python ``while True`` that ignores every polite request, reclaimed by
   ``an.cancel()`` -- and ``census()`` proving nothing was left behind.

Every number printed is measured in this run.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

import subint_spawn
from subint_spawn._core._nursery import CANCEL_GRACE

from . import _workloads
from ._bench import SIGNAL_TIMEOUT, SpinSignal

__all__ = ["main"]

#: Primes below this: ~0.5 s of pure-Python work per job on a typical core.
PRIME_LIMIT = 200_000
#: Rounds of sequential-vs-parallel per config; the best of each is reported.
ROUNDS = 3
WORKLOADS = _workloads.__name__


def say(text: str = "") -> None:
    """Print a paragraph written indented in the source, followed by a blank line."""
    print(textwrap.dedent(text).strip("\n") + "\n", flush=True)


def heading(number: int, title: str) -> None:
    print(f"{number}. {title}\n{'-' * (len(title) + 3)}", flush=True)


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = await fn()
    return time.perf_counter() - start, value


# -- 1. parallelism ---------------------------------------------------------------------------


async def _sequential_and_parallel(config: str, rounds: int) -> tuple[float, float]:
    """Best wall times of two prime-counting jobs: one after the other in one actor, and at
    once in two actors.

    The actors are started (and warmed up) first so that only the work is timed, not the
    spawning.  The two ways alternate for ``rounds`` rounds and the best of each is kept:
    on a small machine any other busy process steals a core, and alternating keeps such
    noise from landing on one side only.
    """
    async with subint_spawn.open_nursery(config=config) as an:  # type: ignore[arg-type]
        a = await an.start_actor("primes-a", enable_modules=[WORKLOADS])
        b = await an.start_actor("primes-b", enable_modules=[WORKLOADS])
        for portal in (a, b):
            await portal.run(_workloads.count_primes, limit=1_000)

        async def one_after_the_other() -> None:
            await a.run(_workloads.count_primes, limit=PRIME_LIMIT)
            await a.run(_workloads.count_primes, limit=PRIME_LIMIT)

        async def both_at_once() -> None:
            async with trio.open_nursery() as jobs:
                for portal in (a, b):
                    jobs.start_soon(
                        lambda p=portal: p.run(_workloads.count_primes, limit=PRIME_LIMIT)
                    )

        sequential, parallel = [], []
        for _ in range(rounds):
            sequential.append((await timed(one_after_the_other))[0])
            parallel.append((await timed(both_at_once))[0])
    return min(sequential), min(parallel)


def _report(title: str, sequential: float, parallel: float, note: str = "") -> None:
    lines = [
        title,
        f"    sequential, 1 actor : {sequential:5.2f} s",
        f"    parallel, 2 actors  : {parallel:5.2f} s   -> speedup {sequential / parallel:.2f}x",
    ]
    print("\n".join(lines + ([f"    {note}"] if note else [])) + "\n", flush=True)


async def scene_parallelism() -> None:
    heading(1, "Real parallelism: one GIL per interpreter")
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    say(f"""
        Job: count the primes below {PRIME_LIMIT:,} in pure Python (CPU-bound, holds the GIL).
        Two jobs one after the other in one actor, vs the same two jobs at the same time in
        two actors; best of {ROUNDS} rounds each.  Machine: {cpus} CPUs, load average {load:.2f}
        before we start (other busy processes take CPUs away and lower the speedup).
        """)
    _report(
        "config='isolated' (each interpreter has its own GIL):",
        *await _sequential_and_parallel("isolated", ROUNDS),
        note=f"(the ceiling is {min(2, cpus)}.00x: two jobs, {cpus} CPUs)",
    )
    _report(
        "config='legacy' (all interpreters share one GIL), for contrast:",
        *await _sequential_and_parallel("legacy", ROUNDS),
    )


# -- 2. remote errors -------------------------------------------------------------------------


async def scene_remote_error() -> None:
    heading(2, "An error inside an actor")
    say("""
        run_in_actor(load_settings, path='app.toml'): the function raises ValueError three
        calls deep.  The nursery cancels the actor's siblings and raises that one error
        itself (several at once would be an ExceptionGroup), so the caller catches it with
        `except RemoteActorError`.
        """)
    try:
        async with subint_spawn.open_nursery() as an:
            portal = await an.run_in_actor(_workloads.load_settings, path="app.toml")
            await portal.wait_for_result()
    except subint_spawn.RemoteActorError as error:
        header = textwrap.dedent(f"""
            caught      : {type(error).__name__}
            remote type : {error.remote_type}
            message     : {error.remote_message}
            actor name  : {error.actor_name}
            remote traceback, as the actor saw it:""").strip("\n")
        traceback = textwrap.indent(error.remote_traceback.rstrip("\n"), "    | ")
        print(f"{header}\n{traceback}\n", flush=True)
    else:
        raise AssertionError("load_settings was expected to raise in its actor")


# -- 3. a stuck actor -------------------------------------------------------------------------


async def scene_stuck_actor() -> None:
    heading(3, "Reclaiming a stuck actor")
    say("""
        spin_forever() connects to a local socket to say "spinning now", then runs
        `while True: x += 1` -- no await, so it never reads the polite stop request.
        """)
    signal = await SpinSignal.open()
    try:
        async with subint_spawn.open_nursery() as an:
            await an.run_in_actor(_workloads.spin_forever, host=signal.host, port=signal.port)
            with trio.fail_after(SIGNAL_TIMEOUT):
                await signal.wait()
            before = subint_spawn.census()
            took, _ = await timed(an.cancel)
            after_cancel = subint_spawn.census()
        after_exit = subint_spawn.census()
    finally:
        await signal.aclose()
    say(f"""
        actor is spinning; census(): {before.interpreters} interpreter(s), {before.threads} driver thread(s)
        an.cancel() returned after {took * 1e3:.0f} ms (polite stop, {CANCEL_GRACE * 1e3:.0f} ms grace, then forced)
        census() right after     : {after_cancel.interpreters} interpreters, {after_cancel.threads} threads
        census() after the block : {after_exit.interpreters} interpreters, {after_exit.threads} threads, {after_exit.abandoned_total} abandoned
        """)
    if after_exit.interpreters != 0:
        raise RuntimeError(f"an interpreter leaked: {after_exit}")


async def run_demo() -> None:
    say("""
        subint_spawn demo: trio actors, each in its own CPython subinterpreter
        (backend='subint'; functions are sent by name from subint_spawn._cli._workloads)
        """)
    await scene_parallelism()
    await scene_remote_error()
    await scene_stuck_actor()


def main() -> int:
    start = time.perf_counter()
    trio.run(run_demo)
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    return 0
