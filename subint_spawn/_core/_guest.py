"""The half of the driver that runs *inside* a subinterpreter.

The parent cannot reach into a running subinterpreter: ``_interpreters.exec``/``call`` refuse an
interpreter that is already running, and ``PyThreadState_SetAsyncExc`` only finds thread states
of the interpreter it is called from (called from the main interpreter it hits the wrong thread
state).  So every interpreter we start carries its own **watchdog** thread, which listens on one end
of a control socket pair whose other end the parent holds, and acts from inside:

* ``CANCEL`` -- cooperative: cancel the guest's root trio cancel scope through its own trio token.
* ``KILL``   -- inject :class:`KilledByWatchdog` into the runner thread.  The parent only sends
  this after the cooperative step had its grace period: injected while the runner is inside
  trio's scheduler (rather than user code) it can leave trio half torn down.
* ``DUMP``   -- format every thread's stack of this interpreter, ask this interpreter's own live
  actors for theirs, and send it all back (``faulthandler`` cannot load in isolated
  interpreters).  A helper thread does the work, so the watchdog stays free to obey a KILL.

The commands and their framing are in :mod:`._control`.

:func:`run_guarded` is the only entry point; the parent runs it with ``_interpreters.call`` on a
dedicated thread.  It never raises: the outcome comes back as an :class:`Outcome` of plain data,
so a failure in user code can never be confused with a failure of the driver itself.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import pickle
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from ._control import (
    CANCEL,
    CLEANING_UP,
    DUMP,
    KILL,
    KilledByWatchdog,
    parse_dump_request,
    send_dump_reply,
    send_record,
)
from ._errors import describe
from ._guest_hooks import run_guest_exit_hooks, run_kill_wake_hooks
from ._stacks import render_here
from ._trio_private import stop_idle_workers

# How long the guest waits for threads it started (trio's workers, the watchdog) to finish.
THREAD_JOIN_BOUND = 1.0
# How long the watchdog, on its way out, tries to get CLEANING_UP into a full control socket.
_NOTICE_BOUND = 1.0
# After an injected kill has landed, how long KILL only wakes the loop instead of injecting
# again.  The first exception has usually stopped the code; what runs next is the guest's own
# unwinding (trio cancelling tasks, actors closing what they own), and a second exception
# landing in there -- inside trio's scheduler, or in a callback that wakes a task when a
# thread hand-off ends -- can lose that wake-up and leave the unwinding waiting forever
# (ai/kill-lands-once.md).  Code that swallows the exception is injected again after this,
# still well inside the parent's kill bound.
REINJECT_AFTER = 0.15
# Beyond its budget, how long a dump helper may take (formatting and sending) before the
# exiting watchdog stops waiting for it.
_DUMP_HELPER_SLACK = 2.0

Status = Literal["ok", "error", "cancelled", "killed"]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How the guest's function ended, as plain data the parent can load.

    ``payload``: for ``ok`` the pickled return value; for ``error`` an
    :data:`._errors.ErrorInfo`; for ``killed`` the text of the injected exception's traceback;
    for ``cancelled`` nothing.  ``leftover_threads``: ``(name, daemon)`` of every thread the
    function left running past :data:`THREAD_JOIN_BOUND`.
    """

    status: Status
    payload: Any = None
    leftover_threads: tuple[tuple[str, bool], ...] = ()


def _set_async_exc(ident: int, exc_type: type[BaseException] | None) -> int:
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type) if exc_type is not None else None
    )


class _InjectedKill(KilledByWatchdog):
    """What KILL injects: raised in the runner thread, so creating it is the moment the kill
    lands, and it records that moment for the watchdog (see :data:`REINJECT_AFTER`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        guard = _current
        if guard is not None:
            guard.kill_landed_at = time.monotonic()


class _Guard:
    """State shared by the runner thread and the watchdog thread of one interpreter.

    The runner holds no lock the watchdog also takes: an injected exception can fire at any
    bytecode boundary of the runner, including right after a lock was acquired, and would
    leave it held (measured: disarm deadlocked or let an injection escape in 7 of 60 runs
    when it used one).  Instead, the watchdog is the only thread that injects, and
    *disarming* is stopping the watchdog, which clears any pending injection as it exits.
    """

    def __init__(self, control_fd: int) -> None:
        # Our own duplicate: the parent's socket object may be closed under us (a killed
        # parent interpreter is finalized while this one still runs), and a bare fd number
        # can then be reused for anything else in the process.
        self.control = socket.socket(fileno=os.dup(control_fd))
        self.control_fd = self.control.fileno()
        self.runner_ident = threading.get_ident()
        self.cancel_requested = False
        self.kill_requested = False
        #: When an injected kill last landed in the runner (written there, read by the watchdog).
        self.kill_landed_at: float | None = None
        # (trio token, root cancel scope) once the guest's trio loop is up; one store, so the
        # watchdog sees both or neither.
        self.trio_state: tuple[Any, Any] | None = None
        self._stop_read, self._stop_write = os.pipe()
        self.watchdog = threading.Thread(target=self._watch, name="subint-watchdog")
        # Dump helpers still running, with the time by which each should be done.
        self._dumpers: list[tuple[threading.Thread, float]] = []

    # -- watchdog thread -------------------------------------------------------------------

    def _watch(self) -> None:
        # poll, not select: select() cannot watch fds >= FD_SETSIZE (1024), and a process
        # with ~100 actors has passed that (each holds a few fds); the watchdog then died and
        # its actor could no longer be cancelled or killed.
        poller = select.poll()
        poller.register(self.control_fd, select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._stop_read in ready:
                    return
                record = self.control.recv(64)
                if not record:  # parent closed its end: nothing more can arrive
                    return
                if record[:1] == DUMP:  # one record per command on the parent's socket
                    self._start_dump(record)
                    continue
                for command in record:  # a stream socket (tests) may run commands together
                    self._obey(bytes((command,)))
        finally:
            # Leaving = disarming: nothing can inject after this, so clear what is pending,
            # and tell the parent to stop escalating and give the cleanup its time.
            _set_async_exc(self.runner_ident, None)
            send_record(self.control, CLEANING_UP, time.monotonic() + _NOTICE_BOUND)
            for dumper, done_by in self._dumpers:
                dumper.join(max(0.0, done_by - time.monotonic()))
            os.close(self._stop_read)

    def _obey(self, command: bytes) -> None:
        if command == CANCEL:
            self.cancel_requested = True
            state = self.trio_state  # read after the store above: see announce
            if state is not None:
                _cancel_via_token(*state)
        elif command == KILL:
            self.kill_requested = True
            landed = self.kill_landed_at
            if landed is None or time.monotonic() - landed >= REINJECT_AFTER:
                _set_async_exc(self.runner_ident, _InjectedKill)
            state = self.trio_state
            if state is not None:
                # An injected exception lands only when the runner runs bytecode; a trio loop
                # with nothing to do waits in epoll (in C) until its next deadline, and would
                # be abandoned as stuck though it is not.  A no-op through its token wakes it.
                _wake_via_token(state[0])

    def _start_dump(self, record: bytes) -> None:
        request = parse_dump_request(record)
        if request is None:
            return
        request_id, budget = request
        self._dumpers = [(t, done_by) for t, done_by in self._dumpers if t.is_alive()]
        dumper = threading.Thread(
            target=self._dump, args=(request_id, budget), name="subint-stack-dump"
        )
        self._dumpers.append((dumper, time.monotonic() + budget + _DUMP_HELPER_SLACK))
        dumper.start()

    def _dump(self, request_id: int, budget: float) -> None:
        assert self.watchdog.ident is not None
        try:
            text = render_here(
                budget,
                labels={self.runner_ident: "runner"},
                skip={self.watchdog.ident, threading.get_ident()},
            )
        except Exception as exc:  # the parent must hear about it, not wait out its timeout
            text = f"(formatting this interpreter's stacks failed: {exc!r})\n"
        send_dump_reply(self.control, request_id, text, time.monotonic() + 1.0)

    # -- runner thread -----------------------------------------------------------------------

    async def trio_root(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        import trio

        with trio.CancelScope() as scope:
            self.announce(trio.lowlevel.current_trio_token(), scope)
            return await fn(*args, **kwargs)
        return None

    def announce(self, token: Any, target: CancelTarget) -> None:
        """The guest's trio loop is up: CANCEL now calls ``target.cancel()`` through ``token``.

        Store, then load; the watchdog stores ``cancel_requested``, then loads ``trio_state``.
        Both threads run under this interpreter's GIL, so at least one of them sees the other's
        store and the cancel is never lost (both acting is harmless).
        """
        self.trio_state = (token, target)
        if self.cancel_requested:  # the CANCEL arrived before trio was up
            target.cancel()

    def disarm(self) -> None:
        """Stop the watchdog; once this returns, no injected exception can land any more.

        An injection may fire anywhere in here before the watchdog is gone; it is caught and we
        go round again.  After the join returns nothing is pending (the watchdog cleared it on
        its way out) and nothing is left to inject.  ``Thread.join`` waits in C, and writing
        to the stop pipe twice is harmless.
        """
        while True:
            try:
                if self.watchdog.is_alive():
                    os.write(self._stop_write, b"x")
                    self.watchdog.join()
                return
            except KilledByWatchdog:
                continue

    def close(self) -> None:
        """After :meth:`disarm` (the watchdog and its dump helpers no longer use the fds)."""
        os.close(self._stop_write)
        self.control.close()


def _cancel_via_token(token: Any, target: CancelTarget) -> None:
    import trio

    try:
        token.run_sync_soon(target.cancel)
    except trio.RunFinishedError:
        pass  # the guest's trio loop already ended: nothing left to cancel


def _wake_via_token(token: Any) -> None:
    import trio

    try:
        token.run_sync_soon(run_kill_wake_hooks)
    except trio.RunFinishedError, OSError:
        pass  # the loop is gone (or died): nothing left to wake


class CancelTarget(Protocol):
    """What the driver's cooperative cancel cancels: a trio cancel scope, or a stand-in that
    runs a runtime's own cancel (see :func:`announce_trio_loop`).  ``cancelled_caught`` is read
    once the function has returned: true if it ended because it was asked to."""

    def cancel(self) -> None: ...

    @property
    def cancelled_caught(self) -> bool: ...


#: The guard of the function this interpreter's guest runs (one per interpreter).
_current: _Guard | None = None


def announce_trio_loop(target: CancelTarget) -> bool:
    """For guest code that runs its own trio loop: the driver's cooperative cancel (and the
    kill's wake-up) now reach this loop, and call ``target.cancel()`` in it.

    Call it from inside that loop, on the thread the guest function was started on.  A plain
    loop can pass a cancel scope around its work (that is what :func:`runs_trio` does); a
    runtime with its own notion of stopping passes something whose ``cancel()`` starts that.
    False when this is not a guest of the driver (nothing to announce to).
    """
    import trio

    guard = _current
    if guard is None or threading.get_ident() != guard.runner_ident:
        return False
    guard.announce(trio.lowlevel.current_trio_token(), target)
    return True


def kill_requested() -> bool:
    """The driver has gone on to injecting exceptions into this guest (its cooperative step
    was not honoured in time): a ``CancelTarget`` may choose to do nothing more then."""
    return _current is not None and _current.kill_requested


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in exc.exceptions)
    return False


def _quiet_dead_loop_leftovers() -> None:
    """After a kill, trio's loop here died mid-flight; the coroutines it was running are
    collected later, outside any loop, and their ``finally`` blocks fail ("must be called from
    async context").  Those failures are consequences of the kill, not news: count them into
    one log line instead of a page of tracebacks each."""
    import logging

    count = 0

    def hook(unraisable: Any) -> None:
        nonlocal count
        count += 1
        if count == 1:
            logging.getLogger("subint_spawn.guest").info(
                "discarding coroutines of a killed trio loop (%s)", unraisable.exc_type.__name__
            )

    sys.unraisablehook = hook


def runs_trio[F: Callable[..., Any]](fn: F) -> F:
    """Mark a *synchronous* guest function that calls ``trio.run`` itself.

    The driver's cooperative cancel reaches a guest's root trio cancel scope.  For an ``async
    def`` function the guest runs ``trio.run`` and owns that scope; a marked sync function
    gets the same: the first ``trio.run`` it starts on the runner thread runs inside the
    guest's root scope.
    """
    fn.__subint_spawn_runs_trio__ = True  # type: ignore[attr-defined]
    return fn


def _route_trio_runs_through(guard: _Guard) -> None:
    """Make the runner thread's first ``trio.run`` run inside ``guard``'s root cancel scope.

    Only in this interpreter, whose ``trio`` module is its own, and only for the marked
    function's lifetime (the interpreter is destroyed after it).
    """
    import trio

    original = trio.run

    def run(async_fn: Callable[..., Any], *args: Any, **options: Any) -> Any:
        if threading.get_ident() != guard.runner_ident or guard.trio_state is not None:
            return original(async_fn, *args, **options)
        return original(guard.trio_root, async_fn, args, {}, **options)

    trio.run = run


def _join_leftover_threads(guard: _Guard) -> tuple[tuple[str, bool], ...]:
    """Join every thread the guest started; report those still alive after the bound.

    Skipped: the runner and the watchdog; dummy thread objects; and this interpreter's
    ``MainThread`` object, which stands for the OS thread that *created* the interpreter (a
    thread of the parent's), always looks alive, and cannot be joined from here.
    """
    skip = {threading.get_ident(), guard.watchdog.ident, threading.main_thread().ident}
    others = [
        t
        for t in threading.enumerate()
        if t.ident not in skip
        and t is not threading.main_thread()
        and not isinstance(t, threading._DummyThread)  # type: ignore[attr-defined]
    ]
    for thread in others:
        thread.join(THREAD_JOIN_BOUND)
    return tuple((t.name, t.daemon) for t in others if t.is_alive())


def run_guarded(
    control_fd: int, fn_ref: tuple[str, str], arguments: bytes, guard_label: str | None
) -> Outcome:
    """Run the function named ``fn_ref`` in this interpreter under a watchdog.

    ``arguments`` is ``pickle.dumps((args, kwargs))``, loaded here rather than by
    ``_interpreters.call`` so that a failure to load them is reported like any other.  An
    ``async def`` function runs under ``trio.run`` inside a root cancel scope the watchdog can
    cancel; a plain function is simply called (only the KILL step can stop it, unless it is
    marked with :func:`runs_trio`).  With ``guard_label``, the process guards go in first,
    naming it (see :mod:`._guards`).  Returns the outcome as plain data and never raises.
    """
    from ._funcref import is_async_function, resolve

    if guard_label is not None:
        from ._guards import install_process_guards

        install_process_guards(guard_label)
    global _current
    guard = _current = _Guard(control_fd)
    guard.watchdog.start()
    outcome: Outcome
    fn: Any = fn_ref
    try:
        try:
            fn = resolve(fn_ref)
            args, kwargs = pickle.loads(arguments)
            if is_async_function(fn):
                import trio

                value = trio.run(guard.trio_root, fn, args, kwargs)
            else:
                if getattr(fn, "__subint_spawn_runs_trio__", False):
                    _route_trio_runs_through(guard)
                value = fn(*args, **kwargs)
        except BaseException as exc:
            guard.disarm()
            if guard.kill_requested and _contains(exc, KilledByWatchdog):
                import traceback

                outcome = Outcome("killed", "".join(traceback.format_exception(exc)))
                _quiet_dead_loop_leftovers()
            else:
                outcome = Outcome("error", describe(exc, _qualname(fn), with_pickle=True))
        else:
            guard.disarm()
            if guard.trio_state is not None and guard.trio_state[1].cancelled_caught:
                outcome = Outcome("cancelled")
            else:
                try:
                    outcome = Outcome("ok", pickle.dumps(value))
                except Exception as exc:
                    error = TypeError(
                        f"the result of {_qualname(fn)} cannot cross the interpreter boundary: "
                        f"{exc}. Return picklable data instead."
                    )
                    outcome = Outcome("error", describe(error, _qualname(fn), with_pickle=True))
    finally:
        guard.disarm()
        guard.close()
        stop_idle_workers()
        run_guest_exit_hooks()
        leftovers = _join_leftover_threads(guard)
    return dataclasses.replace(outcome, leftover_threads=leftovers)


def _qualname(fn: Any) -> str:
    if isinstance(fn, tuple):
        return ".".join(fn)
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)!s}"
