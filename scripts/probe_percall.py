"""Per-round-trip cost of ``portal.run`` on each side: CPU, Python calls, scheduler passes.

    .venv/bin/python scripts/probe_percall.py [--backend subint] [--config isolated] [-n 2000]

Deterministic counts guide the work on a noisy machine; the bench's same-run ratio row is
what a speed claim quotes.  For each side (the parent's trio thread, the actor's trio
thread) this reports, per round trip of ``portal.run(noop)``:

* ``py calls``: Python function calls (``sys.setprofile`` "call" events),
* ``c calls``: calls into C functions (builtins, methods of C types),
* ``polls``: ``epoll.poll`` calls, i.e. trio scheduler passes that reached the I/O manager,
* ``cpu us``: that thread's CPU, user + system (``getrusage(RUSAGE_THREAD)``, measured
  without the profiler; the batch with the least CPU, since noise only adds).

The floor row does the same for the bench's bare socket echo (one byte there and back, with
``trio.lowlevel.wait_readable`` only).  Not part of the package: a tool for the speed work.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import trio

import subint_spawn

_counts: collections.Counter[str] = collections.Counter()
_callers: collections.Counter[str] = collections.Counter()


def noop() -> None:
    pass


def _profiler(detail: bool) -> Callable[..., None]:
    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            _counts["py"] += 1
            if detail:
                code = frame.f_code
                _callers[f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_qualname}"] += 1
        elif event == "c_call":
            _counts["c"] += 1
            if getattr(arg, "__qualname__", "") == "epoll.poll":
                _counts["poll"] += 1
            if detail:
                _callers[f"C {getattr(arg, '__qualname__', arg)}"] += 1

    return profile


def profile_start(detail: bool = False) -> None:
    """Count calls on this thread from now (runs in the actor's trio thread, inline)."""
    _counts.clear()
    _callers.clear()
    sys.setprofile(_profiler(detail))


def profile_stop() -> tuple[dict[str, int], list[tuple[str, int]]]:
    sys.setprofile(None)
    return dict(_counts), _callers.most_common(200)


def _opcode_tracer(frame: Any, event: str, arg: Any) -> Any:
    frame.f_trace_opcodes = True
    if event == "opcode":
        code = frame.f_code
        _callers[f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_qualname}"] += 1
        _counts["op"] += 1
    return _opcode_tracer


def opcodes_start() -> None:
    """Count bytecodes executed on this thread from now, per function."""
    _counts.clear()
    _callers.clear()
    sys.settrace(_opcode_tracer)


def opcodes_stop() -> tuple[dict[str, int], list[tuple[str, int]]]:
    sys.settrace(None)
    return dict(_counts), _callers.most_common(200)


def thread_cpu() -> tuple[float, float]:
    """(user, system) CPU seconds of this thread."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime


async def bare_echo(address: str, n: int, batches: int) -> dict[str, Any]:
    """The floor's actor side: warm-up, ``batches`` timed runs of ``n``, one profiled run."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(address)
        sock.setblocking(False)

        async def rounds() -> None:
            for _ in range(n):
                await trio.lowlevel.wait_readable(sock)
                sock.send(sock.recv(64))

        await rounds()
        cpu = []
        for _ in range(batches):
            t0 = thread_cpu()
            await rounds()
            cpu.append(_per_call(t0, thread_cpu(), n))
        profile_start()
        await rounds()
        counts = profile_stop()[0]
    return {"cpu": _best(cpu), "counts": counts}


def _per_call(
    before: tuple[float, float], after: tuple[float, float], n: int
) -> tuple[float, float]:
    """(user, system) microseconds per round trip."""
    return ((after[0] - before[0]) / n * 1e6, (after[1] - before[1]) / n * 1e6)


def _best(samples: list[tuple[float, float]]) -> tuple[float, float]:
    """The batch with the least total CPU: noise (other load, page faults) only adds."""
    return min(samples, key=sum)


def _show(label: str, counts: dict[str, int], n: int, cpu: tuple[float, float]) -> None:
    user, system = cpu
    print(
        f"{label:<20} py calls {counts.get('py', 0) / n:6.1f}  c calls {counts.get('c', 0) / n:6.1f}"
        f"  polls {counts.get('poll', 0) / n:4.2f}"
        f"  cpu us {user + system:5.1f} = user {user:5.1f} + sys {system:5.1f}"
    )


async def main(args: argparse.Namespace) -> None:
    n = args.n
    async with subint_spawn.open_nursery(backend=args.backend, config=args.config) as an:
        portal = await an.start_actor("probe")
        for _ in range(200):
            await portal.run(noop)
        if args.no_gc:
            import gc

            gc.disable()
            await portal.run(gc.disable)

        # CPU, without any profiler: best of a few batches per side (noise only adds).
        parent_cpu, actor_cpu, wall = [], [], []
        for _ in range(args.batches):
            a0 = await portal.run(thread_cpu)
            p0, w0 = thread_cpu(), time.perf_counter()
            for _ in range(n):
                await portal.run(noop)
            p1, w1 = thread_cpu(), time.perf_counter()
            a1 = await portal.run(thread_cpu)
            parent_cpu.append(_per_call(p0, p1, n))
            wall.append((w1 - w0) / n * 1e6)
            actor_cpu.append(_per_call(a0, a1, n))

        # Call counts on each side (one side profiled at a time: the profiler slows it).
        profile_start(args.detail)
        for _ in range(n):
            await portal.run(noop)
        parent_counts, parent_callers = profile_stop()
        await portal.run(profile_start, detail=args.detail)
        for _ in range(n):
            await portal.run(noop)
        actor_counts, actor_callers = await portal.run(profile_stop)

        if args.opcodes:
            opcodes_start()
            for _ in range(n):
                await portal.run(noop)
            parent_ops, parent_op_fns = opcodes_stop()
            await portal.run(opcodes_start)
            for _ in range(n):
                await portal.run(noop)
            actor_ops, actor_op_fns = await portal.run(opcodes_stop)
            for side, ops, fns in (
                ("parent", parent_ops, parent_op_fns),
                ("actor", actor_ops, actor_op_fns),
            ):
                print(f"-- {side}: {ops.get('op', 0) / n:.0f} bytecodes per round trip")
                for name, count in fns:
                    if count / n >= 1:
                        print(f"  {count / n:6.1f}  {name}")
        floor = await _floor(portal, n, args.batches)
        await portal.cancel_actor()

    print(f"{args.backend}/{args.config}: {n} round trips per batch, {args.batches} batches")
    print(f"portal.run wall us  median {sorted(wall)[len(wall) // 2]:.1f}  min {min(wall):.1f}")
    _show("portal.run, parent", parent_counts, n, _best(parent_cpu))
    _show("portal.run, actor", actor_counts, n, _best(actor_cpu))
    print(f"floor wall us       median {floor['wall']:.1f}")
    _show("floor, parent", floor["parent"], n, floor["cpu_parent"])
    _show("floor, actor", floor["actor"], n, floor["cpu_actor"])
    if args.detail:
        for side, callers in (("parent", parent_callers), ("actor", actor_callers)):
            print(f"\n-- {side}: calls per round trip")
            for name, count in callers:
                if count / n >= 0.5:
                    print(f"  {count / n:6.2f}  {name}")


async def _floor(portal: Any, n: int, batches: int) -> dict[str, Any]:
    address = f"\0subint-spawn-probe-{os.getpid()}"
    actor: dict[str, Any] = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(address)
        listener.listen(1)
        listener.setblocking(False)
        async with trio.open_nursery() as nursery:

            async def echo() -> None:
                actor.update(await portal.run(bare_echo, address=address, n=n, batches=batches))

            nursery.start_soon(echo)
            await trio.lowlevel.wait_readable(listener)
            sock, _ = listener.accept()
            with sock:
                sock.setblocking(False)

                async def rounds() -> None:
                    for _ in range(n):
                        sock.send(b"x")
                        await trio.lowlevel.wait_readable(sock)
                        sock.recv(64)

                await rounds()
                parent_cpu, wall = [], []
                for _ in range(batches):
                    p0, w0 = thread_cpu(), time.perf_counter()
                    await rounds()
                    p1, w1 = thread_cpu(), time.perf_counter()
                    parent_cpu.append(_per_call(p0, p1, n))
                    wall.append((w1 - w0) / n * 1e6)
                profile_start()
                await rounds()
                parent = profile_stop()[0]
    return {
        "wall": sorted(wall)[len(wall) // 2],
        "cpu_parent": _best(parent_cpu),
        "cpu_actor": actor["cpu"],
        "parent": parent,
        "actor": actor["counts"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="subint")
    parser.add_argument("--config", default="isolated")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true", help="disable the GC on both sides")
    parser.add_argument(
        "--opcodes", action="store_true", help="bytecodes per function per round trip"
    )
    parser.add_argument("--detail", action="store_true", help="list the calls per round trip")
    trio.run(main, parser.parse_args())
