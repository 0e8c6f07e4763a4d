"""A small app for tests/test_ctrl_c.py: an actor nursery to press Ctrl-C on.

``python -m tests.ctrl_c_app BACKEND CONFIG [--hang-on-cleanup | --cancel-and-exit]`` starts
three actors, each in
a call it will not leave by itself:

* ``spinner``: a pure-Python loop (sync);
* ``sleeper``: blocked in C, ``time.sleep(1000)``;
* ``idler``: idle in trio, ``trio.sleep_forever()``.

Each one reports over a loopback socket right before it blocks (``<name> <pid>``), so the app
prints ``ready <pid> <pid> <pid>`` only once all three are at their blocking points.  Each
prints ``finally:<name>`` when its ``finally`` block runs.  ``--hang-on-cleanup`` makes the
app's own cleanup wait forever (shielded) after the first Ctrl-C, for the second-Ctrl-C test.
``--cancel-and-exit`` stops the actors with ``an.cancel()`` once they are ready, prints
``abandoned <n>`` from the census and returns: the process then exits with an abandoned
interpreter still stuck in C.

The actors import their functions from ``tests.ctrl_c_app``: when run with ``-m``, this file is
``__main__``, which actors cannot import, so the app imports itself under its real name.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import trio

NAMES = ("spinner", "sleeper", "idler")


def _report(port: int, name: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(f"{name} {os.getpid()}\n".encode())


def _said(name: str) -> None:
    os.write(1, f"finally:{name}\n".encode())


def spin(port: int) -> None:
    _report(port, "spinner")
    try:
        x = 0
        while True:
            x += 1
    finally:
        _said("spinner")


def sleep_in_c(port: int) -> None:
    _report(port, "sleeper")
    try:
        time.sleep(1000)
    finally:
        _said("sleeper")


async def idle(port: int) -> None:
    _report(port, "idler")
    try:
        await trio.sleep_forever()
    finally:
        _said("idler")


async def _collect_reports(listener: trio.SocketListener, count: int) -> list[str]:
    pids = []
    for _ in range(count):
        stream = await listener.accept()
        async with stream:
            data = b""
            while not data.endswith(b"\n"):
                chunk = await stream.receive_some()
                if not chunk:
                    break
                data += chunk
        pids.append(data.decode().split()[1])
    return pids


async def main(backend: str, config: str, mode: str) -> None:
    import subint_spawn
    from tests import ctrl_c_app as app  # noqa: PLW0406 -- see the module docstring

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    port = listener.socket.getsockname()[1]
    calls = {"spinner": app.spin, "sleeper": app.sleep_in_c, "idler": app.idle}
    async with listener, subint_spawn.open_nursery(backend=backend, config=config) as an:  # type: ignore[arg-type]
        try:
            async with trio.open_nursery() as callers:
                for name in NAMES:
                    portal = await an.start_actor(name, enable_modules=["tests.ctrl_c_app"])
                    callers.start_soon(_call, portal, calls[name], port)
                pids = await _collect_reports(listener, len(NAMES))
                print("ready", *pids, flush=True)
                if mode == "--cancel-and-exit":
                    await an.cancel()
                    print("abandoned", len(subint_spawn.census().abandoned), flush=True)
                    return
                await trio.sleep_forever()
        finally:
            if mode == "--hang-on-cleanup":
                print("cleanup-hangs", flush=True)
                with trio.CancelScope(shield=True):
                    await trio.Event().wait()


async def _call(portal: object, fn: object, port: int) -> None:
    from subint_spawn import ChannelClosed

    try:
        await portal.run(fn, port=port)  # type: ignore[attr-defined]
    except ChannelClosed:
        pass  # the actor was stopped under the call


if __name__ == "__main__":
    # As if started from a terminal: a background job of a non-interactive shell (CI scripts,
    # `pytest &`) inherits SIGINT ignored, and subint_spawn rightly leaves an ignored SIGINT be.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
