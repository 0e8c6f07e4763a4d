"""The ``trio`` backend: each actor is ``trio.run`` in a child process.

The same actor runtime as ``subint``, reached over a socket pair whose child end is passed
with ``pass_fds``; messages are msgpack (bytes from another process are never unpickled).  Hard
stop is SIGKILL, which always works -- the price is a whole Python process per actor.

Each child also gets a second socket pair, for stack dumps only: a daemon thread in the child
answers on it (:func:`.._core._stacks.serve_dumps`), so its stacks can be had while its trio
loop is stuck, without signals, and without touching the message channel.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys

import trio

from .._core._bytecode import warn_once_if_uncompiled
from .._core._channel import Channel
from .._core._codec import MsgpackCodec
from .._core._control import ControlLink, control_socketpair
from .._core._names import DUMP_FD_ENV, LOG_LEVEL_ENV, PARENT_PID_ENV, PATH_ENV, Config
from .._core._stacks import DumpTarget, register_dump_source
from .._exceptions import RemoteActorError
from . import StopOutcome

__all__ = ["ProcessActor", "dump_targets", "spawn"]

REAP_BOUND = 5.0


class ProcessActor:
    def __init__(
        self, name: str, process: trio.Process, channel: Channel, dumps: ControlLink
    ) -> None:
        self.name = name
        self.process = process
        self.channel = channel
        self.dumps = dumps
        self._killed = False
        _LIVE.add(self)

    def ready(self) -> None:
        pass  # the child end was closed right after the child was started

    @property
    def where(self) -> str:
        """Where the actor runs, for messages about it (Ctrl-C's abandon report)."""
        return f"process {self.process.pid}"

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    async def wait_exited(self) -> None:
        await self.process.wait()

    async def hard_stop(self) -> StopOutcome:
        self._killed = True
        with trio.CancelScope(shield=True):
            if self.process.returncode is None:
                self.process.kill()
            with trio.move_on_after(REAP_BOUND):
                await self.process.wait()
        return "killed"

    async def reap(self) -> BaseException | None:
        _LIVE.discard(self)
        self.dumps.close()
        self.channel.close_now()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(REAP_BOUND):
                await self.process.wait()
            if self.process.returncode is None:  # cannot happen after SIGKILL short of a zombie
                self.process.kill()
                await self.process.wait()
        code = self.process.returncode
        if self._killed or code == 0:
            return None
        how = (
            f"killed by signal {signal.Signals(-code).name}"
            if code < 0
            else f"exited with status {code}"
        )
        return RemoteActorError("ProcessExited", f"actor process {how}", "", where=self.name)


# Process actors spawned from this interpreter and not yet reaped: whom dump_stacks asks.
_LIVE: set[ProcessActor] = set()


def dump_targets() -> list[DumpTarget]:
    return [
        DumpTarget(
            f"actor {actor.name!r} (process {actor.process.pid}, trio backend)",
            actor.dumps,
            silence_hint="its dump thread got no GIL (a thread holding it in C?) or the process is stopped",
        )
        for actor in sorted(_LIVE, key=lambda a: a.process.pid)
        if actor.process.returncode is None
    ]


register_dump_source(dump_targets)


async def spawn(name: str, enable_modules: list[str], config: Config) -> ProcessActor:
    warn_once_if_uncompiled()
    del config  # interpreter configs mean nothing to a subprocess
    parent_end, child_end = socket.socketpair()
    dump_end, child_dump_end = control_socketpair()
    env = dict(os.environ)
    env[PATH_ENV] = json.dumps(sys.path)
    env[DUMP_FD_ENV] = str(child_dump_end.fileno())
    env[PARENT_PID_ENV] = str(os.getpid())
    env[LOG_LEVEL_ENV] = str(logging.getLogger().getEffectiveLevel())  # the actor logs what we show
    command = [
        sys.executable,
        "-m",
        "subint_spawn._backends._trio_child",
        str(child_end.fileno()),
        name,
        json.dumps(enable_modules),
    ]
    try:
        process = await trio.lowlevel.open_process(
            command,
            pass_fds=(child_end.fileno(), child_dump_end.fileno()),
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        parent_end.close()
        dump_end.close()
        raise
    finally:
        child_end.close()  # the child has its own copies now (or there is no child)
        child_dump_end.close()
    channel = Channel(parent_end, MsgpackCodec())
    return ProcessActor(name, process, channel, ControlLink(dump_end))
