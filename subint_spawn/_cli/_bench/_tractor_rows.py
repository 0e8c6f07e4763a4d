"""Optional rows: tractor actors through each spawn method, spawn -> first result -> teardown.

tractor's own ``trio`` method (a process per actor), tractor's own ``subint`` method, and
subint_spawn's method for tractor (:mod:`subint_spawn.tractor`), cold and from a warm pool, in
one trio run, rounds alternating between the methods so all see the same load.  Skipped with
a note when tractor is not installed (it is not on PyPI for 3.14; ``make tractor`` installs the
pinned commit).  tractor's own method is put back afterwards.
"""

from __future__ import annotations

import socket
import time

from .. import _workloads
from ._model import BenchSettings, Metric, Result
from ._run import OnRow, measure, no_rows, progress

__all__ = ["tractor_rows"]

#: label -> (tractor start_method, whether subint_spawn's method is installed, warm)
_METHODS: dict[str, tuple[str, bool, bool]] = {
    "tractor: trio method": ("trio", False, False),
    "tractor: its own subint": ("subint", False, False),
    "tractor: ours, cold": ("subint", True, False),
    "tractor: ours, warm": ("subint", True, True),
}


def _free_address() -> tuple[str, int]:
    """A registrar address of its own per round: no round finds another's registrar."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return ("127.0.0.1", probe.getsockname()[1])


async def _round(start_method: str, warm: bool) -> tuple[float, float]:
    """Seconds to the first result, and from it to the end of the nursery's block."""
    import tractor

    import subint_spawn.tractor as ours

    if ours.installed():
        await ours.prewarm(1 if warm else 0)  # not timed: fill or empty this run's pool
    start = time.perf_counter()
    async with tractor.open_nursery(
        start_method=start_method, registry_addrs=[_free_address()]
    ) as an:
        portal = await an.run_in_actor(_workloads.double, x=21, name="bench")
        if await portal.wait_for_result() != 42:
            raise RuntimeError("the tractor actor returned a wrong result")
        first = time.perf_counter()
    return first - start, time.perf_counter() - first


def _why_skipped() -> str | None:
    try:
        import subint_spawn.tractor as ours

        ours.install()
        ours.uninstall()
    except ImportError as exc:
        return f"tractor is not importable ({exc}); make tractor installs it"
    except Exception as exc:  # TractorNotSupported: another tractor than the supported one
        return str(exc).splitlines()[0]
    return None


async def tractor_rows(settings: BenchSettings, on_row: OnRow = no_rows) -> list[Result]:
    """One result per method, rows ``tractor_first`` and ``tractor_teardown`` (ms)."""
    results: dict[str, Result] = {}
    for label in _METHODS:
        result = results[label] = Result("dev", label)
        result.metrics["tractor_first"] = Metric("ms")
        result.metrics["tractor_teardown"] = Metric("ms")
    skipped = _why_skipped()
    if skipped is not None:
        progress(f"dev: tractor rows skipped ({skipped})")
        for result in results.values():
            for name, metric in result.metrics.items():
                metric.skipped = skipped
                on_row(result, name)
        return list(results.values())

    import subint_spawn.tractor as ours

    async def rounds() -> None:
        progress(f"dev: tractor, {settings.tractor_rounds} rounds of {len(_METHODS)} methods")
        try:
            for _ in range(settings.tractor_rounds):
                for label, (start_method, install, warm) in _METHODS.items():
                    if install:
                        ours.install()
                    else:
                        ours.uninstall()
                    first, teardown = await _round(start_method, warm)
                    results[label].metrics["tractor_first"].samples.append(first * 1e3)
                    results[label].metrics["tractor_teardown"].samples.append(teardown * 1e3)
            await ours.prewarm(0)
        finally:
            ours.uninstall()

    # One measurement for all four (they alternate): a failure fails every tractor row.
    names = ("tractor_first", "tractor_teardown")
    first_result = next(iter(results.values()))
    await measure(first_result, names, rounds, no_rows)
    for result in results.values():
        for name in names:
            if first_result.metrics[name].error is not None:
                result.metrics[name].error = first_result.metrics[name].error
            on_row(result, name)
    return list(results.values())
