"""``python -m subint_spawn bench``: the three costs a user of actors pays, per backend/config.

1. *Spawn -> first result -> teardown*: a whole ``open_nursery`` block around one
   ``run_in_actor`` of a no-op.  This is the price of "just run this in an actor".
2. *Round trip*: ``portal.run`` of a no-op on a warm actor.  Timed in batches (one clock read
   per batch, not per call) and reported per call, so timer overhead does not pollute it.
3. *Stuck-actor reclaim*: how long ``portal.cancel_actor()`` takes for an actor spinning in
   pure Python (it cannot honour the polite stop, so this measures the forced path), and
   whether ``census()`` is back to zero interpreters afterwards -- a fast but leaky kill would
   be worthless.

Every measurement is preceded by an unmeasured warm-up so that one-off costs (first imports,
bytecode compilation) do not land in the first sample.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

import subint_spawn

from . import _workloads

__all__ = ["BenchSettings", "SpinSignal", "main", "run_bench"]

#: Targets from the project's goals: (metric, limit, unit, backends it applies to).
TARGETS: dict[str, tuple[float, str, tuple[str, ...]]] = {
    "spawn": (200.0, "ms", ("subint", "trio")),
    "roundtrip": (150.0, "us", ("subint",)),
    "reclaim": (500.0, "ms", ("subint", "trio")),
}
METRIC_TITLES = {
    "spawn": "spawn->result->teardown",
    "roundtrip": "portal.run round trip",
    "reclaim": "stuck-actor reclaim",
}
_SCALE = {"ms": 1e3, "us": 1e6}
#: A spinning actor that never says so is a bug; fail loudly rather than hang the bench.
SIGNAL_TIMEOUT = 30.0


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure: ``repeat`` samples of spawn and reclaim, round trips in batches."""

    backends: tuple[str, ...] = ("subint", "trio")
    configs: tuple[str, ...] = ("isolated", "legacy")
    repeat: int = 20
    batches: int = 30
    batch_size: int = 200

    @classmethod
    def quick(cls, backends: tuple[str, ...], configs: tuple[str, ...]) -> BenchSettings:
        return cls(backends, configs, repeat=3, batches=5, batch_size=100)


@dataclass
class Metric:
    """Samples of one metric, already in ``unit``; summarised as median and spread."""

    unit: str
    samples: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        ordered = sorted(self.samples)
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
    """Everything measured for one backend/config pair."""

    backend: str
    config: str | None
    metrics: dict[str, Metric] = field(default_factory=dict)
    census_checks: int = 0
    census_failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.backend if self.config is None else f"{self.backend}/{self.config}"


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


async def _repeat(
    label: str, what: str, count: int, once: Callable[[], Awaitable[float]], metric: Metric
) -> None:
    """One unmeasured warm-up, then ``count`` samples, with a progress line on stderr."""
    _progress(f"{label}: {what} x{count}")
    await once()
    for _ in range(count):
        metric.samples.append(await once() * _SCALE[metric.unit])


async def _bench_combo(backend: str, config: str | None, settings: BenchSettings) -> Result:
    result = Result(backend, config)
    label = result.label

    spawn = result.metrics["spawn"] = Metric("ms")
    await _repeat(
        label,
        "spawn->result->teardown",
        settings.repeat,
        lambda: _spawn_once(backend, config),
        spawn,
    )

    _progress(f"{label}: round trip, {settings.batches} batches of {settings.batch_size}")
    roundtrip = result.metrics["roundtrip"] = Metric("us")
    roundtrip.samples = [s * 1e6 for s in await _roundtrips(backend, config, settings)]

    reclaim = result.metrics["reclaim"] = Metric("ms")
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
    return result


async def run_bench(settings: BenchSettings) -> list[Result]:
    """Measure every backend/config pair in turn (never concurrently: they would compete)."""
    return [await _bench_combo(b, c, settings) for b, c in _combos(settings)]


# -- reporting ---------------------------------------------------------------------------------


def _target_verdict(result: Result, metric: str, median: float) -> tuple[str, bool | None]:
    limit, unit, backends = TARGETS[metric]
    if result.backend not in backends:
        return "-", None
    return f"<= {limit:g} {unit}", median <= limit


def format_table(results: list[Result], settings: BenchSettings, elapsed: float) -> str:
    header = f"{'backend/config':<16} {'metric':<24} {'median':>10} {'min':>10} {'max':>10}   {'target':<12} met"
    title = (
        f"subint_spawn bench: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{settings.repeat} samples per spawn/reclaim, round trip = median of "
        f"{settings.batches} batches x {settings.batch_size} calls"
    )
    lines = [
        title,
        "",
        header,
        "-" * len(header),
    ]
    for result in results:
        for name, metric in result.metrics.items():
            s = metric.summary()
            target, met = _target_verdict(result, name, float(s["median"]))
            verdict = "-" if met is None else ("yes" if met else "NO")
            unit = str(s["unit"])
            cells = [f"{float(s[k]):>7.1f} {unit:<2}" for k in ("median", "min", "max")]
            lines.append(
                f"{result.label:<16} {METRIC_TITLES[name]:<24} {cells[0]:>10} {cells[1]:>10} "
                f"{cells[2]:>10}   {target:<12} {verdict}"
            )
        lines.append(f"{'':<16} {'census after reclaim':<24} {_census_text(result)}")
    lines += ["", "round-trip target applies to subint only."]
    if any(r.backend == "trio" for r in results):
        lines.append(
            "census() counts subinterpreters: for the trio backend (actors are processes,\n"
            "SIGKILLed and reaped by the nursery) its check is trivially 0."
        )
    lines.append(f"total bench time {elapsed:.1f} s")
    return "\n".join(lines)


def _census_text(result: Result) -> str:
    if not result.census_failures:
        return f"0 interpreters in {result.census_checks}/{result.census_checks} checks"
    return f"LEAK: {'; '.join(result.census_failures)}"


def to_json(results: list[Result], settings: BenchSettings, elapsed: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "settings": asdict(settings),
        "targets": {
            k: {"limit": v[0], "unit": v[1], "backends": list(v[2])} for k, v in TARGETS.items()
        },
        "elapsed_s": round(elapsed, 3),
        "results": [],
    }
    for result in results:
        metrics: dict[str, Any] = {}
        for name, metric in result.metrics.items():
            summary = metric.summary()
            _, met = _target_verdict(result, name, float(summary["median"]))
            metrics[name] = {**summary, "target_met": met, "samples": metric.samples}
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
    """Run the bench and print it; exit status 1 only if an interpreter leaked."""
    start = time.perf_counter()
    results = trio.run(run_bench, settings)
    elapsed = time.perf_counter() - start
    if as_json:
        print(json.dumps(to_json(results, settings, elapsed), indent=2))
    else:
        print(format_table(results, settings, elapsed))
    return 1 if any(r.census_failures for r in results) else 0
