"""What the bench reads from ``/proc``: CPU used by other processes, RSS of us and our children."""

from __future__ import annotations

import os
import time

__all__ = ["CpuMeter", "children_rss", "rss"]


class CpuMeter:
    """How many CPUs *other* processes kept busy since it was made (Linux ``/proc``).

    The machine the bench runs on may be shared; a scaling ratio measured while something else
    held a core says little about the runtime, so the bench reports this next to it.  Ours =
    this process (every thread, so every subinterpreter) plus its children, live or reaped.
    """

    def __init__(self) -> None:
        self._start = (time.perf_counter(), *self._now())

    @staticmethod
    def _now() -> tuple[float, float]:
        try:
            with open("/proc/stat") as stat:
                ticks = [int(v) for v in stat.readline().split()[1:9]]
        except OSError, ValueError:
            return 0.0, 0.0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
        times = os.times()
        ours = times.user + times.system + times.children_user + times.children_system
        return busy, ours + live_children_cpu() / hz

    def others(self) -> float:
        """Average CPUs used by other processes since construction."""
        start, busy0, ours0 = self._start
        busy1, ours1 = self._now()
        elapsed = time.perf_counter() - start
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / elapsed if elapsed > 0 else 0.0


def live_children_cpu() -> int:
    """Clock ticks of CPU used so far by this process's live children (utime + stime)."""
    total = 0
    for fields in children_stat():
        total += int(fields[11]) + int(fields[12])
    return total


def children_stat() -> list[list[str]]:
    """The ``/proc/PID/stat`` fields after the command name, of each direct child."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # ppid
            found.append([entry, *fields])
    return [f[1:] for f in found]


def rss(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError, ValueError, IndexError:
        return 0


def children_rss() -> int:
    """RSS of this process's direct children (the trio backend's actors)."""
    return sum(int(fields[21]) for fields in children_stat()) * os.sysconf("SC_PAGE_SIZE")
