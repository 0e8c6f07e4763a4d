"""The bench's table (printed row by row) and its JSON."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from typing import Any

from ._model import DIGITS, TARGETS, BenchSettings, Result, metric_titles

__all__ = ["census_line", "format_table", "row_line", "table_head", "table_tail", "to_json"]


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
    return f"{value:.{DIGITS.get(unit, 1)}f} {unit}"


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
    return (
        f"{title} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {s['n']:>4}   {target:<14} {verdict}"
    )


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
        lines.append(
            f"FAILED rows ({len(failed)}): {', '.join(failed)}; the other rows are complete."
        )
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
