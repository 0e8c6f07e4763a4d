"""What a pickled call costs at the least, beside the bench's floor and ``portal.run``.

    .venv/bin/python scripts/percall_bound.py [--batches 20] [--size 200] [--config isolated]

Three round trips between the same two interpreters, batches interleaved (as the bench does):

* ``floor``: one byte there and back on a bare socket, ``trio.lowlevel.wait_readable`` only
  (the bench's floor row);
* ``minimal rpc``: the least a call can do in Python over the same kind of socket -- frame a
  pickled ``("call", cid, module, qualname, kwargs)``, send, wait, read, unpickle, look the
  function up in a dict, call it, pickle ``("return", cid, result)``, send it back, check it
  -- with no runtime around it: no validation, no routing, no cancellation, no other
  messages, no concurrency;
* ``portal.run`` of the same no-op.

The minimal RPC is a lower bound for any runtime that keeps the message format: the gap
between it and the floor is the price of pickling and Python dispatch on both critical paths,
not of the runtime.  Prints medians of per-batch microseconds and same-batch ratios.
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import statistics
import struct
import time
from typing import Any

import trio

import subint_spawn
from subint_spawn._cli import _workloads
from subint_spawn._core._channel import Channel
from subint_spawn._core._codec import get_codec
from subint_spawn._core._portal import ActorLink

_HEADER = struct.Struct(">I")


async def minimal_server(address: str, count: int) -> None:
    """The actor's side of the minimal RPC: ``count`` calls, then return."""
    table = {(_workloads.__name__, "noop"): _workloads.noop}
    dumps, loads, pack = pickle.dumps, pickle.loads, _HEADER.pack
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(address)
        sock.setblocking(False)
        for _ in range(count):
            await trio.lowlevel.wait_readable(sock)
            chunk = sock.recv(65536)
            _, cid, module, qualname, kwargs = loads(memoryview(chunk)[4:])
            result = table[(module, qualname)](**kwargs)
            payload = dumps(("return", cid, result))
            sock.send(pack(len(payload)) + payload)


async def real_server(address: str, count: int) -> None:
    """The actor's side as the runtime does it (its dispatcher on a channel of its own), for a
    client that sends ``count`` calls and then closes."""
    from subint_spawn._core._actor import _Actor
    from subint_spawn._core._channel import Channel
    from subint_spawn._core._codec import get_codec

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    channel = Channel(sock, get_codec("pickle"))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(channel.run_writer)
            await _Actor("bound", channel)._dispatch(nursery)
            nursery.cancel_scope.cancel()
    finally:
        channel.close_now()


async def bare_echo(address: str, count: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(address)
        sock.setblocking(False)
        for _ in range(count):
            await trio.lowlevel.wait_readable(sock)
            sock.send(sock.recv(64))


async def _connect(nursery: trio.Nursery, portal: Any, fn: Any, count: int) -> socket.socket:
    address = f"\0subint-spawn-bound-{os.getpid()}-{fn.__name__}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listener:
        listener.bind(address)
        listener.listen(1)
        listener.setblocking(False)
        nursery.start_soon(lambda: portal.run(fn, address=address, count=count))
        await trio.lowlevel.wait_readable(listener)
        sock, _ = listener.accept()
    sock.setblocking(False)
    return sock


async def main(args: argparse.Namespace) -> None:
    total = (args.batches + 1) * args.size
    cids = iter(range(1 << 62))
    dumps, loads, pack = pickle.dumps, pickle.loads, _HEADER.pack
    module = _workloads.__name__
    times: dict[str, list[float]] = {}
    async with subint_spawn.open_nursery(config=args.config) as an:
        portal = await an.start_actor("bound", enable_modules=[module])
        async with trio.open_nursery() as nursery:
            floor = await _connect(nursery, portal, bare_echo, total)
            rpc = await _connect(nursery, portal, minimal_server, total)
            to_real = await _connect(nursery, portal, real_server, total)
            link_sock = await _connect(nursery, portal, minimal_server, total)
            link = ActorLink(Channel(link_sock, get_codec("pickle")), "bound")
            nursery.start_soon(link.serve)

            async def floor_batch() -> None:
                for _ in range(args.size):
                    floor.send(b"x")
                    await trio.lowlevel.wait_readable(floor)
                    floor.recv(64)

            async def rpc_batch() -> None:
                for _ in range(args.size):
                    cid = next(cids)
                    payload = dumps(("call", cid, module, "noop", {}))
                    await trio.lowlevel.checkpoint_if_cancelled()
                    rpc.send(pack(len(payload)) + payload)
                    await trio.lowlevel.wait_readable(rpc)
                    kind, answered, _ = loads(memoryview(rpc.recv(65536))[4:])
                    assert kind == "return" and answered == cid

            async def rpc_to_real_batch() -> None:
                for _ in range(args.size):
                    cid = next(cids)
                    payload = dumps(("call", cid, module, "noop", {}))
                    await trio.lowlevel.checkpoint_if_cancelled()
                    to_real.send(pack(len(payload)) + payload)
                    await trio.lowlevel.wait_readable(to_real)
                    kind, answered, _ = loads(memoryview(to_real.recv(65536))[4:])
                    assert kind == "return" and answered == cid

            async def link_to_minimal_batch() -> None:
                for _ in range(args.size):
                    await link.call(module, "noop", {})

            async def run_batch() -> None:
                for _ in range(args.size):
                    await portal.run(_workloads.noop)

            batches = {
                "floor": floor_batch,
                "minimal rpc": rpc_batch,
                "minimal -> actor's dispatcher": rpc_to_real_batch,
                "link.call -> minimal": link_to_minimal_batch,
                "portal.run": run_batch,
            }
            for batch in range(args.batches + 1):  # the first round is a warm-up
                for name, fn in batches.items():
                    start = time.perf_counter()
                    await fn()
                    if batch:
                        times.setdefault(name, []).append(
                            (time.perf_counter() - start) / args.size * 1e6
                        )
            nursery.cancel_scope.cancel()
            for sock in (floor, rpc, to_real):
                sock.close()
            link.channel.close_now()
        await portal.cancel_actor()
    base = times["floor"]
    for name, samples in times.items():
        ratio = statistics.median(s / f for s, f in zip(samples, base, strict=True))
        print(f"{name:<30} {statistics.median(samples):7.1f} us   x floor {ratio:5.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--config", default="isolated")
    trio.run(main, parser.parse_args())
