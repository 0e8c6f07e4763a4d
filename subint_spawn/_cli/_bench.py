"""``python -m subint_spawn bench``: what a user of actors pays, per backend/config.

Every metric is measured on each backend/config pair it applies to (``subint/isolated``,
``subint/legacy``, ``trio``), never two pairs at once:

* *spawn (cold)*: a whole ``open_nursery`` block around one ``run_in_actor`` of a no-op.
* *warm spawn*: the same block with the interpreter taken from the warm pool
  (``prewarm(1)`` before each sample, not timed): block start -> first result, and the whole
  block including teardown.  ``subint`` only: the ``trio`` backend has no pool.
* *round trip*: ``portal.run`` of a no-op on a live actor, timed in batches (one clock read
  per batch) and reported per call.
* *stream one way*: items per second an actor's async generator delivers through
  ``portal.open_stream_from`` (``stream_items`` small ints per sample).
* *echo round trip*: a context echoing each item back; one item in flight at a time, so this
  is the latency of a message there and back on an open stream.
* *stuck-actor reclaim*: how long ``portal.cancel_actor()`` takes for an actor spinning in pure
  Python (the forced path), with ``census()`` checked to be back to zero afterwards.
* *N actors started*: N ``start_actor`` calls at once until every one is ready; cold, and
  after ``prewarm(N)`` (not timed).
* *2 CPU-bound actors*: throughput of two actors running the same pure-Python work at once,
  relative to one running it alone (2.0x is perfect scaling on two cores).
* *memory per idle actor*: process RSS (plus the children's RSS for ``trio``) with N idle
  actors, minus before, divided by N.
* *loop latency*: p95 overshoot of a 10 ms ``trio.sleep`` in the parent while N actors boot
  cold, and while ``prewarm(N)`` fills the pool.
* dev-only comparisons: ``anyio.to_interpreter.run_sync`` and
  ``concurrent.futures.InterpreterPoolExecutor`` per-call latency for a no-op.

Every sampled metric gets one unmeasured warm-up first so one-off costs (first imports,
bytecode compilation) do not land in the first sample.  Progress goes to stderr.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import trio

import subint_spawn

from . import _workloads

__all__ = ["BenchSettings", "SpinSignal", "main", "run_bench"]

ISOLATED = ("subint/isolated",)
SUBINT = ("subint/isolated", "subint/legacy")
ALL = ("subint/isolated", "subint/legacy", "trio")


@dataclass(frozen=True)
class Target:
    """A goal for one metric: ``limit`` in ``unit`` (at most, or ``at_least``), for the
    labels in ``applies``; ``setting`` names the bench setting it was stated for, if any."""

    limit: float
    unit: str
    applies: tuple[str, ...]
    at_least: bool = False
    setting: tuple[str, int] | None = None

    def text(self) -> str:
        sign = ">=" if self.at_least else "<="
        return f"{sign} {self.limit:g} {self.unit}"


#: Targets of the speed issue (medians on a 2-core machine); spawn and reclaim are older goals.
TARGETS: dict[str, Target] = {
    "spawn": Target(200.0, "ms", ALL),
    "warm_first": Target(5.0, "ms", SUBINT),
    "warm_teardown": Target(25.0, "ms", SUBINT),
    "roundtrip": Target(100.0, "us", SUBINT),
    "reclaim": Target(500.0, "ms", ALL),
    "stream": Target(200.0, "k/s", ISOLATED, at_least=True),
    "start_cold": Target(3.0, "s", ISOLATED, setting=("concurrent", 50)),
    "start_warm": Target(0.5, "s", ISOLATED, setting=("concurrent", 50)),
    "parallel": Target(1.8, "x", ISOLATED, at_least=True),
    "memory": Target(15.0, "MB", ISOLATED),
    "latency_boot": Target(5.0, "ms", ISOLATED, setting=("booting", 20)),
    "latency_fill": Target(5.0, "ms", ISOLATED, setting=("booting", 20)),
}
_SCALE = {"ms": 1e3, "us": 1e6, "s": 1.0, "x": 1.0, "MB": 1.0, "CPUs": 1.0, "k/s": 1.0}
_DIGITS = {"ms": 1, "us": 1, "s": 2, "x": 2, "MB": 1, "CPUs": 2, "k/s": 0}
#: A spinning actor that never says so is a bug; fail loudly rather than hang the bench.
SIGNAL_TIMEOUT = 30.0
#: Per-sample bound on the N-actor metrics: a hang becomes an error, not a stuck bench.
SAMPLE_TIMEOUT = 120.0


def metric_titles(settings: BenchSettings) -> dict[str, str]:
    return {
        "spawn": "spawn->result->teardown",
        "warm_first": "warm spawn->first result",
        "warm_teardown": "warm spawn, with teardown",
        "roundtrip": "portal.run round trip",
        "reclaim": "stuck-actor reclaim",
        "stream": f"stream one way ({settings.stream_items // 1000}k items)",
        "echo": "stream echo round trip",
        "start_cold": f"{settings.concurrent} started at once, cold",
        "start_warm": f"{settings.concurrent} started, prewarmed",
        "parallel": "2 CPU-bound vs 1 (thrpt)",
        "parallel_others": "  other processes meanwhile",
        "memory": f"RSS per idle actor (N={settings.idle_actors})",
        "latency_boot": f"loop p95 lag, {settings.booting} booting",
        "latency_fill": f"loop p95 lag, prewarm({settings.booting})",
        "per_call": "per-call latency, no-op",
    }


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure.

    ``repeat``: samples of the single-actor metrics; round trips in ``batches`` of
    ``batch_size``; ``heavy_repeat`` samples of the N-actor metrics on subint/isolated (where
    their targets are) and ``comparison_repeat`` elsewhere, with N =
    ``concurrent`` (actors started at once), ``idle_actors`` (memory), ``booting`` (loop
    latency); ``cpu_repeat`` samples of the CPU scaling, each ``count_primes(cpu_limit)``.
    """

    backends: tuple[str, ...] = ("subint", "trio")
    configs: tuple[str, ...] = ("isolated", "legacy")
    repeat: int = 10
    batches: int = 20
    batch_size: int = 200
    stream_items: int = 100_000
    echo_items: int = 2_000
    heavy_repeat: int = 3
    comparison_repeat: int = 2
    concurrent: int = 50
    idle_actors: int = 20
    booting: int = 20
    cpu_repeat: int = 5
    cpu_limit: int = 120_000
    comparisons: bool = True

    @classmethod
    def quick(cls, backends: tuple[str, ...], configs: tuple[str, ...]) -> BenchSettings:
        return cls(
            backends,
            configs,
            repeat=2,
            batches=5,
            batch_size=100,
            stream_items=10_000,
            echo_items=200,
            heavy_repeat=1,
            comparison_repeat=1,
            concurrent=6,
            idle_actors=3,
            booting=4,
            cpu_repeat=2,
            cpu_limit=50_000,
        )


@dataclass
class Metric:
    """Samples of one metric, already in ``unit``; summarised as median and spread.

    ``error`` says why its measurement failed, ``skipped`` why it was not taken (an optional
    comparison whose library is not installed); either way the row still shows, saying so.
    """

    unit: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def measured(self) -> bool:
        return self.error is None and self.skipped is None and bool(self.samples)

    def summary(self) -> dict[str, float | int | str]:
        ordered = sorted(self.samples)
        if not ordered:
            return {"unit": self.unit, "n": 0}
        return {
            "unit": self.unit,
            "n": len(ordered),
            "median": statistics.median(ordered),
            "min": ordered[0],
            "p10": _percentile(ordered, 0.10),
            "p90": _percentile(ordered, 0.90),
            "max": ordered[-1],
        }


@dataclass
class Result:
    """Everything measured for one backend/config pair (or one dev-only comparison)."""

    backend: str
    config: str | None
    metrics: dict[str, Metric] = field(default_factory=dict)
    census_checks: int = 0
    census_failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.backend if self.config is None else f"{self.backend}/{self.config}"

    @property
    def failed(self) -> list[str]:
        """Names of the metrics whose measurement raised."""
        return [name for name, metric in self.metrics.items() if metric.error is not None]


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile; fine for the handful of samples we take."""
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


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


def _combos(settings: BenchSettings) -> list[tuple[str, str | None]]:
    """subint once per config; trio has no interpreter config, so it runs once."""
    combos: list[tuple[str, str | None]] = []
    for backend in settings.backends:
        if backend == "subint":
            combos.extend(("subint", config) for config in settings.configs)
        else:
            combos.append((backend, None))
    return combos


def _nursery(backend: str, config: str | None) -> Any:
    return subint_spawn.open_nursery(backend=backend, config=config or "isolated")  # type: ignore[arg-type]


async def _spawn_once(backend: str, config: str | None) -> float:
    """Seconds for a whole block: spawn, run a no-op, get its result, tear the actor down."""
    start = time.perf_counter()
    async with _nursery(backend, config) as an:
        portal = await an.run_in_actor(_workloads.noop)
        await portal.wait_for_result()
    return time.perf_counter() - start


async def _roundtrips(backend: str, config: str | None, settings: BenchSettings) -> list[float]:
    """Per-call seconds, one value per batch of ``batch_size`` sequential no-op calls."""
    per_call: list[float] = []
    async with _nursery(backend, config) as an:
        portal = await an.start_actor("bench-roundtrip", enable_modules=[_workloads.__name__])
        for _ in range(settings.batch_size):  # warm-up
            await portal.run(_workloads.noop)
        for _ in range(settings.batches):
            start = time.perf_counter()
            for _ in range(settings.batch_size):
                await portal.run(_workloads.noop)
            per_call.append((time.perf_counter() - start) / settings.batch_size)
        await portal.cancel_actor()
    return per_call


async def _streams(backend: str, config: str | None, settings: BenchSettings) -> tuple[list[float], list[float]]:
    """Stream throughput (thousand items/s) and echo round trip (us per item), one actor."""
    throughput: list[float] = []
    round_trip: list[float] = []
    async with _nursery(backend, config) as an:
        portal = await an.start_actor("bench-streams", enable_modules=[_workloads.__name__])
        for sample in range(settings.repeat + 1):  # the first is a warm-up
            start = time.perf_counter()
            received = 0
            async with portal.open_stream_from(_workloads.count_up, n=settings.stream_items) as items:
                async for _ in items:
                    received += 1
            elapsed = time.perf_counter() - start
            if received != settings.stream_items:
                raise RuntimeError(f"stream delivered {received} of {settings.stream_items} items")
            if sample:
                throughput.append(received / elapsed / 1e3)
        for sample in range(settings.repeat + 1):
            async with portal.open_context(_workloads.echo) as (ctx, _), ctx.open_stream() as echoes:
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


async def _reclaim_once(
    backend: str, config: str | None, signal: SpinSignal, result: Result
) -> float:
    """Seconds ``cancel_actor`` takes on an actor known to be spinning; checks the census."""
    async with _nursery(backend, config) as an:
        portal = await an.run_in_actor(_workloads.spin_forever, host=signal.host, port=signal.port)
        with trio.fail_after(SIGNAL_TIMEOUT):
            await signal.wait()
        start = time.perf_counter()
        await portal.cancel_actor()
        elapsed = time.perf_counter() - start
        _check_census(result, "right after cancel_actor()")
    _check_census(result, "after the nursery exited")
    return elapsed


def _check_census(result: Result, when: str) -> None:
    result.census_checks += 1
    alive = subint_spawn.census().interpreters
    if alive != 0:
        result.census_failures.append(f"{alive} interpreter(s) alive {when}")


async def _warm_spawn_once(backend: str, config: str | None) -> tuple[float, float]:
    """Seconds to the first result and for the whole block, the interpreter taken warm."""
    await subint_spawn.prewarm(1, config)  # type: ignore[arg-type]  # not timed
    start = time.perf_counter()
    async with _nursery(backend, config) as an:
        portal = await an.run_in_actor(_workloads.noop)
        await portal.wait_for_result()
        first = time.perf_counter() - start
    return first, time.perf_counter() - start


async def _start_actors(an: subint_spawn.ActorNursery, count: int, prefix: str) -> None:
    async with trio.open_nursery() as starters:
        for index in range(count):
            starters.start_soon(partial(an.start_actor, f"{prefix}{index}"))


async def _start_many(
    backend: str, config: str | None, count: int, warm: bool, result: Result
) -> float:
    """Seconds until ``count`` actors started at once are all ready (pool filled beforehand
    when ``warm``, not timed; the refill is stopped before teardown)."""
    with trio.fail_after(SAMPLE_TIMEOUT):
        if warm:
            await subint_spawn.prewarm(count, config)  # type: ignore[arg-type]
        async with _nursery(backend, config) as an:
            start = time.perf_counter()
            await _start_actors(an, count, "many")
            elapsed = time.perf_counter() - start
            if warm:
                await subint_spawn.prewarm(0, config)  # type: ignore[arg-type]
    _check_census(result, f"after {count} actors")
    return elapsed


class CpuMeter:
    """How many CPUs *other* processes kept busy since it was made (Linux ``/proc``).

    The machine the bench runs on may be shared; a scaling ratio measured while something else
    held a core says little about the runtime, so the bench reports this next to it.  Ours =
    this process (every thread, so every subinterpreter) plus its children, live or reaped.
    """

    def __init__(self) -> None:
        self._start = (time.perf_counter(), *self._now())

    @staticmethod
    def _now() -> tuple[float, float]:
        try:
            with open("/proc/stat") as stat:
                ticks = [int(v) for v in stat.readline().split()[1:9]]
        except OSError, ValueError:
            return 0.0, 0.0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
        times = os.times()
        ours = times.user + times.system + times.children_user + times.children_system
        return busy, ours + _live_children_cpu() / hz

    def others(self) -> float:
        """Average CPUs used by other processes since construction."""
        start, busy0, ours0 = self._start
        busy1, ours1 = self._now()
        elapsed = time.perf_counter() - start
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / elapsed if elapsed > 0 else 0.0


def _live_children_cpu() -> int:
    """Clock ticks of CPU used so far by this process's live children (utime + stime)."""
    total = 0
    for fields in _children_stat():
        total += int(fields[11]) + int(fields[12])
    return total


def _children_stat() -> list[list[str]]:
    """The ``/proc/PID/stat`` fields after the command name, of each direct child."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            found.append([entry, *fields])
    return [f[1:] for f in found]


async def _parallel(
    backend: str, config: str | None, settings: BenchSettings, others: Metric
) -> list[float]:
    """Throughput of two actors doing the same CPU work at once over one doing it alone;
    ``others`` gets the CPUs other processes used during each sample."""
    ratios: list[float] = []
    work = partial(_workloads.count_primes, limit=settings.cpu_limit)
    async with _nursery(backend, config) as an:
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


def _rss(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError, ValueError, IndexError:
        return 0


def _children_rss() -> int:
    """RSS of this process's direct children (the trio backend's actors)."""
    return sum(int(fields[21]) for fields in _children_stat()) * os.sysconf("SC_PAGE_SIZE")


async def _memory_here(backend: str, config: str | None, count: int) -> float:
    """MB of RSS per idle actor: (with ``count`` idle actors - before) / ``count``."""
    gc.collect()
    before = _rss() + _children_rss()
    with trio.fail_after(SAMPLE_TIMEOUT):
        async with _nursery(backend, config) as an:
            await _start_actors(an, count, "idle")
            await trio.sleep(0.2)  # let them go idle (a measurement window, not a sync)
            after = _rss() + _children_rss()
        alive = subint_spawn.census().interpreters
    if alive:
        raise RuntimeError(f"{alive} interpreter(s) alive after the idle actors were stopped")
    return (after - before) / count / 1e6


async def _memory(backend: str, config: str | None, count: int, result: Result) -> float:
    """:func:`_memory_here` in a fresh process of its own.

    Measured here, the number would depend on what ran before: the C allocator keeps memory
    that earlier interpreters freed and hands it to the next ones without the RSS growing
    (legacy interpreters allocate Python objects from that same main allocator too).
    """
    command = [sys.executable, "-m", __name__, "memory", backend, config or "isolated", str(count)]
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


async def _loop_lag_while(work: Callable[[], Awaitable[object]]) -> float:
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
    return _percentile(sorted(lags), 0.95)


async def _latency_boot(backend: str, config: str | None, count: int, result: Result) -> float:
    with trio.fail_after(SAMPLE_TIMEOUT):
        async with _nursery(backend, config) as an:
            lag = await _loop_lag_while(partial(_start_actors, an, count, "boot"))
    _check_census(result, f"after {count} booting actors")
    return lag


async def _latency_fill(config: str, count: int, result: Result) -> float:
    with trio.fail_after(SAMPLE_TIMEOUT):
        lag = await _loop_lag_while(partial(subint_spawn.prewarm, count, config))  # type: ignore[arg-type]
        await subint_spawn.prewarm(0, config)  # type: ignore[arg-type]
    _check_census(result, f"after prewarm({count}) and prewarm(0)")
    return lag


async def _repeat(
    label: str,
    what: str,
    count: int,
    once: Callable[[], Awaitable[float]],
    metric: Metric,
    *,
    warm_up: bool = True,
) -> None:
    """An unmeasured warm-up, then ``count`` samples, with a progress line on stderr."""
    _progress(f"{label}: {what} x{count}")
    if warm_up:
        await once()
    for _ in range(count):
        metric.samples.append(await once() * _SCALE[metric.unit])


#: Told about each row as soon as it is measured (or has failed, or was skipped), and about
#: each backend/config pair once it is done: ``(result, metric name)``, ``(result, None)``.
OnRow = Callable[[Result, str | None], None]


def _no_rows(result: Result, name: str | None) -> None:
    del result, name


def _reason(error: BaseException) -> str:
    """One line on why a measurement failed: the innermost error of a group, type and text."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text and text[0] else type(error).__name__


async def _measure(
    result: Result, names: tuple[str, ...], work: Callable[[], Awaitable[object]], on_row: OnRow
) -> None:
    """Run ``work``, which fills ``result.metrics[name]`` for ``names``, then report those rows.

    An ``Exception`` from it fails only these rows, each saying why, and the bench goes on:
    minutes of measurements are never lost to one late error.  (Cancellation and
    ``KeyboardInterrupt`` still end the bench; rows already reported stay printed.)
    """
    try:
        await work()
    except Exception as exc:  # noqa: BLE001 -- reported in the row, see the docstring
        reason = _reason(exc)
        _progress(f"{result.label}: {', '.join(names)} failed: {reason}")
        for name in names:
            result.metrics[name].error = reason
    for name in names:
        on_row(result, name)


async def _bench_combo(
    backend: str, config: str | None, settings: BenchSettings, on_row: OnRow = _no_rows
) -> Result:
    result = Result(backend, config)
    label = result.label
    subint = backend == "subint"
    titles = metric_titles(settings)
    heavy = settings.heavy_repeat if label in ISOLATED else settings.comparison_repeat

    def metric(name: str, unit: str) -> Metric:
        made = result.metrics[name] = Metric(unit)
        return made

    # Memory first, while the process is fresh: legacy interpreters allocate from the main
    # allocator, which keeps freed arenas around for reuse.
    memory = metric("memory", "MB")
    await _measure(
        result,
        ("memory",),
        lambda: _repeat(
            label,
            titles["memory"],
            1,
            lambda: _memory(backend, config, settings.idle_actors, result),
            memory,
            warm_up=False,
        ),
        on_row,
    )

    spawn = metric("spawn", "ms")
    await _measure(
        result,
        ("spawn",),
        lambda: _repeat(label, titles["spawn"], settings.repeat, lambda: _spawn_once(backend, config), spawn),
        on_row,
    )

    if subint:
        first = metric("warm_first", "ms")
        whole = metric("warm_teardown", "ms")

        async def warm_spawns() -> None:
            _progress(f"{label}: warm spawn x{settings.repeat}")
            try:
                await _warm_spawn_once(backend, config)
                for _ in range(settings.repeat):
                    to_first, to_end = await _warm_spawn_once(backend, config)
                    first.samples.append(to_first * 1e3)
                    whole.samples.append(to_end * 1e3)
            finally:
                await subint_spawn.prewarm(0, config)  # type: ignore[arg-type]

        await _measure(result, ("warm_first", "warm_teardown"), warm_spawns, on_row)

    roundtrip = metric("roundtrip", "us")

    async def roundtrips() -> None:
        _progress(f"{label}: round trip, {settings.batches} batches of {settings.batch_size}")
        roundtrip.samples = [s * 1e6 for s in await _roundtrips(backend, config, settings)]

    await _measure(result, ("roundtrip",), roundtrips, on_row)

    stream = metric("stream", "k/s")
    echo = metric("echo", "us")

    async def streams() -> None:
        _progress(f"{label}: stream one way x{settings.repeat}, echo x{settings.repeat}")
        stream.samples, echo.samples = await _streams(backend, config, settings)

    await _measure(result, ("stream", "echo"), streams, on_row)

    reclaim = metric("reclaim", "ms")

    async def reclaims() -> None:
        signal = await SpinSignal.open()
        try:
            await _repeat(
                label,
                "stuck-actor reclaim",
                settings.repeat,
                lambda: _reclaim_once(backend, config, signal, result),
                reclaim,
            )
        finally:
            await signal.aclose()

    await _measure(result, ("reclaim",), reclaims, on_row)

    n = settings.concurrent
    cold = metric("start_cold", "s")
    await _measure(
        result,
        ("start_cold",),
        lambda: _repeat(
            label,
            titles["start_cold"],
            heavy,
            lambda: _start_many(backend, config, n, False, result),
            cold,
            warm_up=False,
        ),
        on_row,
    )
    if subint:
        warm = metric("start_warm", "s")
        await _measure(
            result,
            ("start_warm",),
            lambda: _repeat(
                label,
                titles["start_warm"],
                heavy,
                lambda: _start_many(backend, config, n, True, result),
                warm,
                warm_up=False,
            ),
            on_row,
        )

    parallel = metric("parallel", "x")
    others = metric("parallel_others", "CPUs")

    async def scaling() -> None:
        _progress(f"{label}: {titles['parallel']} x{settings.cpu_repeat}")
        parallel.samples = await _parallel(backend, config, settings, others)

    await _measure(result, ("parallel", "parallel_others"), scaling, on_row)

    lag = metric("latency_boot", "ms")
    await _measure(
        result,
        ("latency_boot",),
        lambda: _repeat(
            label,
            titles["latency_boot"],
            heavy,
            lambda: _latency_boot(backend, config, settings.booting, result),
            lag,
            warm_up=False,
        ),
        on_row,
    )
    if subint:
        assert config is not None
        fill = metric("latency_fill", "ms")
        await _measure(
            result,
            ("latency_fill",),
            lambda: _repeat(
                label,
                titles["latency_fill"],
                heavy,
                lambda: _latency_fill(config, settings.booting, result),
                fill,
                warm_up=False,
            ),
            on_row,
        )
    on_row(result, None)
    return result


# -- dev-only comparisons ------------------------------------------------------------------------


async def _anyio_per_call(settings: BenchSettings) -> list[float]:
    """``anyio.to_interpreter.run_sync`` of a no-op, per call, in batches (seconds)."""
    import anyio.to_interpreter

    per_call: list[float] = []
    for _ in range(settings.batch_size):  # warm-up: its worker interpreter boots here
        await anyio.to_interpreter.run_sync(_workloads.noop)
    for _ in range(settings.batches):
        start = time.perf_counter()
        for _ in range(settings.batch_size):
            await anyio.to_interpreter.run_sync(_workloads.noop)
        per_call.append((time.perf_counter() - start) / settings.batch_size)
    return per_call


def _executor_per_call(settings: BenchSettings) -> list[float]:
    """``InterpreterPoolExecutor(1).submit(noop).result()`` per call, in batches (seconds)."""
    from concurrent.futures import InterpreterPoolExecutor

    per_call: list[float] = []
    with InterpreterPoolExecutor(max_workers=1) as executor:
        for _ in range(settings.batch_size):
            executor.submit(_workloads.noop).result()
        for _ in range(settings.batches):
            start = time.perf_counter()
            for _ in range(settings.batch_size):
                executor.submit(_workloads.noop).result()
            per_call.append((time.perf_counter() - start) / settings.batch_size)
    return per_call


#: Why the anyio row is skipped when anyio (only in the ``dev`` extra) is not installed.
_NO_ANYIO = "anyio is not installed (pip install anyio, or the dev extra)"


def _missing(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except ImportError, ValueError:  # a parent package is missing, or blocked in sys.modules
        return True


async def _comparisons(settings: BenchSettings, on_row: OnRow = _no_rows) -> list[Result]:
    """Per-call latency of other ways to run code in a subinterpreter, each on its own row.

    The anyio one is optional: without anyio its row says how to get it, and nothing fails.
    """
    results = []
    anyio_result = Result("dev", "anyio.to_interpreter")
    anyio_metric = anyio_result.metrics["per_call"] = Metric("us")
    results.append(anyio_result)
    if _missing("anyio.to_interpreter"):
        anyio_metric.skipped = _NO_ANYIO
        _progress(f"dev: anyio.to_interpreter skipped ({anyio_metric.skipped})")
        on_row(anyio_result, "per_call")
    else:

        async def anyio_calls() -> None:
            _progress(
                f"dev: anyio.to_interpreter.run_sync, {settings.batches} batches of {settings.batch_size}"
            )
            anyio_metric.samples = [s * 1e6 for s in await _anyio_per_call(settings)]

        await _measure(anyio_result, ("per_call",), anyio_calls, on_row)

    executor_result = Result("dev", "InterpreterPoolExecutor")
    executor_metric = executor_result.metrics["per_call"] = Metric("us")
    results.append(executor_result)

    async def executor_calls() -> None:
        _progress(f"dev: InterpreterPoolExecutor, {settings.batches} batches of {settings.batch_size}")
        # Blocking submit/result calls: on a worker thread, which only waits (the executor runs
        # the interpreter on threads of its own).
        samples = await trio.to_thread.run_sync(_executor_per_call, settings)
        executor_metric.samples = [s * 1e6 for s in samples]

    await _measure(executor_result, ("per_call",), executor_calls, on_row)
    return results


async def run_bench(settings: BenchSettings, on_row: OnRow = _no_rows) -> list[Result]:
    """Measure every backend/config pair in turn (never concurrently: they would compete),
    then the dev-only comparisons (last: anyio keeps its interpreters until exit).

    ``on_row`` hears of each row as soon as it is measured, so a caller can print it then.
    """
    results = [await _bench_combo(b, c, settings, on_row) for b, c in _combos(settings)]
    if settings.comparisons and "subint" in settings.backends:
        results += await _comparisons(settings, on_row)
    return results


# -- reporting ---------------------------------------------------------------------------------


def _target_verdict(
    result: Result, metric: str, median: float, settings: BenchSettings
) -> tuple[str, bool | None]:
    target = TARGETS.get(metric)
    if target is None or result.label not in target.applies:
        return "-", None
    if target.setting is not None:
        name, value = target.setting
        if getattr(settings, name) != value:
            return f"{target.text()} @{value}", None  # stated for another N: not comparable
    met = median >= target.limit if target.at_least else median <= target.limit
    return target.text(), met


def _cell(value: float, unit: str) -> str:
    return f"{value:.{_DIGITS.get(unit, 1)}f} {unit}"


def table_head(settings: BenchSettings) -> list[str]:
    """The title and column header: printed before the first row is measured."""
    header = (
        f"{'backend/config':<28} {'metric':<30} {'median':>10} {'min':>10} {'max':>10} {'n':>4}   "
        f"{'target':<14} met"
    )
    title = (
        f"subint_spawn bench: Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{settings.repeat} samples per spawn/reclaim, {settings.heavy_repeat} per N-actor metric "
        f"({settings.comparison_repeat} off isolated), "
        f"round trip = batches of {settings.batch_size} calls"
    )
    return [title, "", header, "-" * len(header)]


def row_line(result: Result, name: str, settings: BenchSettings) -> str:
    """One metric's row; a failed or skipped metric's row says why instead of numbers."""
    metric = result.metrics[name]
    title = f"{result.label:<28} {metric_titles(settings)[name]:<30}"
    if metric.skipped is not None:
        return f"{title} skipped: {metric.skipped}"
    if metric.error is not None:
        done = f" (after {len(metric.samples)} samples)" if metric.samples else ""
        return f"{title} FAILED{done}: {metric.error}"
    if not metric.samples:
        return f"{title} no samples"
    s = metric.summary()
    target, met = _target_verdict(result, name, float(s["median"]), settings)
    verdict = "-" if met is None else ("yes" if met else "NO")
    unit = str(s["unit"])
    cells = [_cell(float(s[k]), unit) for k in ("median", "min", "max")]
    return f"{title} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {s['n']:>4}   {target:<14} {verdict}"


def census_line(result: Result) -> str | None:
    """The census summary after a backend/config pair's rows (none for dev comparisons)."""
    if result.backend == "dev":
        return None
    return f"{'':<28} {'census checks':<30} {_census_text(result)}"


def table_tail(results: list[Result], elapsed: float, others: float = 0.0) -> list[str]:
    """The notes under the table, once everything has been measured."""
    lines = [
        "",
        "loop p95 lag: overshoot of a 10 ms trio.sleep in the parent; each sample is the p95 of one boot.",
        "parallel: 2 x (time for one actor alone) / (time for two at once); 2.00 x is perfect on 2 cores.",
        "warm spawn and prewarm rows are subint only (the trio backend has no pool); dev rows are",
        "dev-only comparisons, not part of subint_spawn.",
    ]
    if any(r.backend == "trio" for r in results):
        lines.append("trio memory counts each child's whole RSS (shared libraries included).")
    failed = [f"{r.label} {name}" for r in results for name in r.failed]
    if failed:
        lines.append(f"FAILED rows ({len(failed)}): {', '.join(failed)}; the other rows are complete.")
    lines.append(
        f"total bench time {elapsed:.1f} s; other processes kept {others:.2f} of "
        f"{os.cpu_count()} CPUs busy on average meanwhile"
    )
    return lines


def format_table(
    results: list[Result], settings: BenchSettings, elapsed: float, others: float = 0.0
) -> str:
    lines = table_head(settings)
    for result in results:
        lines.extend(row_line(result, name, settings) for name in result.metrics)
        census = census_line(result)
        if census is not None:
            lines.append(census)
    lines += table_tail(results, elapsed, others)
    return "\n".join(lines)


def _census_text(result: Result) -> str:
    if not result.census_failures:
        return f"0 interpreters alive in {result.census_checks}/{result.census_checks} checks"
    return f"LEAK: {'; '.join(result.census_failures)}"


def to_json(
    results: list[Result], settings: BenchSettings, elapsed: float, others: float = 0.0
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "settings": asdict(settings),
        "targets": {
            k: {
                "limit": v.limit,
                "unit": v.unit,
                "applies": list(v.applies),
                "at_least": v.at_least,
                "setting": list(v.setting) if v.setting else None,
            }
            for k, v in TARGETS.items()
        },
        "elapsed_s": round(elapsed, 3),
        "other_processes_cpus": round(others, 3),
        "results": [],
    }
    for result in results:
        metrics: dict[str, Any] = {}
        for name, metric in result.metrics.items():
            summary = metric.summary()
            met = None
            if metric.measured:
                _, met = _target_verdict(result, name, float(summary["median"]), settings)
            metrics[name] = {
                **summary,
                "target_met": met,
                "samples": metric.samples,
                "error": metric.error,
                "skipped": metric.skipped,
            }
        out["results"].append(
            {
                "label": result.label,
                "backend": result.backend,
                "config": result.config,
                "metrics": metrics,
                "census_checks": result.census_checks,
                "census_failures": result.census_failures,
            }
        )
    return out


def main(settings: BenchSettings, as_json: bool = False) -> int:
    """Run the bench and print it; exit status 1 if an interpreter leaked or a row failed.

    The table is printed row by row as each metric is measured, so an interrupted bench
    still shows what it got; ``--json`` prints one object at the end (a failed row is in it
    with its ``error``, so it too never loses the other rows).
    """
    start = time.perf_counter()
    meter = CpuMeter()

    def print_row(result: Result, name: str | None) -> None:
        line = row_line(result, name, settings) if name is not None else census_line(result)
        if line is not None:
            print(line, flush=True)

    if not as_json:
        print("\n".join(table_head(settings)), flush=True)
    results = trio.run(run_bench, settings, _no_rows if as_json else print_row)
    elapsed = time.perf_counter() - start
    others = meter.others()
    if as_json:
        print(json.dumps(to_json(results, settings, elapsed, others), indent=2))
    else:
        print("\n".join(table_tail(results, elapsed, others)))
    failed = any(r.census_failures or r.failed for r in results)
    return 1 if failed else 0


if __name__ == "__main__":  # the memory probe: python -m subint_spawn._cli._bench memory B C N
    if len(sys.argv) == 5 and sys.argv[1] == "memory":
        _, _, _backend, _config, _count = sys.argv
        print(trio.run(_memory_here, _backend, _config, int(_count)))
    else:
        sys.exit("usage: python -m subint_spawn._cli._bench memory BACKEND CONFIG N")
