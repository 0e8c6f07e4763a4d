"""The ``subint`` backend: each actor is ``trio.run`` inside its own subinterpreter."""

from __future__ import annotations

import logging
import socket

import trio

from .._core import _driver, _pool
from .._core._actor import actor_main
from .._core._bytecode import warn_once_if_uncompiled
from .._core._channel import Channel
from .._core._codec import PickleCodec
from .._core._names import Config
from .._exceptions import InterpreterKilled
from . import StopOutcome

__all__ = ["SubintActor", "spawn"]

# An actor's trio loop answers the IPC "stop" in milliseconds; by the time the driver is asked
# to kill, that has already failed, so its own cooperative step gets only a short window.
# kill_bound leaves room for a killed actor to reap its own children (ORPHAN_KILL_POLICY).
ACTOR_KILL_POLICY = _driver.KillPolicy(grace=0.05, kill_bound=1.0)


class SubintActor:
    def __init__(
        self, name: str, interp: _driver.Subinterpreter, channel: Channel, child_end: socket.socket
    ) -> None:
        self.name = name
        self.interp = interp
        self.channel = channel
        self._child_end = child_end

    def ready(self) -> None:
        # The actor works on its own dup of this fd by now; closing ours means the parent
        # sees EOF as soon as the actor closes its dup, not only when the interpreter dies.
        self._child_end.close()

    @property
    def where(self) -> str:
        """Where the actor runs, for messages about it (Ctrl-C's abandon report)."""
        return f"subinterpreter {self.interp.id} ({self.interp.config}), thread {self.interp.thread_name!r}"

    @property
    def exited(self) -> bool:
        return self.interp.exited

    async def wait_exited(self) -> None:
        await self.interp.wait_exited()

    async def hard_stop(self) -> StopOutcome:
        return await self.interp.kill()

    async def reap(self) -> BaseException | None:
        self._child_end.close()
        self.channel.close_now()
        try:
            await self.interp.wait()
        except InterpreterKilled:
            return None  # we stopped it: not the actor's own failure
        except Exception as exc:
            return exc
        finally:
            await self.interp.aclose()
        return None


async def spawn(name: str, enable_modules: list[str], config: Config) -> SubintActor:
    warn_once_if_uncompiled()
    parent_end, child_end = socket.socketpair()
    try:
        interp = await _interpreter_for(name, config)
    except BaseException:
        parent_end.close()
        child_end.close()
        raise
    try:
        interp.start(
            actor_main,
            fd=child_end.fileno(),
            name=name,
            enable_modules=enable_modules,
            codec="pickle",
            dup=True,
            backend="subint",
            config=config,
            log_level=logging.getLogger().getEffectiveLevel(),  # the actor logs what we would show
        )
    except BaseException:
        parent_end.close()
        child_end.close()
        with trio.CancelScope(shield=True):
            await interp.aclose()
        raise
    channel = Channel(parent_end, PickleCodec())
    return SubintActor(name, interp, channel, child_end)


async def _interpreter_for(name: str, config: Config) -> _driver.Subinterpreter:
    """A warm interpreter from this run's pool if one is idle (runtime already imported: ready
    in milliseconds), else one booted now under the pool's per-config bound on concurrent
    boots.  Either way it is this actor's alone from here on, and its teardown destroys it.
    If booting that way failed, a bare interpreter: the actor then reports the failure (its
    import error, with the traceback) like any actor that cannot start."""
    # The actor's teardown returns once its code and threads have ended; the destroy itself
    # (tens of ms of finalization) runs in the background of this trio run.
    policy, guard, defer = ACTOR_KILL_POLICY, True, True
    interp = _pool.take(config, name=name, policy=policy, guard_process=guard, defer_destroy=defer)
    if interp is None:
        interp = await _pool.boot(
            config, name=name, policy=policy, guard_process=guard, defer_destroy=defer
        )
    if interp is None:
        interp = await _driver.boot(
            config, name=name, policy=policy, guard_process=guard, defer_destroy=defer
        )
    return interp
