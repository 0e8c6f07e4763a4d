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
* ``DUMP``   -- (with a request id and a time budget) format every thread's stack of this
  interpreter, ask this interpreter's own live actors for theirs, and send it all back as
  ``DUMP_REPLY`` records (``faulthandler`` cannot load in isolated interpreters).  A helper
  thread does the work, so the watchdog stays free to obey a KILL meanwhile.  The record
  format is in :mod:`._stacks`.

:func:`run_guarded` is the only entry point; the parent runs it with ``_interpreters.call`` on a
dedicated thread.  It never raises: the outcome comes back as a small tuple of plain data, so a
failure in user code can never be confused with a failure of the driver itself.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

CANCEL = b"c"
KILL = b"k"
DUMP = b"d"
#: Sent *to the parent* when the watchdog stops: the guest's function is over (returned, raised
#: or was killed) and it is only cleaning up now; no injection can land any more.
CLEANING_UP = b"u"

# How long the guest waits for threads it started (trio's workers, the watchdog) to finish.
THREAD_JOIN_BOUND = 1.0
# How long the watchdog, on its way out, tries to get CLEANING_UP into a full control socket.
_NOTICE_BOUND = 1.0
# Beyond its budget, how long a dump helper may take (formatting and sending) before the
# exiting watchdog stops waiting for it.
_DUMP_HELPER_SLACK = 2.0

Outcome = tuple[str, Any, tuple[tuple[str, bool], ...]]
"""``(status, payload, leftover_threads)``; status is ok, error, cancelled or killed."""


class KilledByWatchdog(BaseException):
    """Injected into the runner thread by the watchdog on the parent's KILL command."""


def _set_async_exc(ident: int, exc_type: type[BaseException] | None) -> int:
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type) if exc_type is not None else None
    )


class _Guard:
    """State shared by the runner thread and the watchdog thread of one interpreter.

    The runner holds no lock the watchdog also takes: an injected exception can fire at any
    bytecode boundary of the runner, including right after a lock was acquired, and would
    leave it held (measured: disarm deadlocked or let an injection escape in 7 of 60 runs
    when it used one).  Instead, the watchdog is the only thread that injects, and
    *disarming* is stopping the watchdog, which clears any pending injection as it exits.
    """

    def __init__(self, control_fd: int) -> None:
        from . import _stacks  # loaded with the package already; bound here, not at exit time

        self._stacks = _stacks
        # Our own duplicate: the parent's socket object may be closed under us (a killed
        # parent interpreter is finalized while this one still runs), and a bare fd number
        # can then be reused for anything else in the process.
        self.control = socket.socket(fileno=os.dup(control_fd))
        self.control_fd = self.control.fileno()
        self.runner_ident = threading.get_ident()
        self.cancel_requested = False
        self.kill_requested = False
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
            self._stacks.send_record(self.control, CLEANING_UP, time.monotonic() + _NOTICE_BOUND)
            for dumper, done_by in self._dumpers:
                dumper.join(max(0.0, done_by - time.monotonic()))
            os.close(self._stop_read)

    def _obey(self, command: bytes) -> None:
        if command == CANCEL:
            self.cancel_requested = True
            state = self.trio_state  # read after the store above: see trio_root
            if state is not None:
                _cancel_via_token(*state)
        elif command == KILL:
            self.kill_requested = True
            _set_async_exc(self.runner_ident, KilledByWatchdog)

    def _start_dump(self, record: bytes) -> None:
        request = self._stacks.parse_dump_request(record)
        if request is None:
            return
        request_id, budget = request
        self._dumpers = [(t, done_by) for t, done_by in self._dumpers if t.is_alive()]
        dumper = threading.Thread(target=self._dump, args=(request_id, budget), name="subint-stack-dump")
        self._dumpers.append((dumper, time.monotonic() + budget + _DUMP_HELPER_SLACK))
        dumper.start()

    def _dump(self, request_id: int, budget: float) -> None:
        assert self.watchdog.ident is not None
        try:
            text = self._stacks.render_here(
                budget,
                labels={self.runner_ident: "runner"},
                skip={self.watchdog.ident, threading.get_ident()},
            )
        except Exception as exc:  # the parent must hear about it, not wait out its timeout
            text = f"(formatting this interpreter's stacks failed: {exc!r})\n"
        self._stacks.send_dump_reply(self.control, request_id, text, time.monotonic() + 1.0)

    # -- runner thread -----------------------------------------------------------------------

    async def trio_root(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import trio

        with trio.CancelScope() as scope:
            # Store, then load; the watchdog stores cancel_requested, then loads trio_state.
            # Both threads run under this interpreter's GIL, so at least one of them sees the
            # other's store and the cancel is never lost (both acting is harmless).
            self.trio_state = (trio.lowlevel.current_trio_token(), scope)
            if self.cancel_requested:  # the CANCEL arrived before trio was up
                scope.cancel()
            return await fn(*args, **kwargs)
        return None

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


def _cancel_via_token(token: Any, scope: Any) -> None:
    import trio

    try:
        token.run_sync_soon(scope.cancel)
    except trio.RunFinishedError:
        pass  # the guest's trio loop already ended: nothing left to cancel


def pack_error(exc: BaseException) -> tuple[str, str, str, bytes | None]:
    """An exception as plain data: type name, message, traceback text, pickled object if possible."""
    import traceback

    cls = type(exc)
    type_name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    text = "".join(traceback.format_exception(exc))
    try:
        pickled: bytes | None = pickle.dumps(exc)
    except Exception:
        pickled = None
    return type_name, str(exc), text, pickled


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, kind):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in exc.exceptions)
    return False


def _drain_trio_workers() -> None:
    """Stop trio's idle worker threads, which would otherwise idle on after ``trio.run``.

    They are daemon threads blocked in a 10 s timed wait.  Destroying the interpreter under
    them does not end them: when they wake they can never re-attach to the destroyed
    interpreter, so each becomes a dead OS thread for the life of the process (measured).
    Handing each idle worker a no-op job with the idle timeout at zero makes it exit at once.
    """
    cache_module = sys.modules.get("trio._core._thread_cache")
    cache = getattr(cache_module, "THREAD_CACHE", None)
    idle = getattr(cache, "_idle_workers", None)
    if cache_module is None or not isinstance(idle, dict):
        return
    cache_module.IDLE_TIMEOUT = 0  # type: ignore[attr-defined]
    while idle:
        try:
            worker, _ = idle.popitem()
        except KeyError:
            break
        worker._job = (_noop, _noop, None)
        worker._worker_lock.release()


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


def _reap_orphaned_interpreters() -> None:
    """Interpreters this one spawned (an actor's children) must not outlive it."""
    driver = sys.modules.get("subint_spawn._core._driver")
    if driver is not None:
        driver.reap_orphans_blocking()


def _noop(*_: object) -> None:
    return None


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
    control_fd: int,
    fn_ref: tuple[str, str],
    arguments: bytes,
) -> Outcome:
    """Run the function named ``fn_ref`` in this interpreter under a watchdog.

    ``arguments`` is ``pickle.dumps((args, kwargs))``, loaded here rather than by
    ``_interpreters.call`` so that a failure to load them is reported like any other.  An ``async def`` function runs under ``trio.run`` inside a root
    cancel scope the watchdog can cancel; a plain function is simply called (only the KILL step
    can stop it).  Returns the outcome as plain data and never raises.
    """
    from ._funcref import is_async_function, resolve
    from ._guards import actor_label, install_process_guards

    install_process_guards(actor_label(fn_ref, arguments))
    guard = _Guard(control_fd)
    guard.watchdog.start()
    status: str
    payload: Any
    fn: Any = fn_ref
    try:
        try:
            fn = resolve(fn_ref)
            args, kwargs = pickle.loads(arguments)
            if is_async_function(fn):
                import trio

                value = trio.run(guard.trio_root, fn, args, kwargs)
            else:
                value = fn(*args, **kwargs)
        except BaseException as exc:
            guard.disarm()
            if guard.kill_requested and _contains(exc, KilledByWatchdog):
                import traceback

                status, payload = "killed", "".join(traceback.format_exception(exc))
                _quiet_dead_loop_leftovers()
            else:
                status, payload = "error", pack_error(exc)
        else:
            guard.disarm()
            if guard.trio_state is not None and guard.trio_state[1].cancelled_caught:
                status, payload = "cancelled", None
            else:
                try:
                    status, payload = "ok", pickle.dumps(value)
                except Exception as exc:
                    error = TypeError(
                        f"the result of {getattr(fn, '__qualname__', fn)!r} cannot cross the "
                        f"interpreter boundary: {exc}. Return picklable data instead."
                    )
                    status, payload = "error", pack_error(error)
    finally:
        guard.disarm()
        guard.close()
        _drain_trio_workers()
        _reap_orphaned_interpreters()
        leftovers = _join_leftover_threads(guard)
    return status, payload, leftovers
