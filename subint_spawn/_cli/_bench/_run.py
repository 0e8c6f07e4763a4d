"""Running the bench: each backend/config pair in turn, each metric guarded and reported."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Awaitable, Callable

import subint_spawn

from . import _samples as samples
from ._model import ISOLATED, SCALE, BenchSettings, Metric, Result, metric_titles

__all__ = ["OnRow", "bench_combo", "combos", "measure", "no_rows", "progress"]


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def combos(settings: BenchSettings) -> list[tuple[str, str | None]]:
    """subint once per config; trio has no interpreter config, so it runs once."""
    combos: list[tuple[str, str | None]] = []
    for backend in settings.backends:
        if backend == "subint":
            combos.extend(("subint", config) for config in settings.configs)
        else:
            combos.append((backend, None))
    return combos


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
    progress(f"{label}: {what} x{count}")
    if warm_up:
        await once()
    for _ in range(count):
        metric.samples.append(await once() * SCALE[metric.unit])


#: Told about each row as soon as it is measured (or has failed, or was skipped), and about
#: each backend/config pair once it is done: ``(result, metric name)``, ``(result, None)``.
OnRow = Callable[[Result, str | None], None]


def no_rows(result: Result, name: str | None) -> None:
    del result, name


def _reason(error: BaseException) -> str:
    """One line on why a measurement failed: the innermost error of a group, type and text."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text and text[0] else type(error).__name__


async def measure(
    result: Result, names: tuple[str, ...], work: Callable[[], Awaitable[object]], on_row: OnRow
) -> None:
    """Run ``work``, which fills ``result.metrics[name]`` for ``names``, then report those rows.

    An ``Exception`` from it fails only these rows, each saying why, and the bench goes on:
    minutes of measurements are never lost to one late error.  (Cancellation and
    ``KeyboardInterrupt`` still end the bench; rows already reported stay printed.)
    """
    try:
        await work()
    except Exception as exc:
        reason = _reason(exc)
        progress(f"{result.label}: {', '.join(names)} failed: {reason}")
        for name in names:
            result.metrics[name].error = reason
    for name in names:
        on_row(result, name)


async def bench_combo(
    backend: str, config: str | None, settings: BenchSettings, on_row: OnRow = no_rows
) -> Result:
    result = Result(backend, config)
    label = result.label
    subint = backend == "subint"
    titles = metric_titles(settings)
    heavy = settings.heavy_repeat if label in ISOLATED else settings.comparison_repeat

    def metric(name: str, unit: str) -> Metric:
        made = result.metrics[name] = Metric(unit)
        return made

    async def repeated(
        name: str,
        unit: str,
        count: int,
        once: Callable[[], Awaitable[float]],
        *,
        warm_up: bool = True,
    ) -> Metric:
        """A row of ``count`` samples of ``once()`` (seconds), reported once measured."""
        made = metric(name, unit)
        await measure(
            result,
            (name,),
            lambda: _repeat(label, titles[name], count, once, made, warm_up=warm_up),
            on_row,
        )
        return made

    # Memory first, while the process is fresh: legacy interpreters allocate from the main
    # allocator, which keeps freed arenas around for reuse.
    await repeated(
        "memory",
        "MB",
        1,
        lambda: samples.memory(backend, config, settings.idle_actors, result),
        warm_up=False,
    )

    await repeated(
        "spawn",
        "ms",
        settings.repeat,
        lambda: samples.spawn_once(backend, config),
    )

    start_cpu = await repeated(
        "start_cpu",
        "ms",
        settings.repeat,
        lambda: samples.start_cpu_once(backend, config),
    )

    if subint:
        first = metric("warm_first", "ms")
        whole = metric("warm_teardown", "ms")

        async def warm_spawns() -> None:
            progress(f"{label}: warm spawn x{settings.repeat}")
            try:
                await samples.warm_spawn_once(backend, config)
                for _ in range(settings.repeat):
                    to_first, to_end = await samples.warm_spawn_once(backend, config)
                    first.samples.append(to_first * 1e3)
                    whole.samples.append(to_end * 1e3)
            finally:
                await subint_spawn.prewarm(0, config)  # type: ignore[arg-type]

        await measure(result, ("warm_first", "warm_teardown"), warm_spawns, on_row)

    roundtrip = metric("roundtrip", "us")
    floor = metric("roundtrip_floor", "us")
    ratio = metric("roundtrip_ratio", "x")

    async def measure_roundtrips() -> None:
        progress(
            f"{label}: round trip and its floor, {settings.batches} batches of {settings.batch_size}"
        )
        calls, bare = await samples.roundtrips(backend, config, settings)
        roundtrip.samples = [s * 1e6 for s in calls]
        floor.samples = [s * 1e6 for s in bare]
        ratio.samples = [call / under for call, under in zip(calls, bare, strict=True)]

    await measure(
        result, ("roundtrip_floor", "roundtrip", "roundtrip_ratio"), measure_roundtrips, on_row
    )

    stream = metric("stream", "k/s")
    echo = metric("echo", "us")

    async def measure_streams() -> None:
        progress(f"{label}: stream one way x{settings.repeat}, echo x{settings.repeat}")
        stream.samples, echo.samples = await samples.streams(backend, config, settings)

    await measure(result, ("stream", "echo"), measure_streams, on_row)

    reclaim = metric("reclaim", "ms")

    async def reclaims() -> None:
        signal = await samples.SpinSignal.open()
        try:
            await _repeat(
                label,
                "stuck-actor reclaim",
                settings.repeat,
                lambda: samples.reclaim_once(backend, config, signal, result),
                reclaim,
            )
        finally:
            await signal.aclose()

    await measure(result, ("reclaim",), reclaims, on_row)

    async def cold_starts(name: str, n: int, repeat: int) -> None:
        """N cold actors started at once, beside what their CPU alone allows: N starts' CPU
        spread over every CPU, with a quarter more for the parent's share and the scheduling
        (issue 14's bound), from the one-start CPU measured earlier in this run."""
        cold = metric(name, "s")
        bound = metric(f"{name}_bound", "s")
        ratio = metric(f"{name}_ratio", "x")

        async def work() -> None:
            await _repeat(
                label,
                titles[name],
                repeat,
                lambda: samples.start_many(backend, config, n, False, result),
                cold,
                warm_up=False,
            )
            if not start_cpu.measured:
                raise RuntimeError("no one-start CPU to compare with (its row failed)")
            one = statistics.median(start_cpu.samples) / SCALE[start_cpu.unit]
            limit = 1.25 * n * one / (os.cpu_count() or 1)
            bound.samples = [limit]
            ratio.samples = [sample / limit for sample in cold.samples]

        await measure(result, (name, f"{name}_bound", f"{name}_ratio"), work, on_row)

    await cold_starts("start_cold", settings.concurrent, heavy)
    if label in ISOLATED:
        await cold_starts("start_large", settings.concurrent_large, settings.comparison_repeat)
        await repeated(
            "memory_large",
            "MB",
            1,
            lambda: samples.memory(backend, config, settings.concurrent_large, result),
            warm_up=False,
        )
    n = settings.concurrent
    if subint:
        await repeated(
            "start_warm",
            "s",
            heavy,
            lambda: samples.start_many(backend, config, n, True, result),
            warm_up=False,
        )

    parallel = metric("parallel", "x")
    others = metric("parallel_others", "CPUs")

    async def scaling() -> None:
        progress(f"{label}: {titles['parallel']} x{settings.cpu_repeat}")
        parallel.samples = await samples.parallel(backend, config, settings, others)

    await measure(result, ("parallel", "parallel_others"), scaling, on_row)

    await repeated(
        "latency_boot",
        "ms",
        heavy,
        lambda: samples.latency_boot(backend, config, settings.booting, result),
        warm_up=False,
    )
    if subint:
        assert config is not None
        await repeated(
            "latency_fill",
            "ms",
            heavy,
            lambda: samples.latency_fill(config, settings.booting, result),
            warm_up=False,
        )
    on_row(result, None)
    return result
