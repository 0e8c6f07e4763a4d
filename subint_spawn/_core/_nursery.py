"""Actor nurseries: spawn actors, supervise them, and never let one outlive the block.

The spawn path, top to bottom: ``start_actor``/``run_in_actor`` check their arguments and
make an :class:`_ActorSpec` (nothing has started if that fails); the actor's supervisor
(:meth:`ActorNursery._supervise`) asks the backend for the actor, wraps its channel in an
:class:`ActorLink`, waits for ``ready``, and hands the caller a :class:`Portal`.  What the
supervisor knows about its actor (stop requested, stopped, the ``run_in_actor`` result, the
channel's end) is in a :class:`_Supervised` record that only the nursery writes; the portal
asks it through the :class:`Supervision` protocol.

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
  :class:`RemoteActorError` in the nursery, which cancels every sibling (one-cancels-all).
  One error leaves the block as itself, as tractor users write their handlers; several at
  once leave as the exception group trio's nursery made of them.
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
from ._funcref import is_async_generator_function, main_module_ref, ref_of
from ._names import BackendName, Config, check_backend, check_config
from ._once import Once
from ._portal import ActorLink, Portal

__all__ = ["ActorNursery", "open_nursery"]

#: How long an actor gets to honour an IPC ``stop`` before the backend's hard stop.
CANCEL_GRACE = 0.2
#: How long an actor gets from spawn to ``ready`` (importing its modules included), unless
#: ``open_nursery``/``start_actor`` are given a ``startup_timeout``.
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class _ActorSpec:
    """Everything the supervisor needs to spawn one actor, checked before anything starts."""

    name: str
    enable_modules: list[str]
    backend: BackendName
    config: Config
    startup_timeout: float
    #: ``(module, qualname, kwargs)`` of a ``run_in_actor`` function.
    main: tuple[str, str, dict[str, Any]] | None = None


class _Supervised:
    """The supervisor's record of one actor.  The nursery writes it; the portal asks it
    (it is the portal's :class:`Supervision`)."""

    def __init__(self, spec: _ActorSpec) -> None:
        self.spec = spec
        self.stop_requested = trio.Event()
        self.stop_reason = ""  # why, for a context that was open on the actor
        self.stopped = trio.Event()
        self.channel_done = trio.Event()
        self.outcome = Once()  # of the run_in_actor function

    def request_stop(self, why: str) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason = why
            self.stop_requested.set()

    async def stop(self) -> None:
        self.request_stop("portal.cancel_actor()")
        await self.stopped.wait()

    async def result(self) -> Any:
        if self.spec.main is None:
            # Failing at once, not tractor's warning plus a NoResult sentinel: a sentinel
            # flows on into the caller's code, and the mistake is known right here.
            raise RuntimeError(
                f"actor {self.spec.name!r} was started with start_actor(): it runs no function "
                "of its own, so it has no result to wait for; call a function in it with "
                "`await portal.run(fn, ...)`, or start it with `an.run_in_actor(fn, ...)`"
            )
        await self.outcome.done.wait()
        return self.outcome.unwrap()


async def _first(*waiters: Callable[[], Awaitable[object]]) -> int:
    """Run the waiters concurrently; return the index of the first to finish."""
    winner: list[int] = []
    async with trio.open_nursery() as race:
        for index, waiter in enumerate(waiters):

            async def run(
                index: int = index, waiter: Callable[[], Awaitable[object]] = waiter
            ) -> None:
                await waiter()
                if not winner:
                    winner.append(index)
                race.cancel_scope.cancel()

            race.start_soon(run)
    return winner[0]


class ActorNursery:
    """Spawns actors and owns them: none outlives the ``open_nursery`` block."""

    def __init__(
        self, tasks: trio.Nursery, backend: BackendName, config: Config, startup_timeout: float
    ) -> None:
        self._tasks = tasks
        self._backend = backend
        self._config = config
        self._startup_timeout = startup_timeout
        self._running: list[_Supervised] = []  # actors that said ready
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
        startup_timeout: float | None = None,
    ) -> Portal:
        """Start a long-lived actor that serves ``portal.run`` calls until it is stopped."""
        spec = self._spec(name, enable_modules, backend, config, startup_timeout)
        portal: Portal = await self._tasks.start(self._supervise, _Supervised(spec))
        return portal

    async def run_in_actor(
        self,
        fn: Callable[..., Any],
        /,
        *,
        name: str | None = None,
        enable_modules: Sequence[str] = (),
        backend: BackendName | None = None,
        config: Config | None = None,
        **kwargs: Any,
    ) -> Portal:
        """Start an actor that runs ``fn(**kwargs)`` once; ``portal.wait_for_result()`` gets it.

        ``name``, ``enable_modules``, ``backend`` and ``config`` are this method's own; they
        are never passed to ``fn``.
        """
        if is_async_generator_function(fn):
            raise TypeError(
                f"{fn.__qualname__} is an async generator function: run_in_actor() would only "
                "create the generator; start an actor with `an.start_actor(...)` and iterate it "
                f"with `async with portal.open_stream_from({fn.__qualname__}, ...) as stream`"
            )
        module, qualname = ref_of(fn)
        spec = self._spec(
            qualname if name is None else name,
            enable_modules,
            backend,
            config,
            None,
            main=(module, qualname, kwargs),
        )
        portal: Portal = await self._tasks.start(self._supervise, _Supervised(spec))
        return portal

    async def cancel(self) -> None:
        """Stop every actor of this nursery (gracefully, then by force) and wait until all are gone.

        Returns within about ``CANCEL_GRACE`` plus the backend's kill bound even when actors
        are stuck; the block itself goes on.
        """
        running = list(self._running)
        for record in running:
            record.request_stop("an.cancel()")
        for record in running:
            await record.stopped.wait()

    def _spec(
        self,
        name: object,
        enable_modules: object,
        backend: str | None,
        config: str | None,
        startup_timeout: float | None,
        *,
        main: tuple[str, str, dict[str, Any]] | None = None,
    ) -> _ActorSpec:
        """The checked spec of one actor: a bad argument fails here, before anything starts."""
        base = _checked_name(name)
        modules = _checked_modules(enable_modules)
        if main is not None:
            modules.insert(0, main[0])  # imported at startup: an import error is a startup error
        timeout = self._startup_timeout if startup_timeout is None else startup_timeout
        spec = _ActorSpec(
            name=base,
            enable_modules=modules,
            backend=check_backend(backend or self._backend),
            config=check_config(config or self._config),
            startup_timeout=_checked_timeout(timeout),
            main=main,
        )
        count = self._names.get(base, 0)
        self._names[base] = count + 1
        if count:
            spec = replace(spec, name=f"{base}-{count}")
        return spec

    # -- supervision -------------------------------------------------------------------------

    async def _supervise(
        self, record: _Supervised, task_status: trio.TaskStatus[Portal] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Spawn the actor, hand out its portal once it is ready, serve its life, tear it down."""
        spec = record.spec
        backend = _backends.get(spec.backend)
        handle = await backend.spawn(spec.name, spec.enable_modules, spec.config)
        link = ActorLink(handle.channel, spec.name)
        self._tasks.start_soon(self._serve_link, record, link)
        crashed = False
        started = False
        try:
            await _wait_ready(link, spec)
            handle.ready()
            self._running.append(record)
            started = True
            task_status.started(Portal(link, record))
            if spec.main is not None:
                crashed = await self._run_main(record, link, spec.main)
            else:
                crashed = await self._serve_until_stopped(record)
        except ChannelClosed:
            crashed = True  # it died before it was ready; the reap below says why
        finally:
            reason = await self._teardown(handle, link, record)
            if crashed:
                # wait_for_result and the nursery get the same error object, reported once.
                error = _crash_error(spec.name, reason, link, startup=not started)
                record.outcome.set(error=error)
            record.outcome.set(error=ChannelClosed(f"actor {spec.name!r} ended without a result"))
            record.stopped.set()
        if crashed:
            raise error

    async def _serve_link(self, record: _Supervised, link: ActorLink) -> None:
        await link.serve()
        record.channel_done.set()

    async def _run_main(
        self, record: _Supervised, link: ActorLink, main: tuple[str, str, dict[str, Any]]
    ) -> bool:
        """Run the actor's function; True if the actor died under it (a crash)."""
        outcome: list[Any] = []

        async def call() -> None:
            try:
                outcome.append(("value", await link.call(*main)))
            except RemoteActorError as exc:
                outcome.append(("error", exc))
            except ChannelClosed:
                outcome.append(("crashed", None))

        await _first(call, record.stop_requested.wait)
        if not outcome:
            record.outcome.set(error=ChannelClosed(f"actor {record.spec.name!r} was cancelled"))
            return False
        kind, payload = outcome[0]
        if kind == "crashed":
            return True
        if kind == "value":
            record.outcome.set(payload)
            return False
        record.outcome.set(error=payload)
        raise payload  # one-cancels-all: its siblings and the block are cancelled

    async def _serve_until_stopped(self, record: _Supervised) -> bool:
        """Until asked to stop (True if the actor went away by itself first: a crash)."""
        await _first(record.stop_requested.wait, record.channel_done.wait, self._closing.wait)
        return (
            record.channel_done.is_set()
            and not record.stop_requested.is_set()
            and not self._closing.is_set()
        )

    async def _teardown(
        self, handle: ActorHandle, link: ActorLink, record: _Supervised
    ) -> BaseException | None:
        """Stop the actor, gracefully then by force, and reap it.  Shielded and bounded."""
        name = record.spec.name
        with trio.CancelScope(shield=True):
            try:
                if not handle.exited:
                    link.stopping(self._why_stopped(record))
                    with trio.move_on_after(CANCEL_GRACE):
                        await link.send_stop()
                        await handle.wait_exited()
                if not handle.exited and await handle.hard_stop() == "abandoned":
                    self._abandoned.append((name, handle.where))
                return await handle.reap()
            finally:
                link.close(ChannelClosed(f"actor {name!r} was stopped"))

    def _why_stopped(self, record: _Supervised) -> str:
        if record.stop_reason:
            return record.stop_reason
        if record.outcome.done.is_set():
            return "its function returned"
        if self._closing.is_set():
            return "the nursery's block ended"
        return "its nursery was cancelled"


async def _wait_ready(link: ActorLink, spec: _ActorSpec) -> None:
    with trio.move_on_after(spec.startup_timeout) as startup:
        await link.wait_ready()
    if startup.cancelled_caught:
        raise ActorStartupError(
            "TimeoutError",
            f"actor did not become ready within {spec.startup_timeout} s",
            "",
            where=spec.name,
        )


def _checked_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"an actor's name must be a str, got {type(name).__name__} {name!r}: "
            "pass a name like start_actor('worker')"
        )
    if not name.strip():
        raise ValueError(
            f"an actor's name must not be empty, got {name!r}: pass a name like 'worker'"
        )
    return name


def _checked_modules(enable_modules: object) -> list[str]:
    if isinstance(enable_modules, (str, bytes)):
        raise TypeError(
            f"enable_modules must be a list of module names, not the single string "
            f"{enable_modules!r}: write enable_modules=[{enable_modules!r}]"
        )
    try:
        modules = list(enable_modules)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"enable_modules must be a list of module names, got {enable_modules!r}"
        ) from None
    for index, module in enumerate(modules):
        if not isinstance(module, str) or not module:
            raise TypeError(
                f"enable_modules[{index}] must be a module name (a non-empty str), got {module!r}"
            )
        if module == "__main__":
            modules[index] = main_module_ref()  # the parent's main module, as the actor finds it
    return modules


def _checked_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"startup_timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _crash_error(
    name: str, reason: BaseException | None, link: ActorLink, *, startup: bool
) -> RemoteActorError:
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
    closed = link.closed_error
    detail = f": {closed}" if closed is not None else ""
    error = cls("ActorExited", f"actor ended unexpectedly{detail}", "", where=name)
    error.__cause__ = closed
    return error


def _as_raised(group: BaseExceptionGroup[Any]) -> BaseException:
    """What the block raises for the exception group its trio nursery raised.

    The same error can reach the group twice (``wait_for_result`` raises it in the body --
    perhaps inside a nursery of the body's own -- while the actor's supervisor raises it for
    one-cancels-all): it counts once.  A group of one error is that error, as tractor users
    write their handlers (``except RemoteActorError``); several at once stay a group, since
    none of them is *the* error.
    """
    leaves = _leaves(group)
    if all(leaf is leaves[0] for leaf in leaves):
        return leaves[0]
    seen: set[int] = set()
    unique = []
    for exc in group.exceptions:
        if id(exc) not in seen:
            seen.add(id(exc))
            unique.append(exc)
    if len(unique) == 1:
        return unique[0]
    if len(unique) == len(group.exceptions):
        return group
    return group.derive(unique)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _require_trio() -> None:
    """A clear error for the commonest wrong setting: no trio, or another event loop."""
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        pass
    else:
        return
    asyncio = sys.modules.get("asyncio")
    under_asyncio = False
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
            under_asyncio = True
        except RuntimeError:
            pass
    where = "under asyncio" if under_asyncio else "outside trio"
    raise RuntimeError(
        f"subint_spawn runs under trio: open_nursery() was entered {where}; run the code that "
        "uses it with trio.run(main)"
    )


@asynccontextmanager
async def open_nursery(
    *,
    backend: BackendName | None = None,
    config: Config | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery: ``backend`` ``'subint'`` (default) or ``'trio'``; ``config``
    ``'isolated'`` (default) or ``'legacy'`` for subinterpreter actors; ``startup_timeout``
    seconds for each actor to become ready."""
    _require_trio()
    chosen_backend = check_backend(backend or current_spawn_backend())
    chosen_config = check_config(config or current_config())
    timeout = _checked_timeout(startup_timeout)
    nursery: ActorNursery | None = None
    error: BaseException | None = None
    # The watch spans the teardown too: a second Ctrl-C must be heard while actors stop.
    with _interrupt.ctrl_c_cancels() as watch:
        try:
            with watch.scope:
                async with trio.open_nursery() as tasks:
                    nursery = ActorNursery(tasks, chosen_backend, chosen_config, timeout)
                    watch.count_actors = lambda: len(nursery._running) if nursery is not None else 0
                    yield nursery
                    nursery._closing.set()
        except BaseExceptionGroup as group:
            error = _as_raised(group)
        finally:
            if watch.interrupted:
                _interrupt.report_abandoned(nursery._abandoned if nursery is not None else [])
                # Ctrl-C outranks whatever the block raised; that stays attached as the cause,
                # unless it is only the cancellation Ctrl-C itself caused.
                raised = error if error is not None else sys.exception()
                raise KeyboardInterrupt from _interrupt.beyond_cancellation(raised)
    if error is not None:
        # Raised here, outside the except clause, so the group it came out of does not become
        # its __context__.
        raise error
