"""``python -m subint_spawn bench`` never loses what it measured: an optional comparison
whose library is missing is skipped with a note, a measurement that fails becomes a row that
says why, and every other row is still measured and printed.  (Speed itself is the bench's
business, not the tests'.)"""

from __future__ import annotations

import dataclasses
import sys

import pytest

from subint_spawn._cli import _bench
from subint_spawn._cli._bench import _samples

#: As small as the bench goes: this checks the bench's bookkeeping, not speed.
TINY = dataclasses.replace(
    _bench.BenchSettings.quick(("subint",), ("isolated",)),
    repeat=1,
    batches=2,
    batch_size=10,
    stream_items=100,
    echo_items=10,
    concurrent=2,
    concurrent_large=3,
    idle_actors=1,
    booting=2,
    cpu_repeat=1,
    cpu_limit=5_000,
)


@pytest.mark.timeout(120)
def test_a_plain_install_and_a_failing_row_lose_no_results(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "anyio", None)  # as without the dev extra: import fails

    async def broken_streams(*args: object) -> object:
        raise RuntimeError("stream measurement broke")

    monkeypatch.setattr(_samples, "streams", broken_streams)
    status = _bench.main(TINY)
    lines = capsys.readouterr().out.splitlines()

    def row(label: str, title: str) -> str:
        (found,) = [line for line in lines if line.startswith(label + " ") and title in line]
        return found

    assert status == 1  # a failed row fails the run, after printing everything else
    assert "FAILED: RuntimeError: stream measurement broke" in row(
        "subint/isolated", "stream one way"
    )
    assert "FAILED: RuntimeError: stream measurement broke" in row("subint/isolated", "stream echo")
    # Rows measured before and after the broken one are all there, with numbers.
    for before_and_after in (
        "spawn->result->teardown",
        "stuck-actor reclaim",
        "2 booting",
        "prewarm(2)",
    ):
        assert " ms " in row("subint/isolated", before_and_after)
    # N cold starts beside their CPU bound, at both N (the large one on isolated only).
    assert " ms " in row("subint/isolated", "one cold start's CPU")
    for n in (2, 3):
        assert " s " in row("subint/isolated", f"bound: 1.25 x {n} x CPU / CPUs")
    assert len([line for line in lines if "started / bound" in line]) == 2
    assert " MB " in row("subint/isolated", "RSS per idle actor (N=3)")
    # tractor actors through each method: numbers when tractor is installed, else why not.
    for method in ("trio method", "its own subint", "ours, cold", "ours, warm"):
        tractor_row = row(f"dev/tractor: {method}", "spawn->first result")
        assert " ms " in tractor_row or "skipped: tractor is not importable" in tractor_row
    assert "skipped: anyio is not installed" in row("dev/anyio.to_interpreter", "per-call")
    assert " us " in row("dev/InterpreterPoolExecutor", "per-call")
    assert "0 interpreters alive" in next(line for line in lines if "census checks" in line)
    assert any(line.startswith("FAILED rows (2): subint/isolated stream") for line in lines)
