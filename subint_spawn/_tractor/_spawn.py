"""tractor's ``subint`` spawn method, run by subint_spawn's driver (the parent's side).

tractor's actor nursery calls :func:`subint_proc` exactly as it calls its own spawn methods, in
a task of its own, and expects it to: start the child, wait for it to connect back, send it its
``SpawnSpec``, hand the nursery a ``Portal`` (``task_status.started``), then supervise the child
until it has ended and reap it.  The interpreter's life -- its dedicated thread, the exit
signal through the trio token, the bounded join, ``destroy``, and the kill escalation down to
abandoning a thread stuck in C -- is the driver's (:mod:`subint_spawn.driver`); this module only
decides *when* each step happens:

* **Boot races exit.**  The wait for the child to connect is raced against the interpreter
  ending.  If the interpreter wins, its outcome is read at once, so an error while tractor boots
  there reaches the caller as :class:`~subint_spawn.ActorStartupError` carrying the child's
  traceback, instead of a parent that waits forever for a connection that never comes.
* **Teardown escalates**, each step bounded: tractor's own runtime cancel over the portal first
  (as tractor's trio backend does), then the driver's kill (a cooperative cancel of the child's
  trio loop, then exceptions injected into its thread), then abandon (a warning and a
  ``census()`` record; the caller never blocks on it).  A child that acknowledged the runtime
  cancel is given :data:`EXIT_AFTER_ACK` to finish (it stops its own children first); one that
  did not acknowledge it is stuck, and the driver's kill starts at once.
* **tractor's nursery can escalate too.**  When its own cancel is not acknowledged in time it
  calls ``terminate()`` on what it holds as the child's process (:class:`ActorInterpreter`),
  which starts the driver's kill from this task, even before the nursery's block has ended.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio

from .. import driver
from .._core import _driver, _pool
from .._exceptions import ActorStartupError, InterpreterKilled, RemoteError
from . import _api, _child

log = logging.getLogger("subint_spawn.tractor")

#: How long a child that acknowledged tractor's runtime cancel gets to end on its own before the
#: driver's kill (tractor's trio backend gives a process the same before its hard kill).
EXIT_AFTER_ACK = 1.6

#: Kill steps for tractor actors.  The cooperative step is short: it only runs once tractor's
#: own cancel went unanswered, and a trio loop that still checkpoints honours it in milliseconds.
KILL_POLICY = driver.KillPolicy(
    grace=0.1, kill_bound=0.6, inject_every=0.05, join_bound=1.0, cleanup_bound=10.0
)


@dataclass
class Settings:
    config: driver.Config = "legacy"
    policy: driver.KillPolicy = KILL_POLICY


settings = Settings()


#: What a warm interpreter for a tractor actor has imported ahead (:func:`prewarm`): tractor's
#: child runtime (~0.8 s of a cold legacy spawn) and ours around it.
WARM_UP_MODULES: tuple[str, ...] = (
    "trio",
    "subint_spawn._core._guest",
    "subint_spawn._core._guards",
    "subint_spawn._tractor._spawn",
    "subint_spawn._tractor._child",
    "tractor._child",
)


def install_here(config: driver.Config, policy: driver.KillPolicy | None = None) -> None:
    """Make tractor's ``'subint'`` method ours in this interpreter, with these settings
    (:func:`subint_spawn.tractor.install` after it has checked its arguments)."""
    _api.load()  # refuses a missing or different tractor before anything changes
    settings.config = config
    settings.policy = policy or KILL_POLICY
    _api.install_method(subint_proc)


def actor_child_main(
    uid: tuple[str, str],
    loglevel: str | None,
    parent_addr: Any,
    infect_asyncio: bool,
    config: driver.Config,
) -> None:
    """What a tractor actor's interpreter runs: our method installed here too (so its own
    ``'subint'`` children go through the driver), then tractor's child runtime."""
    try:
        install_here(config)
    except ImportError as exc:
        if config == "isolated":
            exc.add_note(
                "tractor could not be imported in an isolated interpreter (its codec, msgspec, "
                "refuses them: msgspec issue 1026); spawn tractor actors with config='legacy'"
            )
        raise
    _child.run_child_runtime(uid, loglevel, parent_addr, infect_asyncio)


async def new_interpreter(
    config: driver.Config, name: str, policy: driver.KillPolicy
) -> driver.Subinterpreter:
    """Where a tractor actor's interpreter comes from: a warm one from this run's pool when
    one is idle (see :func:`prewarm`), else one booted now with tractor imported, under the
    pool's bound on concurrent boots (one at a time for ``legacy``: they share the main GIL).

    The actor runs under the process guards, named after itself, and its interpreter is
    destroyed in the background once its code has ended (see the driver's ``defer_destroy``).
    """
    options = {"name": name, "policy": policy, "guard_process": True, "defer_destroy": True}
    interp = _pool.take(config, modules=WARM_UP_MODULES, **options)  # type: ignore[arg-type]
    if interp is None:
        interp = await _pool.boot(config, modules=WARM_UP_MODULES, **options)  # type: ignore[arg-type]
    if interp is None:  # booting with the imports failed: the actor reports why when it starts
        interp = await _driver.boot(config, **options)  # type: ignore[arg-type]
    return interp


async def prewarm(n: int, config: driver.Config | None = None) -> None:
    """Keep ``n`` interpreters with tractor's child runtime imported ready for tractor actors
    in this trio run (see :func:`subint_spawn.prewarm`, whose rules apply)."""
    await _pool.prewarm(n, config or settings.config, modules=WARM_UP_MODULES)


class ActorInterpreter:
    """What tractor's actor nursery holds in a child's "process" slot.

    tractor calls ``poll()`` (``None`` while the child runs) and, to hard-kill a child whose
    cancel went unacknowledged, ``terminate()``.  Both must be cheap and non-blocking: they only
    look at, or ask for, what the spawn task then does through the driver.
    """

    def __init__(self, interp: driver.Subinterpreter, uid: tuple[str, str]) -> None:
        self.interp = interp
        self.uid = uid
        self.kill_requested = trio.Event()
        self.cancel_acked = False  # it acknowledged tractor's runtime cancel over IPC
        self.outcome_read = False
        self.channel: Any = None  # the parent's end of the child's IPC channel, once connected

    @property
    def returncode(self) -> int | None:
        return 0 if self.interp.exited else None

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        """Ask the spawn task to kill the child through the driver (returns at once)."""
        self.kill_requested.set()

    kill = terminate

    async def wait(self) -> int:
        await self.interp.wait_exited()
        return 0

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else "ended"
        return f"<tractor actor {self.uid[0]!r} in subinterpreter {self.interp.id} ({self.interp.config}), {state}>"


async def subint_proc(
    name: str,
    actor_nursery: Any,
    subactor: Any,
    errors: dict[tuple[str, str], Exception],
    bind_addrs: list[Any],
    parent_addr: Any,
    _runtime_vars: dict[str, Any],
    *,
    infect_asyncio: bool = False,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    proc_kwargs: dict[str, Any] | None = None,
) -> None:
    """Spawn and supervise one tractor actor in a subinterpreter (tractor's spawn-method API)."""
    del name, proc_kwargs  # the actor's name is in its uid; there is no process to configure
    api = _api.load()
    uid: tuple[str, str] = subactor.aid.uid
    config = settings.config
    interp = await new_interpreter(config, name=uid[0], policy=settings.policy)
    process = ActorInterpreter(interp, uid)
    registered = False
    try:
        interp.start(actor_child_main, uid, subactor.loglevel, parent_addr, infect_asyncio, config)
        chan = process.channel = await _connected_or_boot_error(
            _api.ipc_server(actor_nursery), process
        )
        portal = api.portal_type(chan)
        _api.register_child(actor_nursery, subactor, process, portal)
        registered = True
        await chan.send(_api.spawn_spec(subactor, bind_addrs, _runtime_vars))
        task_status.started(portal)

        with trio.CancelScope(shield=True):  # as tractor's own methods: only the nursery ends this
            await _first_of(
                lambda: _api.wait_until_joined(actor_nursery), process.kill_requested.wait
            )
        async with trio.open_nursery() as result_waiter:
            if _api.cancels_after_result(actor_nursery, portal):
                result_waiter.start_soon(api.cancel_on_completion, portal, subactor, errors)
            await _supervise(process, portal)
            result_waiter.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            try:
                await _stop(process)
            finally:
                await interp.aclose()
                if registered:
                    _api.unregister_child(actor_nursery, subactor)


async def _connected_or_boot_error(ipc_server: Any, process: ActorInterpreter) -> Any:
    """The child's channel once it has connected back; if its interpreter ends first, raise
    what ended it (:class:`ActorStartupError`, the child's traceback included)."""
    found: list[Any] = []

    async def connected() -> None:
        _, chan = await ipc_server.wait_for_peer(process.uid)
        found.append(chan)

    await _first_of(connected, process.interp.wait_exited)
    if found:
        return found[0]
    raise await _boot_failure(process)


async def _boot_failure(process: ActorInterpreter) -> ActorStartupError:
    name = process.uid[0]
    process.outcome_read = True
    prefix = f"tractor actor {name!r} ended before connecting to its parent"
    try:
        await process.interp.wait()
    except RemoteError as exc:
        error = ActorStartupError(
            exc.remote_type, f"{prefix}: {exc.remote_message}", exc.remote_traceback, where=name
        )
        error.__cause__ = exc
        return error
    except InterpreterKilled as exc:
        return ActorStartupError(type(exc).__name__, f"{prefix}: {exc}", "", where=name)
    return ActorStartupError(
        "RuntimeError",
        f"{prefix}: tractor's child runtime returned without an error",
        "",
        where=name,
    )


async def _supervise(process: ActorInterpreter, portal: Any) -> None:
    """Until the child ends or tractor's nursery asks for a hard kill; if this task is
    cancelled meanwhile, first ask tractor's runtime in the child to cancel (bounded)."""
    try:
        await _ended_or_kill_requested(process)
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await _cancel_runtime(process, portal)
        raise


async def _ended_or_kill_requested(process: ActorInterpreter) -> None:
    await _first_of(process.interp.wait_exited, process.kill_requested.wait)


async def _first_of(*waits: Callable[[], Awaitable[Any]]) -> None:
    """Until the first of ``waits`` returns."""
    with _one_cancelled():
        async with trio.open_nursery() as race:

            async def wait_for(wait: Callable[[], Awaitable[Any]]) -> None:
                await wait()
                race.cancel_scope.cancel()

            for wait in waits:
                race.start_soon(wait_for, wait)


@contextmanager
def _one_cancelled() -> Iterator[None]:
    """A race's nursery, cancelled from outside, raises its tasks' ``Cancelled`` as a group;
    callers here (and tractor, around a spawn method) handle a plain ``trio.Cancelled``."""
    try:
        yield
    except BaseExceptionGroup as group:
        if group.subgroup(lambda exc: not isinstance(exc, (trio.Cancelled, BaseExceptionGroup))):
            raise
        cancelled = group
        while isinstance(cancelled, BaseExceptionGroup):
            cancelled = cancelled.exceptions[0]
        raise cancelled  # the group only wraps this very cancellation


async def _cancel_runtime(process: ActorInterpreter, portal: Any) -> None:
    """tractor's runtime cancel over the portal, bounded by the portal's own ack timeout, and
    cut short if the interpreter ends meanwhile."""
    async with trio.open_nursery() as race:

        async def ended() -> None:
            await process.interp.wait_exited()
            race.cancel_scope.cancel()

        race.start_soon(ended)
        try:
            process.cancel_acked = bool(await portal.cancel_actor())
        except Exception as exc:
            log.info("tractor actor %r: runtime cancel over IPC failed: %r", process.uid[0], exc)
        race.cancel_scope.cancel()


async def _kill(process: ActorInterpreter) -> driver.Termination:
    """The driver's kill; once its cooperative step has had its grace, also end our side of
    the child's channel.

    A killed process's sockets close with it; an interpreter's do not.  tractor shields the loop
    that serves a child's parent channel, so a child whose tasks were stopped by an injected
    exception would still wait on that channel (in C, where nothing more can be injected) and be
    abandoned although it could end: reading the end of its parent's channel lets it.
    """
    interp = process.interp

    async def close_channel_after_grace() -> None:
        with trio.move_on_after(interp.policy.grace):
            await interp.wait_exited()
            return
        if process.channel is not None:
            _api.end_sending(process.channel)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_channel_after_grace)
        how = await interp.kill()
        nursery.cancel_scope.cancel()
    return how


async def _stop(process: ActorInterpreter) -> None:
    """Make sure the child has ended, escalating through the driver, then read its outcome."""
    interp = process.interp
    if not interp.running and not interp.exited:
        return  # never started (start() refused its arguments)
    if interp.running and process.cancel_acked and not process.kill_requested.is_set():
        with trio.move_on_after(EXIT_AFTER_ACK):
            await _ended_or_kill_requested(process)
    if interp.running:
        how = await _kill(process)
        log.log(
            logging.WARNING if how == "abandoned" else logging.INFO,
            "tractor actor %r did not end on its own; the driver's kill: %s",
            process.uid[0],
            how,
        )
    if process.outcome_read:
        return
    process.outcome_read = True
    try:
        await interp.wait()
    except InterpreterKilled:
        pass  # logged above (and an abandon was reported by the driver)
    except RemoteError as exc:
        # tractor reports actor errors over IPC; this is its runtime itself failing.
        log.warning("tractor actor %r: its runtime ended with an error: %s", process.uid[0], exc)
