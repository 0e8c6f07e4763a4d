"""The soak command, in miniature: every path on both configs, and nothing left behind."""

from __future__ import annotations

import json

import pytest
import trio

from subint_spawn.__main__ import main as cli_main
from subint_spawn._cli import _soak


@pytest.mark.timeout(120)
async def test_twenty_cycles_cover_every_path_and_leak_nothing() -> None:
    settings = _soak.SoakSettings(cycles=20, configs=("isolated", "legacy"), progress=False)
    with trio.fail_after(100):
        report = await _soak.run_soak(settings)
    assert report.failures == []
    assert report.cycles == 20
    assert set(report.paths) == set(_soak.PATHS)  # 9 paths: each ran at least twice
    assert set(report.kinds) == {"subint/isolated", "subint/legacy"}
    assert not report.leaked, report.leak_details
    assert report.ok
    assert report.abandoned == 0
    assert report.rss_start > 0 and report.rss_end > 0
    assert "leaks: NONE" in _soak.render(report)


def test_a_leak_or_a_failed_cycle_fails_the_report() -> None:
    report = _soak.SoakReport(settings={}, python="3.14", cpus=2)
    assert report.ok
    report.leak_details = ["1 OS thread(s) leaked"]
    assert not report.ok
    report.leak_details = []
    report.failed = 1
    assert not report.ok


def test_a_short_mixed_soak_reaches_every_backend() -> None:
    settings = _soak.SoakSettings(
        cycles=3, backends=("subint", "trio"), configs=("isolated", "legacy")
    )
    assert [settings.plan(i)[1:] for i in range(3)] == settings.kinds()


def test_no_growth_figure_over_zero_measured_cycles() -> None:
    report = _soak.SoakReport(
        settings={
            "kinds": ["subint/isolated", "trio"],
            "concurrency": 1,
            "paths": list(_soak.PATHS),
        },
        python="3.14",
        cpus=2,
        cycles=5,
        warmup_cycles=5,
    )
    report.kinds["subint/isolated"] = _soak.KindStats(cycles=5)
    assert report.growth_per_100() is None
    text = _soak.render(report)
    assert "growth n/a: all 5 cycles were warm-up" in text
    assert "+0.00" not in text
    assert "trio                  0 cycles  none ran: raise --cycles" in text
    assert report.to_json()["rss_growth_per_100_cycles"] is None


def test_plan_rotates_paths_then_kinds() -> None:
    settings = _soak.SoakSettings(
        cycles=40, backends=("subint", "trio"), configs=("isolated", "legacy")
    )
    assert settings.kinds() == [("subint", "isolated"), ("subint", "legacy"), ("trio", "isolated")]
    plans = [settings.plan(i) for i in range(len(_soak.PATHS) * 3)]
    assert {(path, backend, config) for path, backend, config in plans} == {
        (path, backend, config) for path in _soak.PATHS for backend, config in settings.kinds()
    }


@pytest.mark.timeout(120)
def test_cli_runs_a_short_soak_and_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli_main(["soak", "--cycles", "3", "--configs", "isolated", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0, report
    assert report["cycles"] == 3 and report["ok"] and not report["leaked"]
    assert report["kinds"]["subint/isolated"]["cycles"] == 3
