"""What the bench measures and against what: settings, targets, samples and results."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

__all__ = [
    "ALL",
    "DIGITS",
    "ISOLATED",
    "SAMPLE_TIMEOUT",
    "SCALE",
    "SIGNAL_TIMEOUT",
    "SUBINT",
    "TARGETS",
    "BenchSettings",
    "Metric",
    "Result",
    "Target",
    "metric_titles",
    "percentile",
]

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
    "spawn": Target(100.0, "ms", ISOLATED),
    "warm_first": Target(5.0, "ms", SUBINT),
    "warm_teardown": Target(10.0, "ms", SUBINT),
    "roundtrip": Target(100.0, "us", SUBINT),
    "roundtrip_ratio": Target(1.5, "x", SUBINT),
    "reclaim": Target(500.0, "ms", ALL),
    "stream": Target(200.0, "k/s", ISOLATED, at_least=True),
    # N cold starts against the CPU they need: 1.25 x N x one start's CPU / CPU count.
    "start_cold_ratio": Target(1.0, "x", ISOLATED),
    "start_large_ratio": Target(1.0, "x", ISOLATED),
    "start_warm": Target(0.5, "s", ISOLATED, setting=("concurrent", 50)),
    "parallel": Target(1.8, "x", ISOLATED, at_least=True),
    "memory": Target(15.0, "MB", ISOLATED),
    "latency_boot": Target(5.0, "ms", ISOLATED, setting=("booting", 20)),
    "latency_fill": Target(5.0, "ms", ISOLATED, setting=("booting", 20)),
}
#: Seconds -> a metric's unit; and the digits its cells show.
SCALE = {"ms": 1e3, "us": 1e6, "s": 1.0, "x": 1.0, "MB": 1.0, "CPUs": 1.0, "k/s": 1.0}
DIGITS = {"ms": 1, "us": 1, "s": 2, "x": 2, "MB": 1, "CPUs": 2, "k/s": 0}
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
        "roundtrip_floor": "  bare socket round trip (floor)",
        "roundtrip_ratio": "  portal.run / floor",
        "reclaim": "stuck-actor reclaim",
        "stream": f"stream one way ({settings.stream_items // 1000}k items)",
        "echo": "stream echo round trip",
        "start_cpu": "one cold start's CPU",
        "start_cold": f"{settings.concurrent} started at once, cold",
        "start_cold_bound": f"  bound: 1.25 x {settings.concurrent} x CPU / CPUs",
        "start_cold_ratio": "  started / bound",
        "start_large": f"{settings.concurrent_large} started at once, cold",
        "start_large_bound": f"  bound: 1.25 x {settings.concurrent_large} x CPU / CPUs",
        "start_large_ratio": "  started / bound",
        "memory_large": f"RSS per idle actor (N={settings.concurrent_large})",
        "start_warm": f"{settings.concurrent} started, prewarmed",
        "parallel": "2 CPU-bound vs 1 (thrpt)",
        "parallel_others": "  other processes meanwhile",
        "memory": f"RSS per idle actor (N={settings.idle_actors})",
        "latency_boot": f"loop p95 lag, {settings.booting} booting",
        "latency_fill": f"loop p95 lag, prewarm({settings.booting})",
        "per_call": "per-call latency, no-op",
        "tractor_first": "spawn->first result",
        "tractor_teardown": "  result->teardown",
    }


@dataclass(frozen=True)
class BenchSettings:
    """How much to measure.

    ``repeat``: samples of the single-actor metrics; round trips in ``batches`` of
    ``batch_size``; ``heavy_repeat`` samples of the N-actor metrics on subint/isolated (where
    their targets are) and ``comparison_repeat`` elsewhere, with N =
    ``concurrent`` and ``concurrent_large`` (actors started at once; the large N and its memory
    on subint/isolated only), ``idle_actors`` (memory), ``booting`` (loop
    latency); ``cpu_repeat`` samples of the CPU scaling, each ``count_primes(cpu_limit)``;
    ``tractor_rounds`` rounds of the optional tractor rows.
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
    concurrent_large: int = 200
    idle_actors: int = 20
    booting: int = 20
    cpu_repeat: int = 5
    cpu_limit: int = 120_000
    comparisons: bool = True
    tractor_rounds: int = 5

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
            concurrent_large=12,
            idle_actors=3,
            booting=4,
            cpu_repeat=2,
            cpu_limit=50_000,
            tractor_rounds=1,
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
            "p10": percentile(ordered, 0.10),
            "p90": percentile(ordered, 0.90),
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


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank-with-interpolation percentile; fine for the handful of samples we take."""
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
