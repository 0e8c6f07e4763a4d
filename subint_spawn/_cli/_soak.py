"""``python -m subint_spawn soak``: many spawn/run/cancel cycles, then proof nothing leaked.

Each cycle opens a nursery, starts one actor, takes it down one of the ways the runtime knows
(``PATHS``), and closes the nursery, all under ``trio.fail_after`` so a hang is a failed cycle
rather than a stuck soak.  Cycles rotate through every path on every backend/config pair
(``KINDS``), so 1,000 cycles exercise each combination many times over.

What it reports, and why each figure:

* cycles and failures per path: a failure is any cycle that raised something other than what
  its path expects, or ran past its bound;
* leaked OS threads, interpreters and fds against a snapshot taken before the first cycle
  (:mod:`.._core._leaks`, settled for a few seconds): the soak's exit status is non-zero on any;
* RSS at start, after a warm-up (first imports, caches, allocator arenas), and at the end;
  growth per 100 cycles after the warm-up, overall and attributed to each backend/config by
  summing each cycle's RSS change.  Legacy interpreters allocate from the main interpreter's
  obmalloc, so what they leave there stays in this process's RSS; isolated ones have their
  own allocator, released when they are destroyed.  With ``concurrency > 1`` cycles overlap,
  so only the overall figure is given.

The functions the actors run are in this module too, so it stays importable cheaply.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import trio
import trio.testing

import subint_spawn

__all__ = ["PATHS", "SoakReport", "SoakSettings", "main", "run_soak"]

MODULE = __name__
#: Every way a cycle ends its actor; see the ``_path_*`` functions.
PATHS = (
    "exit",
    "cancel_actor",
    "an_cancel",
    "scope_cancel",
    "actor_error",
    "hard_kill",
    "ctx_cancel_parent",
    "ctx_cancel_actor",
    "stream_closed_early",
)
#: How long the leak check waits for exiting threads to be gone from ``/proc``.
LEAK_SETTLE = 5.0
_MB = 1024 * 1024


# -- what the actors run ------------------------------------------------------------------------


def add(x: int, y: int) -> int:
    return x + y


def fail(message: str) -> None:
    raise ValueError(message)


async def sleep_forever() -> None:
    await trio.sleep_forever()


def spin() -> None:
    """A sync pure-Python loop: the actor's trio thread never reads ``stop`` again, so only
    the hard stop (injected exception / SIGKILL) ends it."""
    while True:
        pass


async def sleeping_context(ctx: subint_spawn.Context) -> None:
    await ctx.started("up")
    await trio.sleep_forever()


async def self_cancelling_context(ctx: subint_spawn.Context) -> None:
    await ctx.started("up")
    await ctx.cancel()
    await trio.sleep_forever()


async def count_forever() -> Any:
    for i in itertools.count():
        yield i


# -- the cycles -------------------------------------------------------------------------------


class CycleFailed(Exception):
    """A cycle ended in a way its path does not expect."""


def _nursery(backend: str, config: str) -> Any:
    return subint_spawn.open_nursery(backend=backend, config=config)  # type: ignore[arg-type]


async def _start(an: subint_spawn.ActorNursery) -> subint_spawn.Portal:
    portal = await an.start_actor("soak", enable_modules=[MODULE])
    if await portal.run(add, x=1, y=2) != 3:
        raise CycleFailed("wrong answer from a fresh actor")
    return portal


async def _call_in_background(nursery: trio.Nursery, portal: subint_spawn.Portal, fn: Any) -> None:
    """Start ``portal.run(fn)`` and return once its call is on the wire; it may end in
    ``ChannelClosed`` (its actor is stopped under it), nothing else."""

    async def call(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as inner:
                inner.start_soon(portal.run, fn)
                await trio.testing.wait_all_tasks_blocked()
                task_status.started()
        except* subint_spawn.ChannelClosed:
            pass

    await nursery.start(call)


async def _path_exit(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an:
        await _start(an)
        one_shot = await an.run_in_actor(add, name="one-shot", enable_modules=[MODULE], x=2, y=2)
        if await one_shot.wait_for_result() != 4:
            raise CycleFailed("wrong result from run_in_actor")


async def _path_cancel_actor(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an, trio.open_nursery() as callers:
        portal = await _start(an)
        await _call_in_background(callers, portal, sleep_forever)
        await portal.cancel_actor()


async def _path_an_cancel(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an, trio.open_nursery() as callers:
        portal = await _start(an)
        await _call_in_background(callers, portal, sleep_forever)
        await an.cancel()


async def _path_scope_cancel(backend: str, config: str) -> None:
    with trio.CancelScope() as scope:
        async with _nursery(backend, config) as an, trio.open_nursery() as callers:
            portal = await _start(an)
            await _call_in_background(callers, portal, sleep_forever)
            scope.cancel()
            await trio.sleep_forever()
    if not scope.cancelled_caught:
        raise CycleFailed("the enclosing scope's cancellation did not end the block")


async def _path_actor_error(backend: str, config: str) -> None:
    try:
        async with _nursery(backend, config) as an:
            await _start(an)
            failing = await an.run_in_actor(
                fail, name="failing", enable_modules=[MODULE], message="on purpose"
            )
            await failing.wait_for_result()
    except (BaseExceptionGroup, subint_spawn.RemoteActorError) as raised:
        errors = _leaves(raised) if isinstance(raised, BaseExceptionGroup) else [raised]
        if len(errors) != 1 or getattr(errors[0], "remote_type", None) != "ValueError":
            raise CycleFailed(f"expected one ValueError from the actor, got {errors!r}") from raised
    else:
        raise CycleFailed("the actor's error did not reach the nursery")


async def _path_hard_kill(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an, trio.open_nursery() as callers:
        portal = await _start(an)
        # The call is read (and starts spinning) before the stop that follows it: the actor
        # handles messages in order and runs sync functions right on its trio thread.
        await _call_in_background(callers, portal, spin)
        await portal.cancel_actor()


async def _path_ctx_cancel_parent(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an:
        portal = await _start(an)
        async with portal.open_context(sleeping_context) as (ctx, first):
            if first != "up":
                raise CycleFailed(f"context started with {first!r}")
            await ctx.cancel()
            if await ctx.wait_for_result() is not None:
                raise CycleFailed("a context we cancelled returned a value")
        if await portal.run(add, x=1, y=1) != 2:
            raise CycleFailed("the actor stopped serving after a cancelled context")


async def _path_ctx_cancel_actor(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an:
        portal = await _start(an)
        try:
            async with portal.open_context(self_cancelling_context) as (ctx, _):
                await ctx.wait_for_result()
        except subint_spawn.ContextCancelled:
            pass
        else:
            raise CycleFailed("the actor's own context cancel did not reach the parent")


async def _path_stream_closed_early(backend: str, config: str) -> None:
    async with _nursery(backend, config) as an:
        portal = await _start(an)
        async with portal.open_stream_from(count_forever) as stream:
            async for value in stream:
                if value == 10:
                    break
        if await portal.run(add, x=0, y=0) != 0:
            raise CycleFailed("the actor stopped serving after a stream closed early")


_RUNNERS: dict[str, Callable[[str, str], Awaitable[None]]] = {
    "exit": _path_exit,
    "cancel_actor": _path_cancel_actor,
    "an_cancel": _path_an_cancel,
    "scope_cancel": _path_scope_cancel,
    "actor_error": _path_actor_error,
    "hard_kill": _path_hard_kill,
    "ctx_cancel_parent": _path_ctx_cancel_parent,
    "ctx_cancel_actor": _path_ctx_cancel_actor,
    "stream_closed_early": _path_stream_closed_early,
}


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


# -- settings and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class SoakSettings:
    """How much to soak.

    ``kinds()`` pairs each backend with its configs (``trio`` has none).  ``warmup`` cycles
    come before the RSS baseline; ``None`` means a tenth of the run, at least one round of
    every path on every kind (when the run is that long).
    """

    cycles: int = 1000
    backends: tuple[str, ...] = ("subint",)
    configs: tuple[str, ...] = ("isolated", "legacy")
    paths: tuple[str, ...] = PATHS
    concurrency: int = 1
    cycle_timeout: float = 30.0
    warmup: int | None = None
    progress: bool = True

    def kinds(self) -> list[tuple[str, str]]:
        kinds: list[tuple[str, str]] = []
        for backend in self.backends:
            if backend == "subint":
                kinds.extend(("subint", config) for config in self.configs)
            else:
                kinds.append((backend, "isolated"))
        return kinds

    def warmup_cycles(self) -> int:
        if self.warmup is not None:
            return min(self.warmup, self.cycles)
        one_round = len(self.paths) * len(self.kinds())
        return min(self.cycles, max(self.cycles // 10, one_round))

    def plan(self, index: int) -> tuple[str, str, str]:
        """(path, backend, config) of cycle ``index``: the kinds take turns cycle by cycle, and
        each path runs once on every kind before the next path.  So any run of at least
        ``len(kinds())`` cycles reaches every backend/config pair (a short mixed run used to
        spend all its cycles on the first pair), and ``len(paths) * len(kinds())`` cycles run
        every path on every pair."""
        kinds = self.kinds()
        backend, config = kinds[index % len(kinds)]
        path = self.paths[(index // len(kinds)) % len(self.paths)]
        return path, backend, config


def kind_label(backend: str, config: str) -> str:
    return f"subint/{config}" if backend == "subint" else backend


@dataclass
class PathStats:
    cycles: int = 0
    failed: int = 0
    seconds: float = 0.0
    slowest: float = 0.0


@dataclass
class KindStats:
    cycles: int = 0
    measured_cycles: int = 0  # after the warm-up
    rss_change: int = 0  # bytes, summed over measured cycles


@dataclass
class SoakReport:
    settings: dict[str, Any]
    python: str
    cpus: int | None
    cycles: int = 0
    failed: int = 0
    seconds: float = 0.0
    paths: dict[str, PathStats] = field(default_factory=dict)
    kinds: dict[str, KindStats] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    abandoned: int = 0
    rss_start: int = 0
    rss_warm: int = 0
    rss_end: int = 0
    warmup_cycles: int = 0
    leaked_threads: int = 0
    leaked_interpreters: int = 0
    leaked_fds: int = 0
    leak_details: list[str] = field(default_factory=list)

    @property
    def leaked(self) -> bool:
        return bool(self.leak_details)

    @property
    def ok(self) -> bool:
        return not self.leaked and self.failed == 0

    def growth_per_100(self) -> float | None:
        """RSS growth in bytes per 100 cycles after the warm-up; ``None`` when no cycle ran
        after it (a rate over zero cycles would be a made-up number)."""
        measured = self.cycles - self.warmup_cycles
        return (self.rss_end - self.rss_warm) * 100 / measured if measured > 0 else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["leaked"] = self.leaked
        data["ok"] = self.ok
        data["rss_growth_per_100_cycles"] = self.growth_per_100()
        data["kinds"] = {
            label: {**asdict(stats), "rss_growth_per_100_cycles": _kind_growth(stats)}
            for label, stats in self.kinds.items()
        }
        return data


def _kind_growth(stats: KindStats) -> float | None:
    if stats.measured_cycles == 0:
        return None
    return stats.rss_change * 100 / stats.measured_cycles


def rss_bytes() -> int:
    """This process's resident set size (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError, ValueError, IndexError:
        return 0


def _settled_rss() -> int:
    gc.collect()
    return rss_bytes()


# -- running ----------------------------------------------------------------------------------


class _Soak:
    def __init__(self, settings: SoakSettings, report: SoakReport) -> None:
        self.settings = settings
        self.report = report
        self.next_index = 0
        self.done = 0
        self.warm = trio.Event()
        self.started_at = time.perf_counter()

    async def worker(self) -> None:
        while self.next_index < self.settings.cycles:
            index = self.next_index
            self.next_index += 1
            measured = index >= self.report.warmup_cycles
            if measured and not self.warm.is_set():
                await self.warm.wait()  # the RSS baseline is taken between the phases
            await self.cycle(index, measured)

    async def cycle(self, index: int, measured: bool) -> None:
        path, backend, config = self.settings.plan(index)
        label = kind_label(backend, config)
        rss_before = rss_bytes()
        began = time.perf_counter()
        error: str | None = None
        try:
            with trio.fail_after(self.settings.cycle_timeout):
                await _RUNNERS[path](backend, config)
        except trio.TooSlowError:
            error = f"ran past its {self.settings.cycle_timeout} s bound"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        took = time.perf_counter() - began
        self.record(index, path, label, took, error, rss_bytes() - rss_before, measured)

    def record(
        self,
        index: int,
        path: str,
        label: str,
        took: float,
        error: str | None,
        rss_change: int,
        measured: bool,
    ) -> None:
        stats = self.report.paths.setdefault(path, PathStats())
        stats.cycles += 1
        stats.seconds += took
        stats.slowest = max(stats.slowest, took)
        kind = self.report.kinds.setdefault(label, KindStats())
        kind.cycles += 1
        if measured and self.settings.concurrency == 1:  # overlapping cycles blur it
            kind.measured_cycles += 1
            kind.rss_change += rss_change
        self.report.cycles += 1
        if error is not None:
            stats.failed += 1
            self.report.failed += 1
            self.report.failures.append(f"cycle {index} ({path} on {label}): {error}")
        self.done += 1
        if self.done == self.report.warmup_cycles:
            self.report.rss_warm = _settled_rss()
            self.warm.set()
        self.progress()

    def progress(self) -> None:
        if not self.settings.progress:
            return
        every = max(1, self.settings.cycles // 20)
        if self.done % every and self.done != self.settings.cycles:
            return
        elapsed = time.perf_counter() - self.started_at
        print(
            f"[soak] {self.done}/{self.settings.cycles} cycles, {elapsed:.1f} s, "
            f"RSS {rss_bytes() / _MB:.1f} MB, failed {self.report.failed}",
            file=sys.stderr,
            flush=True,
        )


async def run_soak(settings: SoakSettings) -> SoakReport:
    """Run the soak in the current trio run and return its report (nothing printed but
    progress)."""
    from .._core._driver import drain_destroys
    from .._core._leaks import leaks_since, snapshot

    report = SoakReport(
        settings={**asdict(settings), "kinds": [kind_label(b, c) for b, c in settings.kinds()]},
        python=platform.python_version(),
        cpus=os.cpu_count(),
        warmup_cycles=settings.warmup_cycles(),
    )
    abandoned_before = subint_spawn.census().abandoned_total
    before = snapshot()
    report.rss_start = _settled_rss()
    soak = _Soak(settings, report)
    if report.warmup_cycles == 0:
        report.rss_warm = report.rss_start
        soak.warm.set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", subint_spawn.AbandonedInterpreterWarning)  # counted below
        async with trio.open_nursery() as workers:
            for _ in range(max(1, settings.concurrency)):
                workers.start_soon(soak.worker)
    report.seconds = time.perf_counter() - soak.started_at
    # Actors' interpreters are destroyed in the background; a leak is one never destroyed.
    await drain_destroys()
    report.rss_end = _settled_rss()
    report.abandoned = subint_spawn.census().abandoned_total - abandoned_before
    # Blocking, not in a worker thread: a busy worker would count as a leaked thread itself.
    report.leak_details = leaks_since(before, LEAK_SETTLE)
    after = snapshot()
    report.leaked_threads = (
        max(0, after.os_threads - before.os_threads) if report.leak_details else 0
    )
    report.leaked_interpreters = len(after.interpreters - before.interpreters)
    report.leaked_fds = len(after.fds - before.fds)
    return report


# -- output -------------------------------------------------------------------------------------


def render(report: SoakReport) -> str:
    settings = report.settings
    heading = (
        f"subint_spawn soak: {report.cycles} cycles on {', '.join(settings['kinds'])}, "
        f"concurrency {settings['concurrency']}; Python {report.python}, {report.cpus} CPUs"
    )
    lines = [
        heading,
        "",
        f"{'path':<22}{'cycles':>8}{'failed':>8}{'mean ms':>10}{'max ms':>10}",
    ]
    for path in settings["paths"]:
        stats = report.paths.get(path, PathStats())
        mean = stats.seconds / stats.cycles * 1e3 if stats.cycles else 0.0
        lines.append(
            f"{path:<22}{stats.cycles:>8}{stats.failed:>8}{mean:>10.1f}{stats.slowest * 1e3:>10.1f}"
        )
    lines.append(f"{'total':<22}{report.cycles:>8}{report.failed:>8}   in {report.seconds:.1f} s")
    lines.append("")
    leaks = (
        f"threads +{report.leaked_threads}, interpreters +{report.leaked_interpreters}, "
        f"fds +{report.leaked_fds}"
    )
    lines.append(f"leaks: {'NONE' if not report.leaked else 'YES'} ({leaks})")
    lines.extend(f"  {detail}" for detail in report.leak_details)
    lines.append(f"abandoned interpreters: {report.abandoned}")
    growth = report.growth_per_100()
    if growth is None:
        growth_text = (
            f"growth n/a: all {report.cycles} cycles were warm-up (run more than "
            f"{report.warmup_cycles} cycles to measure it)"
        )
    else:
        growth_text = f"growth {growth / _MB:+.2f} MB per 100 cycles after the warm-up"
    lines.append(
        f"RSS: start {report.rss_start / _MB:.1f} MB, after {report.warmup_cycles} warm-up cycles "
        f"{report.rss_warm / _MB:.1f} MB, end {report.rss_end / _MB:.1f} MB; {growth_text}"
    )
    for label in settings["kinds"]:
        kind = report.kinds.get(label, KindStats())
        kind_growth = _kind_growth(kind)
        if kind.cycles == 0:
            text = "none ran: raise --cycles"
        elif kind_growth is None:
            text = "n/a (no cycles after the warm-up)"
        else:
            text = f"{kind_growth / _MB:+.2f} MB per 100 of its cycles"
        lines.append(f"  {label:<16} {kind.cycles:>6} cycles  {text}")
    if report.failures:
        lines.append("")
        lines.append(f"failures ({len(report.failures)}):")
        lines.extend(f"  {failure}" for failure in report.failures[:20])
        if len(report.failures) > 20:
            lines.append(f"  ... and {len(report.failures) - 20} more")
    return "\n".join(lines)


def main(settings: SoakSettings, *, as_json: bool = False) -> int:
    """Run the soak, print the report; exit status 1 on a leak or a failed cycle."""
    report = trio.run(run_soak, settings)
    print(json.dumps(report.to_json(), indent=2) if as_json else render(report))
    return 0 if report.ok else 1
