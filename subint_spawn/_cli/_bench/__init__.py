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

The modules: :mod:`._model` (settings, targets, results), :mod:`._samples` (one timed sample
of each metric), :mod:`._proc` (``/proc`` accounting), :mod:`._run` (pairs in turn, each
metric guarded), :mod:`._compare` (dev-only comparisons), :mod:`._report` (table and JSON);
``python -m subint_spawn._cli._bench memory ...`` is the fresh-process memory probe.
"""

from __future__ import annotations

import json
import time

import trio

from ._compare import comparisons
from ._model import SIGNAL_TIMEOUT, BenchSettings, Result
from ._proc import CpuMeter
from ._report import census_line, row_line, table_head, table_tail, to_json
from ._run import OnRow, bench_combo, combos, no_rows
from ._samples import SpinSignal
from ._tractor_rows import tractor_rows

__all__ = ["SIGNAL_TIMEOUT", "BenchSettings", "SpinSignal", "main", "run_bench"]


async def run_bench(settings: BenchSettings, on_row: OnRow = no_rows) -> list[Result]:
    """Measure every backend/config pair in turn (never concurrently: they would compete),
    then the dev-only comparisons (last: anyio keeps its interpreters until exit).

    ``on_row`` hears of each row as soon as it is measured, so a caller can print it then.
    """
    results = [await bench_combo(b, c, settings, on_row) for b, c in combos(settings)]
    if settings.comparisons and "subint" in settings.backends:
        results += await comparisons(settings, on_row)
        results += await tractor_rows(settings, on_row)  # last: it imports tractor
    return results


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
    results = trio.run(run_bench, settings, no_rows if as_json else print_row)
    elapsed = time.perf_counter() - start
    others = meter.others()
    if as_json:
        print(json.dumps(to_json(results, settings, elapsed, others), indent=2))
    else:
        print("\n".join(table_tail(results, elapsed, others)))
    failed = any(r.census_failures or r.failed for r in results)
    return 1 if failed else 0
