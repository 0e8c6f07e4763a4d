"""Instructions per round trip on each side, counted by valgrind: repeatable under any load.

    .venv/bin/python scripts/callgrind_percall.py [--backend subint] [--config isolated]
                                                   [--modes run,floor] [--n 200,1200]

Runs a small workload under ``valgrind --tool=callgrind --separate-threads=yes`` twice, with
``n1`` and ``n2`` round trips, and reports (instructions(n2) - instructions(n1)) / (n2 - n1)
for the parent's thread and for the actor's (the other thread that grew): the setup cancels
out.  ``run`` is ``portal.run`` of a no-op; ``floor`` is the bench's bare socket echo between
the same two interpreters.  Wall time under valgrind means nothing; the counts are the point.
Each run takes a few tens of seconds.  The parent link's retake delay is scaled by the
slowdown (see the workload).  (The trio backend's actor is another process, which
callgrind follows with ``--trace-children``; only subint is supported here.)
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

WORKLOAD = r"""
import os, socket, sys, trio, subint_spawn
from subint_spawn._cli import _workloads

# Time runs ~100x slower under callgrind: scale the link's retake delay (a wall-clock
# heuristic, see ActorLink) alike, or it would fire on every call here and never in real runs.
import subint_spawn._core._portal as _portal
if hasattr(_portal, "_RETAKE_AFTER"):
    _portal._RETAKE_AFTER *= 100

async def main(mode, n, backend, config):
    async with subint_spawn.open_nursery(backend=backend, config=config) as an:
        portal = await an.start_actor("cg", enable_modules=[_workloads.__name__])
        for _ in range(50):
            await portal.run(_workloads.noop)
        if mode == "run":
            for _ in range(n):
                await portal.run(_workloads.noop)
        else:
            address = f"\0subint-spawn-cg-{os.getpid()}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                listener.bind(address)
                listener.listen(1)
                listener.setblocking(False)
                async with trio.open_nursery() as nursery:
                    async def echo():
                        await portal.run(_workloads.bare_echo, address=address, count=n)
                    nursery.start_soon(echo)
                    await trio.lowlevel.wait_readable(listener)
                    sock, _ = listener.accept()
                    with sock:
                        sock.setblocking(False)
                        for _ in range(n):
                            sock.send(b"x")
                            await trio.lowlevel.wait_readable(sock)
                            sock.recv(64)
        await portal.cancel_actor()

trio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
"""


def totals(mode: str, n: int, backend: str, config: str) -> dict[int, int]:
    """Instructions per thread (callgrind's thread number) for one run."""
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "workload.py")
        with open(script, "w") as f:
            f.write(WORKLOAD)
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--separate-threads=yes",
                f"--callgrind-out-file={out}",
                sys.executable,
                script,
                mode,
                str(n),
                backend,
                config,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result = {}
        for path in glob.glob(out + "-*"):
            with open(path) as f:
                text = f.read()
            thread = int(re.search(r"^thread: (\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
            result[thread] = int(re.search(r"^totals: (\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
        if not result:
            raise RuntimeError("callgrind wrote no per-thread counts")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="subint")
    parser.add_argument("--config", default="isolated")
    parser.add_argument("--modes", default="run,floor")
    parser.add_argument("--n", default="200,1200")
    args = parser.parse_args()
    n1, n2 = (int(x) for x in args.n.split(","))
    for mode in args.modes.split(","):
        low, high = (
            totals(mode, n1, args.backend, args.config),
            totals(mode, n2, args.backend, args.config),
        )
        grown = {t: (high.get(t, 0) - low.get(t, 0)) / (n2 - n1) for t in high}
        parent = grown.pop(1)
        actor = max(grown.values())
        print(
            f"{args.backend}/{args.config} {mode:<5}  instructions per round trip: "
            f"parent {parent / 1e3:7.1f}k  actor {actor / 1e3:7.1f}k  total {(parent + actor) / 1e3:7.1f}k"
        )


if __name__ == "__main__":
    main()
