"""One sample of each metric: the code that is timed, and the checks around it."""

from __future__ import annotations

import gc
import itertools
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

import subint_spawn
from subint_spawn.driver import drain_destroys

from .. import _workloads
from ._model import SAMPLE_TIMEOUT, SIGNAL_TIMEOUT, BenchSettings, Metric, Result, percentile
from ._proc import CpuMeter, children_rss, rss

__all__ = ["SpinSignal"]


class SpinSignal:
    """A loopback listener a stuck actor connects to right before it starts spinning.

    Knowing the actor *is* spinning before cancelling it is the whole point of the reclaim
    measurement; a sleep would only guess.  A socket (rather than a pipe fd) works for both
    backends: the ``trio`` backend's actors are processes that do not inherit our fds.
    """

    def __init__(self, listener: trio.SocketListener) -> None:
        self._listener = listener
        self.host, self.port = listener.socket.getsockname()[:2]

    @classmethod
    async def open(cls) -> SpinSignal:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        return cls(listeners[0])

    async def wait(self) -> None:
        """Return once an actor has connected and said it is about to spin."""
        stream = await self._listener.accept()
        async with stream:
            await stream.receive_some(1)

    async def aclose(self) -> None:
        await self._listener.aclose()


def nursery(backend: str, config: str | None) -> Any:
    return subint_spawn.open_nursery(backend=backend, config=config or "isolated")  # type: ignore[arg-type]


async def spawn_once(backend: str, config: str | None) -> float:
    """Seconds for a whole block: spawn, run a no-op, get its result, tear the actor down."""
    start = time.perf_counter()
    async with nursery(backend, config) as an:
        portal = await an.run_in_actor(_workloads.noop)
        await portal.wait_for_result()
    return time.perf_counter() - start


async def roundtrips(
    backend: str, config: str | None, settings: BenchSettings
) -> tuple[list[float], list[float]]:
    """Per-call seconds of ``portal.run`` of a no-op, and of the floor under it, one value per
    batch of ``batch_size`` sequential round trips.

    The floor is a bare ``AF_UNIX`` socket between the same two interpreters (or processes):
    one byte there and back, with nothing on either side but ``trio.lowlevel.wait_readable``
    (:func:`_workloads.bare_echo`).  Batches of the two alternate, so both see the same load.
    """
    calls: list[float] = []
    floor: list[float] = []
    async with nursery(backend, config) as an:
        portal = await an.start_actor("bench-roundtrip", enable_modules=[_workloads.__name__])
        for _ in range(settings.batch_size):  # warm-up
            await portal.run(_workloads.noop)
        async with _bare_peer(portal, settings.batches * settings.batch_size) as sock:
            for _ in range(settings.batches):
                start = time.perf_counter()
                for _ in range(settings.batch_size):
                    sock.send(b"x")
                    await trio.lowlevel.wait_readable(sock)
                    sock.recv(64)
                floor.append((time.perf_counter() - start) / settings.batch_size)
                start = time.perf_counter()
                for _ in range(settings.batch_size):
                    await portal.run(_workloads.noop)
                calls.append((time.perf_counter() - start) / settings.batch_size)
        await portal.cancel_actor()
    return calls, floor


@asynccontextmanager
async def _bare_peer(portal: subint_spawn.Portal, count: int) -> AsyncIterator[socket.socket]:
    """A bare socket to a task in the actor that echoes ``count`` messages on it."""
    address = f"\0subint-spawn-bench-{os.getpid()}-{next(_ADDRESSES)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen(1)
        listener.setblocking(False)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                partial(portal.run, _workloads.bare_echo, address=address, count=count)
            )
            await trio.lowlevel.wait_readable(listener)
            sock, _ = listener.accept()
            with sock:
                sock.setblocking(False)
                yield sock


_ADDRESSES = itertools.count()


async def streams(
    backend: str, config: str | None, settings: BenchSettings
) -> tuple[list[float], list[float]]:
    """Stream throughput (thousand items/s) and echo round trip (us per item), one actor."""
    throughput: list[float] = []
    round_trip: list[float] = []
    async with nursery(backend, config) as an:
        portal = await an.start_actor("bench-streams", enable_modules=[_workloads.__name__])
        for sample in range(settings.repeat + 1):  # the first is a warm-up
            start = time.perf_counter()
            received = 0
            async with portal.open_stream_from(
                _workloads.count_up, n=settings.stream_items
            ) as items:
                async for _ in items:
                    received += 1
            elapsed = time.perf_counter() - start
            if received != settings.stream_items:
                raise RuntimeError(f"stream delivered {received} of {settings.stream_items} items")
            if sample:
                throughput.append(received / elapsed / 1e3)
        for sample in range(settings.repeat + 1):
            async with (
                portal.open_context(_workloads.echo) as (ctx, _),
                ctx.open_stream() as echoes,
            ):
                start = time.perf_counter()
                for i in range(settings.echo_items):
                    await echoes.send(i)
                    if await echoes.receive() != i:
                        raise RuntimeError("echo answered out of order")
                elapsed = time.perf_counter() - start
            if sample:
                round_trip.append(elapsed / settings.echo_items * 1e6)
        await portal.cancel_actor()
    return throughput, round_trip


async def reclaim_once(
    backend: str, config: str | None, signal: SpinSignal, result: Result
) -> float:
    """Seconds ``cancel_actor`` takes on an actor known to be spinning; checks the census."""
    async with nursery(backend, config) as an:
        portal = await an.run_in_actor(_workloads.spin_forever, host=signal.host, port=signal.port)
        with trio.fail_after(SIGNAL_TIMEOUT):
            await signal.wait()
        start = time.perf_counter()
        await portal.cancel_actor()
        elapsed = time.perf_counter() - start
        check_census(result, "right after cancel_actor()")
    check_census(result, "after the nursery exited")
    return elapsed


def check_census(result: Result, when: str) -> None:
    result.census_checks += 1
    alive = subint_spawn.census().interpreters
    if alive != 0:
        result.census_failures.append(f"{alive} interpreter(s) alive {when}")


async def warm_spawn_once(backend: str, config: str | None) -> tuple[float, float]:
    """Seconds to the first result and for the whole block, the interpreter taken warm."""
    await subint_spawn.prewarm(1, config)  # type: ignore[arg-type]  # not timed
    start = time.perf_counter()
    async with nursery(backend, config) as an:
        portal = await an.run_in_actor(_workloads.noop)
        await portal.wait_for_result()
        first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def start_actors(an: subint_spawn.ActorNursery, count: int, prefix: str) -> None:
    async with trio.open_nursery() as starters:
        for index in range(count):
            starters.start_soon(partial(an.start_actor, f"{prefix}{index}"))


def own_cpu() -> float:
    """CPU seconds of this process (every thread, so every subinterpreter) and of its reaped
    children (the ``trio`` backend's actor processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


async def start_cpu_once(backend: str, config: str | None) -> float:
    """CPU seconds one cold actor costs until it is ready (``start_actor`` returned): what
    starting N at once needs N times over.  Its teardown is outside the window; the actor
    processes of the ``trio`` backend are counted once reaped, so the window closes after the
    block for them (their teardown is then in it too, a little over the boot)."""
    # The previous sample's interpreter is destroyed in the background: not this start's CPU.
    await drain_destroys()
    async with nursery(backend, config) as an:
        before = own_cpu()
        await an.start_actor("one", enable_modules=[_workloads.__name__])
        during = own_cpu() - before
    if backend == "trio":
        during = own_cpu() - before
    return during


async def start_many(
    backend: str, config: str | None, count: int, warm: bool, result: Result
) -> float:
    """Seconds until ``count`` actors started at once are all ready (pool filled beforehand
    when ``warm``, not timed; the refill is stopped before teardown)."""
    with trio.fail_after(SAMPLE_TIMEOUT):
        if warm:
            await subint_spawn.prewarm(count, config)  # type: ignore[arg-type]
        async with nursery(backend, config) as an:
            start = time.perf_counter()
            await start_actors(an, count, "many")
            elapsed = time.perf_counter() - start
            if warm:
                await subint_spawn.prewarm(0, config)  # type: ignore[arg-type]
    check_census(result, f"after {count} actors")
    return elapsed


async def parallel(
    backend: str, config: str | None, settings: BenchSettings, others: Metric
) -> list[float]:
    """Throughput of two actors doing the same CPU work at once over one doing it alone;
    ``others`` gets the CPUs other processes used during each sample."""
    ratios: list[float] = []
    work = partial(_workloads.count_primes, limit=settings.cpu_limit)
    async with nursery(backend, config) as an:
        first = await an.start_actor("cpu-a", enable_modules=[_workloads.__name__])
        second = await an.start_actor("cpu-b", enable_modules=[_workloads.__name__])
        for portal in (first, second):  # warm-up
            await portal.run(_workloads.count_primes, limit=settings.cpu_limit // 4)
        for _ in range(settings.cpu_repeat):
            meter = CpuMeter()
            start = time.perf_counter()
            await first.run(work.func, **work.keywords)
            alone = time.perf_counter() - start
            start = time.perf_counter()
            async with trio.open_nursery() as both:
                for portal in (first, second):
                    both.start_soon(partial(portal.run, work.func, **work.keywords))
            together = time.perf_counter() - start
            ratios.append(2 * alone / together)
            others.samples.append(meter.others())
    return ratios


async def memory_here(backend: str, config: str | None, count: int) -> float:
    """MB of RSS per idle actor: (with ``count`` idle actors - before) / ``count``."""
    gc.collect()
    before = rss() + children_rss()
    with trio.fail_after(SAMPLE_TIMEOUT):
        async with nursery(backend, config) as an:
            await start_actors(an, count, "idle")
            await trio.sleep(0.2)  # let them go idle (a measurement window, not a sync)
            after = rss() + children_rss()
        alive = subint_spawn.census().interpreters
    if alive:
        raise RuntimeError(f"{alive} interpreter(s) alive after the idle actors were stopped")
    return (after - before) / count / 1e6


async def memory(backend: str, config: str | None, count: int, result: Result) -> float:
    """:func:`memory_here` in a fresh process of its own.

    Measured here, the number would depend on what ran before: the C allocator keeps memory
    that earlier interpreters freed and hands it to the next ones without the RSS growing
    (legacy interpreters allocate Python objects from that same main allocator too).
    """
    command = [
        sys.executable,
        "-m",
        __package__,
        "memory",
        backend,
        config or "isolated",
        str(count),
    ]
    with trio.fail_after(SAMPLE_TIMEOUT):
        done = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    result.census_checks += 1
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        result.census_failures.append(f"memory probe failed: {detail[0]}")
        return float("nan")
    return float(done.stdout.decode().strip())


async def loop_lag_while(work: Callable[[], Awaitable[object]]) -> float:
    """p95, in seconds, of how late a 10 ms ``trio.sleep`` wakes up while ``work`` runs."""
    lags: list[float] = []
    done = trio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await trio.sleep(0.01)
            lags.append(time.perf_counter() - start - 0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        try:
            await work()
        finally:
            done.set()
    return percentile(sorted(lags), 0.95)


async def latency_boot(backend: str, config: str | None, count: int, result: Result) -> float:
    with trio.fail_after(SAMPLE_TIMEOUT):
        async with nursery(backend, config) as an:
            lag = await loop_lag_while(partial(start_actors, an, count, "boot"))
    check_census(result, f"after {count} booting actors")
    return lag


async def latency_fill(config: str, count: int, result: Result) -> float:
    with trio.fail_after(SAMPLE_TIMEOUT):
        lag = await loop_lag_while(partial(subint_spawn.prewarm, count, config))  # type: ignore[arg-type]
        await subint_spawn.prewarm(0, config)  # type: ignore[arg-type]
    check_census(result, f"after prewarm({count}) and prewarm(0)")
    return lag
