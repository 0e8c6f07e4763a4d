"""Dev-only comparisons: other ways to run code in a subinterpreter, per call."""

from __future__ import annotations

import time

import trio

from .. import _workloads
from ._model import BenchSettings, Metric, Result
from ._run import OnRow, measure, no_rows, progress

__all__ = ["comparisons"]


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


async def comparisons(settings: BenchSettings, on_row: OnRow = no_rows) -> list[Result]:
    """Per-call latency of other ways to run code in a subinterpreter, each on its own row.

    The anyio one is optional: without anyio its row says how to get it, and nothing fails.
    """
    results = []
    anyio_result = Result("dev", "anyio.to_interpreter")
    anyio_metric = anyio_result.metrics["per_call"] = Metric("us")
    results.append(anyio_result)
    if _missing("anyio.to_interpreter"):
        anyio_metric.skipped = _NO_ANYIO
        progress(f"dev: anyio.to_interpreter skipped ({anyio_metric.skipped})")
        on_row(anyio_result, "per_call")
    else:

        async def anyio_calls() -> None:
            progress(
                f"dev: anyio.to_interpreter.run_sync, {settings.batches} batches of {settings.batch_size}"
            )
            anyio_metric.samples = [s * 1e6 for s in await _anyio_per_call(settings)]

        await measure(anyio_result, ("per_call",), anyio_calls, on_row)

    executor_result = Result("dev", "InterpreterPoolExecutor")
    executor_metric = executor_result.metrics["per_call"] = Metric("us")
    results.append(executor_result)

    async def executor_calls() -> None:
        progress(
            f"dev: InterpreterPoolExecutor, {settings.batches} batches of {settings.batch_size}"
        )
        # Blocking submit/result calls: on a worker thread, which only waits (the executor runs
        # the interpreter on threads of its own).
        samples = await trio.to_thread.run_sync(_executor_per_call, settings)
        executor_metric.samples = [s * 1e6 for s in samples]

    await measure(executor_result, ("per_call",), executor_calls, on_row)
    return results
