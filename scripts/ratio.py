"""The bench's round-trip rows alone, several runs: ``portal.run`` against its floor.

    .venv/bin/python scripts/ratio.py [runs] [backend/config ...]

Runs the bench's own sampling (``_samples.roundtrips``: interleaved batches of the bare
socket floor and ``portal.run`` of a no-op, between the same two interpreters) ``runs``
times, and prints per run the medians and the same-run ratio, then the median ratio.  A
quicker loop than the whole bench while working on the per-call path; claims quote the bench.
"""

from __future__ import annotations

import statistics
import sys

import trio

from subint_spawn._cli._bench._model import BenchSettings
from subint_spawn._cli._bench._samples import roundtrips


async def main(runs: int, targets: list[str]) -> None:
    settings = BenchSettings(batches=20, batch_size=200)
    for target in targets:
        backend, _, config = target.partition("/")
        ratios = []
        for _ in range(runs):
            calls, floor = await roundtrips(backend, config or None, settings)
            call, bare = statistics.median(calls) * 1e6, statistics.median(floor) * 1e6
            ratio = statistics.median(c / f for c, f in zip(calls, floor))
            ratios.append(ratio)
            print(
                f"{target:<16} floor {bare:6.1f} us   portal.run {call:6.1f} us   ratio {ratio:4.2f}"
            )
        print(f"{target:<16} median ratio over {runs} runs: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    trio.run(main, runs, sys.argv[2:] or ["subint/isolated"])
