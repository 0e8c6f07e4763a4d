"""Actor nurseries: spawn actors, supervise them, and never let one outlive the block.

Each actor gets a *supervisor* task in the nursery's trio nursery.  The supervisor spawns the
actor, waits for it to say ``ready``, serves its lifetime, and in a shielded, bounded
``finally`` tears it down: IPC ``stop`` first, then the backend's hard stop if the actor does
not exit within ``CANCEL_GRACE``, then reaping.  Because teardown lives in ``finally``, the same
path runs whatever ended the actor's life: the block finishing, an error in a sibling, the
enclosing scope being cancelled, ``an.cancel()``, ``portal.cancel_actor()``.

Semantics (they follow trio, where tractor's differ the choice is noted):

* The block exiting normally stops the actors started with ``start_actor`` and waits for every
  ``run_in_actor`` result, concurrently (tractor waits for ``start_actor`` actors forever; a
  hang is never what a user wants).
* An actor that raises -- its ``run_in_actor`` function, or the actor itself dying -- raises
  :class:`RemoteActorError` in the nursery, which cancels every sibling (one-cancels-all); the
  nursery then raises an exception group, as trio's nurseries do.
* A ``run_in_actor`` actor is stopped as soon as its result is in.
* Ctrl-C (see :mod:`._interrupt`) cancels every nursery open in the main thread, so all actors
  go through the teardown below; then the block raises ``KeyboardInterrupt``, after naming any
  actor that had to be abandoned.  A second Ctrl-C exits the process at once.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import trio

from .. import _backends
from .._backends import ActorHandle
from .._exceptions import ActorStartupError, ChannelClosed, RemoteActorError, RemoteError
from . import _interrupt
from ._defaults import current_config, current_spawn_backend
from ._funcref import ref_of
from ._names import BackendName, Config, check_backend, check_config
from ._portal import Portal

__all__ = ["ActorNursery", "open_nursery"]

#: How long an actor gets to honour an IPC ``stop`` before the backend's hard stop.
CANCEL_GRACE = 0.2
#: How long an actor gets from spawn to ``ready`` (importing its modules included).
STARTUP_TIMEOUT = 60.0

@dataclass(frozen=True)
class _ActorSpec:
    name: str
    enable_modules: list[str]
    backend: BackendName
    config: Config
    main: tuple[str, str, dict[str, Any]] | None = None
    startup_timeout: float = STARTUP_TIMEOUT


async def _spawn(spec: _ActorSpec) -> ActorHandle:
    return await _backends.get(spec.backend).spawn(spec.name, spec.enable_modules, spec.config)


async def _first(*waiters: Callable[[], Awaitable[object]]) -> int:
    """Run the waiters concurrently; return the index of the first to finish."""
    winner: list[int] = []
    async with trio.open_nursery() as race:
        for index, waiter in enumerate(waiters):

            async def run(index: int = index, waiter: Callable[[], Awaitable[object]] = waiter) -> None:
                await waiter()
                if not winner:
                    winner.append(index)
                race.cancel_scope.cancel()

            race.start_soon(run)
    return winner[0]


class ActorNursery:
    """Spawns actors and owns them: none outlives the ``open_nursery`` block."""

    def __init__(self, tasks: trio.Nursery, backend: BackendName, config: Config) -> None:
        self._tasks = tasks
        self._backend = backend
        self._config = config
        self._portals: list[Portal] = []
        self._closing = trio.Event()
        self._names: dict[str, int] = {}
        #: (actor name, where it runs) of every actor the teardown had to abandon.
        self._abandoned: list[tuple[str, str]] = []

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """Cancelling this cancels the block and stops every actor."""
        return self._tasks.cancel_scope

    async def start_actor(
        self,
        name: str,
        *,
        enable_modules: Sequence[str] = (),
        backend: BackendName | None = None,
        config: Config | None = None,
    ) -> Portal:
        """Start a long-lived actor that serves ``portal.run`` calls until it is stopped."""
        spec = self._spec(name, list(enable_modules), backend, config)
        portal: Portal = await self._tasks.start(self._supervise, spec)
        return portal

    async def run_in_actor(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        enable_modules: Sequence[str] = (),
        backend: BackendName | None = None,
        config: Config | None = None,
        **kwargs: Any,
    ) -> Portal:
        """Start an actor that runs ``fn(**kwargs)`` once; ``portal.wait_for_result()`` gets it."""
        module, qualname = ref_of(fn)
        spec = self._spec(name or qualname, [module, *enable_modules], backend, config)
        spec = replace(spec, main=(module, qualname, kwargs))
        portal: Portal = await self._tasks.start(self._supervise, spec)
        return portal

    async def cancel(self) -> None:
        """Stop every actor of this nursery (gracefully, then by force) and wait until all are gone.

        Returns within about ``CANCEL_GRACE`` plus the backend's kill bound even when actors
        are stuck; the block itself goes on.
        """
        portals = list(self._portals)
        for portal in portals:
            portal._stop_requested.set()
        for portal in portals:
            await portal._stopped.wait()

    def _spec(self, name: str, modules: list[str], backend: str | None, config: str | None) -> _ActorSpec:
        count = self._names.get(name, 0)
        self._names[name] = count + 1
        unique = name if count == 0 else f"{name}-{count}"
        return _ActorSpec(
            name=unique,
            enable_modules=modules,
            backend=check_backend(backend or self._backend),
            config=check_config(config or self._config),
        )

    # -- supervision -------------------------------------------------------------------------

    async def _supervise(self, spec: _ActorSpec, task_status: trio.TaskStatus[Portal] = trio.TASK_STATUS_IGNORED) -> None:
        handle = await _spawn(spec)
        portal = Portal(handle.channel, spec.name)
        self._tasks.start_soon(portal._receive_loop)
        crashed = False
        started = False
        try:
            with trio.move_on_after(spec.startup_timeout) as startup:
                await portal._wait_ready()
            if startup.cancelled_caught:
                raise ActorStartupError(
                    "TimeoutError",
                    f"actor did not become ready within {spec.startup_timeout} s",
                    "",
                    where=spec.name,
                )
            handle.ready()
            self._portals.append(portal)
            started = True
            task_status.started(portal)
            if spec.main is not None:
                crashed = await self._run_main(portal, spec.main)
            else:
                crashed = await self._serve_until_stopped(portal)
        except ChannelClosed:
            crashed = True  # it died before it was ready; the reap below says why
        finally:
            reason = await self._teardown(handle, portal)
            if crashed:
                # wait_for_result and the nursery get the same error object, reported once.
                error = _crash_error(spec.name, reason, portal, startup=not started)
                portal._set_result(error=error)
            portal._set_result(error=ChannelClosed(f"actor {spec.name!r} ended without a result"))
            portal._stopped.set()
        if crashed:
            raise error

    async def _run_main(self, portal: Portal, main: tuple[str, str, dict[str, Any]]) -> bool:
        """Run the actor's function; True if the actor died under it (a crash)."""
        outcome: list[Any] = []

        async def call() -> None:
            try:
                outcome.append(("value", await portal._call(*main)))
            except RemoteActorError as exc:
                outcome.append(("error", exc))
            except ChannelClosed:
                outcome.append(("crashed", None))

        await _first(call, portal._stop_requested.wait)
        if not outcome:
            portal._set_result(error=ChannelClosed(f"actor {portal.actor_name!r} was cancelled"))
            return False
        kind, payload = outcome[0]
        if kind == "crashed":
            return True
        if kind == "value":
            portal._set_result(payload)
            return False
        portal._set_result(error=payload)
        raise payload  # one-cancels-all: its siblings and the block are cancelled

    async def _serve_until_stopped(self, portal: Portal) -> bool:
        """Until asked to stop (True if the actor went away by itself first: a crash)."""
        await _first(portal._stop_requested.wait, portal._channel_done.wait, self._closing.wait)
        return portal._channel_done.is_set() and not portal._stop_requested.is_set() and not self._closing.is_set()

    async def _teardown(self, handle: ActorHandle, portal: Portal) -> BaseException | None:
        """Stop the actor, gracefully then by force, and reap it.  Shielded and bounded."""
        with trio.CancelScope(shield=True):
            try:
                if not handle.exited:
                    with trio.move_on_after(CANCEL_GRACE):
                        if not portal._is_closed:
                            try:
                                await portal.channel.send(("stop",))
                            except ChannelClosed:
                                pass
                        await handle.wait_exited()
                if not handle.exited and await handle.hard_stop() == "abandoned":
                    self._abandoned.append((portal.actor_name, handle.where))
                return await handle.reap()
            finally:
                portal._close(ChannelClosed(f"actor {portal.actor_name!r} was stopped"))


def _crash_error(name: str, reason: BaseException | None, portal: Portal, *, startup: bool) -> RemoteActorError:
    cls = ActorStartupError if startup else RemoteActorError
    if isinstance(reason, RemoteActorError) and not startup:
        return reason
    if isinstance(reason, RemoteError):
        error = cls(reason.remote_type, reason.remote_message, reason.remote_traceback, where=name)
        error.__cause__ = reason.__cause__ or reason
        return error
    if reason is not None:
        error = cls(type(reason).__qualname__, str(reason), "", where=name)
        error.__cause__ = reason
        return error
    closed = portal._closed_error
    detail = f": {closed}" if closed is not None else ""
    error = cls("ActorExited", f"actor ended unexpectedly{detail}", "", where=name)
    error.__cause__ = closed
    return error


def _without_duplicates(group: BaseExceptionGroup[Any]) -> BaseExceptionGroup[Any]:
    """The same error can reach the block twice (``wait_for_result`` raises it in the body while
    the actor's supervisor raises it for one-cancels-all); report it once."""
    seen: set[int] = set()
    unique = []
    for exc in group.exceptions:
        if id(exc) not in seen:
            seen.add(id(exc))
            unique.append(exc)
    if len(unique) == len(group.exceptions):
        return group
    return group.derive(unique)


@asynccontextmanager
async def open_nursery(
    *, backend: BackendName | None = None, config: Config | None = None
) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery: ``backend`` ``'subint'`` (default) or ``'trio'``; ``config``
    ``'isolated'`` (default) or ``'legacy'`` for subinterpreter actors."""
    chosen_backend = check_backend(backend or current_spawn_backend())
    chosen_config = check_config(config or current_config())
    nursery: ActorNursery | None = None
    # The watch spans the teardown too: a second Ctrl-C must be heard while actors stop.
    with _interrupt.ctrl_c_cancels() as watch:
        try:
            with watch.scope:
                async with trio.open_nursery() as tasks:
                    nursery = ActorNursery(tasks, chosen_backend, chosen_config)
                    watch.count_actors = lambda: len(nursery._portals) if nursery is not None else 0
                    yield nursery
                    nursery._closing.set()
        except BaseExceptionGroup as group:
            unique = _without_duplicates(group)
            if unique is group:
                raise
            raise unique from None
        finally:
            if watch.interrupted:
                _interrupt.report_abandoned(nursery._abandoned if nursery is not None else [])
                # Ctrl-C outranks whatever the block raised; that stays attached as the cause,
                # unless it is only the cancellation Ctrl-C itself caused.
                raise KeyboardInterrupt from _interrupt.beyond_cancellation(sys.exception())
