"""Own one subinterpreter's life: boot it, run one function in it on a dedicated OS thread,
hear when it ends, kill it if asked, and destroy it -- never hanging the caller, never leaking.

This module is the one owner of that life.  The public :mod:`subint_spawn.driver`, the warm
pool (a cache of booted :class:`Subinterpreter` objects, :mod:`._pool`) and the orphan reaper
(:func:`reap_orphans_blocking`) are thin callers of what is here.

Life of a :class:`Subinterpreter`, which is one-shot (a used interpreter is destroyed, never
reused: its ``sys.modules`` and module state would leak into the next user)::

    boot (create + imports, on a thread)  ->  start(fn)  ->  fn ends | kill()  ->  reap

Why each piece is the way it is:

* **Every blocking step runs on a dedicated, non-cached thread** (:mod:`._handoff`): booting,
  running, destroying.  Running code in an interpreter leaves its thread state bound to the OS
  thread, so a recycled worker (trio's thread cache) would carry it into unrelated jobs; and
  destroying runs the interpreter's own finalizers.  The threads are daemons so a wedged one
  never blocks process exit.  Driving interpreters from a worker thread is also far cheaper
  than from the main thread (~20 us vs ~140 us per ``exec`` here).
* **Exit is signalled through the parent's trio token** from the thread's ``finally``.  If the
  parent's loop is already gone nobody will reap, so the thread reaps itself.
* **Join and destroy happen off the trio loop, bounded.**  ``destroy`` finalizes a whole
  interpreter (milliseconds) and blocks while any non-daemon thread lives in it, so it is only
  called once the guest reported that none does.
* **Kill escalates** (:func:`_escalation`, the inside half is :mod:`._guest`): cooperative
  cancel of the guest's root trio scope; after ``grace``, an exception injected into the runner
  thread, repeated until ``kill_bound``; a guest that says it is past its function gets
  ``cleanup_bound`` instead; then *abandon*: a loud warning, a census record, and the caller
  goes on.  The abandoned thread destroys its interpreter itself if it ever comes back out of
  C.  The same steps run from trio (:meth:`Subinterpreter.kill`) and, after a guest's own loop
  died, from plain blocking joins (:func:`reap_orphans_blocking`).
"""

from __future__ import annotations

import _interpreters
import atexit
import collections
import logging
import os
import pickle
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import trio

from .._exceptions import (
    AbandonedInterpreterWarning,
    BootstrapError,
    InterpreterKilled,
    RemoteError,
)
from . import _guest
from ._census import REGISTRY, AbandonedInterpreter, now
from ._control import CANCEL, KILL, ControlLink, control_socketpair
from ._errors import rebuild
from ._funcref import ref_of
from ._guest_hooks import at_guest_exit
from ._handoff import DedicatedThread
from ._names import CONFIGS, Config, check_config
from ._stacks import DumpTarget, register_dump_source

__all__ = [
    "BOOT_BOUND",
    "CONFIGS",
    "Config",
    "KillPolicy",
    "Subinterpreter",
    "Termination",
    "boot",
    "create",
    "drain_destroys",
    "interpreter_config",
    "open_subinterpreter",
    "reap_orphans_blocking",
]

log = logging.getLogger("subint_spawn.driver")

Termination = Literal["exited", "cancelled", "killed", "abandoned"]

#: A boot (create + imports) that takes longer than this is abandoned: census record, warning,
#: and its thread destroys the interpreter itself if it ever finishes.
BOOT_BOUND = 60.0
#: A destroy that takes longer than this is left to finish on its own thread (listed in the
#: census meanwhile); the caller goes on.
DESTROY_BOUND = 30.0
#: How many background destroys (see ``defer_destroy``) of each config run at once.
DESTROY_LIMITS: dict[Config, int] = {"isolated": max(1, os.cpu_count() or 1), "legacy": 1}
#: Niceness of background boots (Linux): warm-pool refills yield the cores to running actors
#: and the parent's loop.
BACKGROUND_NICENESS = 10

_SET_PATH = "import sys; sys.path[:] = _parent_path; del _parent_path"
_IMPORT = "import importlib as _il\nfor _m in _modules:\n    _il.import_module(_m)\ndel _il, _m, _modules\n"
# The same, with ctypes.util.find_library answering from the parent's results while the
# modules import: ``import trio`` looks up libpthread (to name its worker threads), and
# find_library runs ``ldconfig -p`` in a subprocess for that, ~2-4 ms per boot here.  The
# lookup's answer is the same for the whole process; the original function is back in place
# once the imports are done.
_IMPORT_WITH_LIBRARIES = """\
import ctypes.util as _cu, importlib as _il
_find, _known = _cu.find_library, dict(_libraries)
_cu.find_library = lambda name: _known[name] if name in _known else _find(name)
try:
    for _m in _modules:
        _il.import_module(_m)
finally:
    _cu.find_library = _find
del _cu, _il, _find, _known, _m, _modules, _libraries
"""
#: Top-level packages whose import runs ``import trio`` (see ``_IMPORT_WITH_LIBRARIES``).
_IMPORTS_TRIO = frozenset({"trio", "subint_spawn", "tractor"})
_known_libraries: dict[str, str | None] = {}
_known_libraries_lock = threading.Lock()


def _libraries_for_trio() -> tuple[tuple[str, str | None], ...]:
    """``find_library`` answers ``import trio`` asks for, looked up once per process (on the
    first boot's thread, not on the trio loop)."""
    with _known_libraries_lock:
        if not _known_libraries:
            import ctypes.util

            _known_libraries["pthread"] = ctypes.util.find_library("pthread")
        return tuple(_known_libraries.items())  # shareable across interpreters


@dataclass(frozen=True)
class KillPolicy:
    """How long each kill step gets before the next one.

    ``grace``: the cooperative cancel's window (an idle trio actor honours it in ~10 ms).
    ``kill_bound``: after the grace, how long injected exceptions are retried (every
    ``inject_every``) before the thread is abandoned.  ``join_bound``: how long to wait for a
    thread that already said it is done to actually end.  ``cleanup_bound``: how long a guest
    that reported it is past its function and cleaning up (stopping its own children, joining
    its threads) gets before it is abandoned; injections stop then, they could only hurt.
    """

    grace: float = 0.2
    kill_bound: float = 0.6
    inject_every: float = 0.05
    join_bound: float = 1.0
    cleanup_bound: float = 10.0


def interpreter_config(config: Config) -> Any:
    """The ``_interpreters`` config for our two named configs.

    ``isolated`` (own GIL) must allow daemon threads: trio's ``to_thread`` workers are daemons.
    ``legacy`` shares the main GIL and loads single-phase-init extensions (msgspec 0.23 and many
    other C extensions refuse to import in an isolated interpreter).
    """
    if check_config(config) == "isolated":
        return _interpreters.new_config("isolated", allow_daemon_threads=True)
    return _interpreters.new_config("legacy")


class Subinterpreter:
    """One booted subinterpreter and the one dedicated thread that runs a function in it.

    Make one with :func:`open_subinterpreter` (or :func:`create`, and then the caller must
    :meth:`aclose` it): it is killed and destroyed when the block exits however it exits.
    ``name`` labels its thread, stack dumps and errors; ``guard_process`` makes the guest
    refuse changes to process-wide state (:mod:`._guards`), as actors do; ``defer_destroy``
    lets a reap return once the function and its threads have ended, handing the destroy
    (tens of milliseconds of finalization) to this trio run's background destroyer.
    """

    def __init__(
        self,
        interpreter_id: int,
        config: Config,
        *,
        name: str = "interp",
        policy: KillPolicy | None = None,
        guard_process: bool = False,
        defer_destroy: bool = False,
    ) -> None:
        self.id = interpreter_id
        self.config = config
        self.name = name
        self.policy = policy or KillPolicy()
        self.guard_process = guard_process
        self.defer_destroy = defer_destroy
        # Created at start(): an idle (warm) interpreter holds no fds.
        self._link: ControlLink | None = None
        self._guest_control: Any = None
        self._runner: DedicatedThread | None = None
        # Set when the runner has finished, or when we abandoned it: either way nobody in this
        # trio loop has anything left to wait for.
        self._exited = trio.Event()
        self._outcome: _guest.Outcome | None = None
        self._failure: BaseException | None = None  # running anything in it failed
        self._reaped = False  # a reap has started (it may have been cut short)
        # Destroy exactly once, whichever thread gets there: the trio side, the runner thread
        # itself, a late destroyer, or the orphan reaper of a killed parent actor.
        self._destroy_lock = threading.Lock()
        self._destroyed = False
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"<Subinterpreter id={self.id} {self.config} {self.name!r}>"

    @property
    def thread_name(self) -> str:
        return f"subint-{self.id}-{self.name}"

    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._exited.is_set()

    @property
    def exited(self) -> bool:
        """The function ended, or the interpreter was abandoned (nothing more to wait for)."""
        return self._exited.is_set()

    @property
    def abandoned(self) -> bool:
        return self._runner is not None and self._runner.abandoned

    async def wait_exited(self) -> None:
        """Until :attr:`exited`; unlike :meth:`wait` this neither reaps nor raises."""
        await self._wait_exited()

    async def _wait_exited(self) -> None:
        if self._runner is None:
            await self._exited.wait()
        else:
            await self._runner.wait_done(self._exited)  # (a signal lost to a kill is repaired)

    # -- start ---------------------------------------------------------------------------------

    def start(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` in the interpreter on its own new thread; return at once.

        ``fn`` must be importable by name inside the interpreter (a module-level function);
        ``async def`` functions run under ``trio.run`` there.
        """
        if self._runner is not None:
            raise RuntimeError(f"{self!r} was already started; interpreters are one-shot")
        if self._destroyed:
            raise RuntimeError(f"{self!r} was already destroyed")
        fn_ref = ref_of(fn)
        try:
            arguments = pickle.dumps((args, kwargs))
        except Exception as exc:
            raise TypeError(
                f"arguments for {fn_ref[0]}.{fn_ref[1]} cannot cross into a subinterpreter: {exc}. "
                "Pass picklable values (plain data, or instances of module-level classes)"
            ) from exc
        parent_end, guest_end = control_socketpair()
        self._link, self._guest_control = ControlLink(parent_end), guest_end
        guard_label = self.name if self.guard_process else None
        call_args = (guest_end.fileno(), fn_ref, arguments, guard_label)
        runner = DedicatedThread(
            lambda: self._run(tuple(sys.path), call_args),
            name=self.thread_name,
            on_done=self._exited.set,
            orphaned=self._destroy,
        )
        self._runner = runner
        try:
            runner.start()
        except BaseException:
            self._runner = None
            raise

    def _run(self, parent_path: tuple[str, ...], call_args: tuple[Any, ...]) -> None:
        try:
            # sys.path again: a warm interpreter was booted with the path of that moment.
            excinfo = _interpreters.exec(self.id, _SET_PATH, {"_parent_path": parent_path})
            if excinfo is not None:
                self._failure = _excinfo_error(excinfo, f"setting sys.path in {self!r} failed")
                return
            outcome, excinfo = _interpreters.call(self.id, _guest.run_guarded, call_args)
            if excinfo is not None:
                self._failure = _excinfo_error(excinfo, "the guest could not start")
            else:
                self._outcome = outcome
        except BaseException as exc:  # the call itself failed: the interpreter is unusable
            self._failure = exc

    # -- wait and kill -----------------------------------------------------------------------

    async def wait(self) -> Any:
        """Wait for the function to end, reap the interpreter, and return what it returned.

        Raises :class:`RemoteError` if it raised (remote traceback attached),
        :class:`BootstrapError` if it could not start, :class:`InterpreterKilled` if it was
        cancelled, killed or abandoned.
        """
        if self._runner is None:
            raise RuntimeError(f"{self!r} was never started")
        await self._wait_exited()
        await self._reap()
        return self._unpack()

    async def kill(self) -> Termination:
        """Stop the running function, escalating as far as needed; return how it ended.

        Bounded by the policy (about ``grace + kill_bound``, or ``cleanup_bound`` for a guest
        that is past its function) and shielded from cancellation: giving up half-way would
        leave a running interpreter nobody owns.
        """
        with trio.CancelScope(shield=True):
            if self._runner is None or self._exited.is_set():
                return self._ending()
            for timeout, waiting_for in _escalation([self], self.policy, trio.current_time):
                if waiting_for:
                    with trio.move_on_after(timeout):
                        await self._wait_exited()
                if self._exited.is_set():
                    return self._ending()
            if self._abandon("still running after cancel and injected exceptions (stuck in C?)"):
                return "abandoned"
            await self._wait_exited()  # it finished in the last instant; the signal is queued
            return self._ending()

    def _finished(self) -> bool:
        """The runner thread's function is over (thread-safe; no trio needed)."""
        return self._runner is None or self._runner.finished

    def _cleaning_up(self) -> bool:
        """Has the guest said its function is over (see ``_control.CLEANING_UP``)?"""
        return self._link is not None and self._link.cleaning_up()

    def _command(self, command: bytes) -> None:
        if self._link is not None:
            self._link.send(command)  # if it cannot go, the guest is being told or is gone

    def _ending(self) -> Termination:
        if self.abandoned:
            return "abandoned"
        if self._outcome is not None and self._outcome.status in ("cancelled", "killed"):
            return self._outcome.status  # type: ignore[return-value]
        return "exited"

    def _abandon(
        self,
        reason: str,
        *,
        thread_stuck: bool = True,
        fate: str = "It is destroyed if its thread ever returns",
    ) -> bool:
        """Give up on this interpreter: record it, warn loudly, never block.

        With ``thread_stuck`` the hand-off decides: if the thread finished in the meantime it
        was not stuck after all and the caller reaps as usual (returns False).  ``fate`` tells
        the user what becomes of the interpreter.
        """
        if self._runner is not None and not self._runner.give_up(thread_stuck=thread_stuck):
            return False
        self._exited.set()
        _report_abandoned(self.id, self.thread_name, self.config, reason, fate)
        return True

    # -- reap ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Kill if still running, then join the thread and destroy the interpreter (bounded)."""
        with trio.CancelScope(shield=True):
            if self.running:
                await self.kill()
            await self._reap()

    async def _reap(self) -> None:
        if self._reaped or self.abandoned or self._destroyed:
            return
        self._reaped = True
        runner = self._runner
        if runner is not None:
            ended = await trio.to_thread.run_sync(runner.join, self.policy.join_bound)
            if not ended:
                self._reaped = False
                self._abandon("its thread signalled exit but did not end")
                return
        if not self._safe_to_destroy():
            self._abandon_to_late_destroyer()
            return
        if self.defer_destroy and _Destroyer.take(self):
            return
        await _destroy_off_loop(self)

    def _abandon_to_late_destroyer(self) -> None:
        """The guest left non-daemon threads running.  Destroying the interpreter waits for
        them (CPython joins them first), possibly forever, so the caller does not wait: a daemon
        thread destroys it once they end, and the census lists it as abandoned until then."""
        self._abandon(
            "its code left non-daemon threads running, and destroying it waits for them",
            thread_stuck=False,
            fate="A daemon thread destroys it once those threads end",
        )
        threading.Thread(
            target=self._destroy, name=f"subint-late-destroy-{self.id}", daemon=True
        ).start()

    def _safe_to_destroy(self) -> bool:
        leftovers = self._outcome.leftover_threads if self._outcome is not None else ()
        if leftovers:
            described = ", ".join(
                f"{name!r}{' (daemon)' if daemon else ''}" for name, daemon in leftovers
            )
            log.warning("actor interpreter %d left threads running: %s", self.id, described)
        return not any(not daemon for _, daemon in leftovers)

    def _destroy(self) -> None:
        """Destroy the interpreter, once, on whatever thread calls this (it blocks)."""
        with self._destroy_lock:
            if self._destroyed:
                return
            self._destroyed = True
            try:
                _interpreters.destroy(self.id)
            except _interpreters.InterpreterNotFoundError:
                pass
            finally:
                if self._link is not None:
                    self._link.close()
                    self._guest_control.close()
                REGISTRY.interpreter_destroyed(self.id)
                _LIVE.discard(self)

    def _reap_blocking(self) -> None:
        """After :func:`reap_orphans_blocking`'s kill steps: abandon if still stuck, else reap."""
        if self._destroyed or self.abandoned:
            return
        runner = self._runner
        if runner is not None:
            if runner.is_alive() and self._abandon(
                "orphaned by its parent's exit and stuck (in C?)"
            ):
                return
            runner.join(self.policy.join_bound)
        self._reaped = True
        if self._safe_to_destroy():
            self._destroy()
        else:
            self._abandon_to_late_destroyer()

    # -- results -------------------------------------------------------------------------------

    def _unpack(self) -> Any:
        if self._runner is None or not self._runner.finished:
            raise InterpreterKilled("abandoned", f"{self.thread_name} is stuck; see census()")
        where = f"subinterpreter {self.id} ({self.name})"
        failure = self._failure
        if isinstance(failure, RemoteError):
            failure.where = where
            raise failure
        if failure is not None:
            raise BootstrapError(
                type(failure).__qualname__,
                f"could not run anything in the interpreter: {failure}",
                "",
                where=where,
            ) from failure
        outcome = self._outcome
        assert outcome is not None
        if outcome.status == "ok":
            return pickle.loads(outcome.payload)
        if outcome.status == "error":
            raise rebuild(outcome.payload, RemoteError, trusted=True, where=where)
        raise InterpreterKilled(outcome.status, outcome.payload or "")


def _excinfo_error(excinfo: Any, context: str) -> BootstrapError:
    """A :class:`BootstrapError` for what ``_interpreters`` reports of a failure inside."""
    text = getattr(excinfo, "errdisplay", None) or getattr(excinfo, "formatted", None) or ""
    return BootstrapError(excinfo.type.__qualname__, f"{context}: {excinfo.msg}", text)


def _report_abandoned(
    interpreter_id: int,
    thread_name: str,
    config: str,
    reason: str,
    fate: str,
    *,
    boot_key: int | None = None,
) -> None:
    record = AbandonedInterpreter(interpreter_id, thread_name, config, reason, now())
    REGISTRY.abandoned(record, key=boot_key)
    message = (
        f"abandoned subinterpreter {interpreter_id} ({config}) and its thread "
        f"{thread_name!r}: {reason}. {fate}; see subint_spawn.census()"
    )
    log.warning(message)
    warnings.warn(AbandonedInterpreterWarning(message), stacklevel=4)


async def _destroy_off_loop(interp: Subinterpreter) -> None:
    """Destroy on a fresh thread (finalizing runs the interpreter's own code: ``atexit``,
    ``__del__``), shielded and bounded: past :data:`DESTROY_BOUND` the thread finishes it alone."""
    destroyed = trio.Event()
    thread = DedicatedThread(
        interp._destroy, name=f"subint-destroy-{interp.id}", on_done=destroyed.set, orphaned=_noop
    )
    with trio.CancelScope(shield=True):
        thread.start()
        with trio.move_on_after(DESTROY_BOUND):
            await thread.wait_done(destroyed)
        if not destroyed.is_set() and thread.give_up():
            _report_abandoned(
                interp.id,
                thread.name,
                interp.config,
                f"destroying it took longer than {DESTROY_BOUND} s",
                "Its thread finishes the destroy on its own",
            )
            return
        await thread.wait_done(destroyed)  # finished in the last instant: the signal is queued
        await trio.to_thread.run_sync(thread.join, interp.policy.join_bound)


def _noop() -> None:
    return None


class _Destroyer:
    """Destroys finished interpreters in the background of one trio run.

    Destroying an interpreter that imported trio is 16-30 ms of finalization (mostly garbage
    collection), which a caller whose actor has already ended need not wait for.  What the
    caller must wait for -- the function, the threads it left, the fds its peer must see
    closed -- is over before a reap gets here.  So destroys run here, on dedicated threads
    (:func:`_destroy_off_loop`), at most :data:`DESTROY_LIMITS` per config at once: isolated
    ones in parallel, legacy ones (which hold the main GIL while they finalize) one at a time.

    Owned by a system task: when the run ends, its shielded ``finally`` drains what is pending
    before ``trio.run`` returns.  If the run dies without that (a killed actor's loop), the
    interpreters are still in ``_LIVE``, and the orphan reaper destroys them.
    """

    def __init__(self) -> None:
        self.pending: collections.deque[Subinterpreter] = collections.deque()
        self.limiters = {config: trio.CapacityLimiter(DESTROY_LIMITS[config]) for config in CONFIGS}
        self.closed = False
        self.in_flight = 0
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._drained.set()

    @classmethod
    def take(cls, interp: Subinterpreter) -> bool:
        """Queue ``interp``'s destroy in this run; False if the run can no longer take it."""
        try:
            destroyer = _DESTROYER.get()
        except LookupError:
            destroyer = cls()
            try:
                trio.lowlevel.spawn_system_task(destroyer.run, name="subint_spawn destroyer")
            except RuntimeError:  # the run is shutting its system tasks down
                return False
            _DESTROYER.set(destroyer)
        if destroyer.closed:
            return False
        REGISTRY.destroy_deferred(interp.id)
        if destroyer._drained.is_set():
            destroyer._drained = trio.Event()
        destroyer.pending.append(interp)
        destroyer._wake.set()
        return True

    @classmethod
    async def drain(cls) -> None:
        try:
            destroyer = _DESTROYER.get()
        except LookupError:
            return
        await destroyer._drained.wait()

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    self._start_pending(nursery)
                    await self._wake.wait()
                    self._wake = trio.Event()
        finally:
            with trio.CancelScope(shield=True):
                self.closed = True
                async with trio.open_nursery() as nursery:
                    self._start_pending(nursery)

    def _start_pending(self, nursery: trio.Nursery) -> None:
        while self.pending:
            self.in_flight += 1
            nursery.start_soon(self._destroy, self.pending.popleft())

    async def _destroy(self, interp: Subinterpreter) -> None:
        # Shielded whole, the wait for a slot included: the run ending must not drop it.
        with trio.CancelScope(shield=True):
            try:
                async with self.limiters[interp.config]:
                    try:
                        await _destroy_off_loop(interp)
                    except Exception:  # a system task must never raise
                        if not _loop_alive():
                            # A killed loop's coroutines are closed outside it (trio's scopes
                            # then fail): not news, and the orphan reaper destroys this one.
                            raise
                        log.exception("destroying %r failed", interp)
            finally:
                self.in_flight -= 1
                if not self.in_flight and not self.pending:
                    self._drained.set()


_DESTROYER: trio.lowlevel.RunVar[_Destroyer] = trio.lowlevel.RunVar("subint_spawn_destroyer")


def _loop_alive() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def drain_destroys() -> None:
    """Until every background destroy this trio run has queued (``defer_destroy``) is done.

    Never needed for correctness -- the run drains them before ``trio.run`` returns -- but a
    program that wants its interpreters' memory back at a point of its choosing can wait here.
    """
    await _Destroyer.drain()


# -- the kill steps, shared by trio and blocking callers -------------------------------------------


def _escalation(
    group: Sequence[Subinterpreter], policy: KillPolicy, clock: Callable[[], float]
) -> Iterator[tuple[float, list[Subinterpreter]]]:
    """The kill steps for ``group``, as ``(how long to wait, for whom)`` after each step.

    The caller waits (up to the time given) until those have finished, then resumes this.  It
    ends when every member has finished, or when the steps are used up; members still running
    then are the caller's to abandon.  A member whose guest says it is cleaning up (past its
    function) gets no more injections, only ``cleanup_bound`` to finish.
    """

    def running() -> list[Subinterpreter]:
        return [interp for interp in group if not interp._finished()]

    live = running()
    if not live:
        return
    for interp in live:
        interp._command(CANCEL)
    yield policy.grace, live
    deadline = clock() + policy.kill_bound
    while (live := running()) and clock() < deadline:
        injectable = [interp for interp in live if not interp._cleaning_up()]
        if not injectable:
            break
        for interp in injectable:
            interp._command(KILL)
        yield min(policy.inject_every, max(0.0, deadline - clock())), live
    cleaning = [interp for interp in running() if interp._cleaning_up()]
    if cleaning:
        yield policy.cleanup_bound, cleaning


# Orphans already ignored (or never got) their supervisor's stop: a short cooperative step,
# and the whole escalation well inside an actor's own kill bound (how long this interpreter's
# own parent waits for it).
ORPHAN_KILL_POLICY = KillPolicy(grace=0.05, kill_bound=0.3, cleanup_bound=5.0)

#: Every Subinterpreter of this interpreter not yet destroyed (idle warm ones included): what
#: :func:`reap_orphans_blocking` reaps when this interpreter's own trio loop is gone.
_LIVE: set[Subinterpreter] = set()


def reap_orphans_blocking() -> None:
    """Kill and destroy, without trio, every interpreter created here that nobody reaped.

    The guest calls this after its own trio loop ended, however it ended.  An actor that was
    hard-killed has had exceptions injected all through its teardown, so its supervisors may
    never have stopped its children, and its warm pool's owner may never have destroyed the
    idle ones; they would live on with nobody left to stop them.  All orphans go through the
    kill steps *together*: this runs while the actor's own parent is counting down to
    abandoning it.  Not "not reaped": a reap that the killed loop started (its supervisor was
    tearing the child down when the injected exception landed) never finished either.
    """
    orphans = [interp for interp in list(_LIVE) if not interp._destroyed and not interp.abandoned]
    for timeout, waiting_for in _escalation(orphans, ORPHAN_KILL_POLICY, time.monotonic):
        deadline = time.monotonic() + timeout
        for interp in waiting_for:
            assert interp._runner is not None
            interp._runner.join(max(0.0, deadline - time.monotonic()))
    for interp in orphans:
        interp._reap_blocking()


def dump_targets() -> list[DumpTarget]:
    """This interpreter's subinterpreters whose function is running (abandoned ones included)."""
    targets = []
    for interp in sorted(_LIVE, key=lambda i: i.id):
        runner, link = interp._runner, interp._link
        if runner is None or link is None or not runner.is_alive():
            continue
        label = f"actor {interp.name!r} (subinterpreter {interp.id}, {interp.config}"
        label += ", abandoned)" if runner.abandoned else ")"
        note = "its function has ended; it is cleaning up" if link.cleaning_up() else ""
        if interp.config == "legacy":
            hint = "a legacy interpreter shares the main GIL; a thread holding it in C starves its watchdog"
        else:
            hint = "a thread of its own holding its GIL in C starves its watchdog"
        targets.append(DumpTarget(label, link, note, hint))
    return targets


def _destroy_finished_at_exit() -> None:
    """At interpreter exit: destroy what finished and was never destroyed (a run that died
    with background destroys pending).  Running or abandoned ones are left to CPython."""
    for interp in list(_LIVE):
        runner = interp._runner
        finished = runner is None or (
            runner.finished and not runner.abandoned and not runner.is_alive()
        )
        if finished and interp._safe_to_destroy():
            interp._destroy()


register_dump_source(dump_targets)
at_guest_exit(reap_orphans_blocking)
atexit.register(_destroy_finished_at_exit)


# -- booting -----------------------------------------------------------------------------------


def _boot_blocking(
    config: Config, modules: tuple[str, ...], parent_path: tuple[str, ...], background: bool
) -> int:
    """Create an interpreter, set its path and import ``modules``; on failure destroy it, raise."""
    if background:
        _lower_priority(config)
    interpreter_id = _interpreters.create(interpreter_config(config))
    REGISTRY.interpreter_created(interpreter_id)
    try:
        excinfo = _interpreters.exec(interpreter_id, _SET_PATH, {"_parent_path": parent_path})
        if excinfo is None and modules:
            if any(name.partition(".")[0] in _IMPORTS_TRIO for name in modules):
                shared = {"_modules": modules, "_libraries": _libraries_for_trio()}
                excinfo = _interpreters.exec(interpreter_id, _IMPORT_WITH_LIBRARIES, shared)
            else:
                excinfo = _interpreters.exec(interpreter_id, _IMPORT, {"_modules": modules})
        if excinfo is not None:
            doing = f"importing {', '.join(modules)}" if modules else "setting sys.path"
            error = _excinfo_error(
                excinfo, f"could not boot a subinterpreter ({config}): {doing} failed"
            )
            error.where = f"{config} subinterpreter {interpreter_id} (booting)"
            raise error
    except BaseException:
        _destroy_id(interpreter_id)
        raise
    return interpreter_id


def _lower_priority(config: str) -> None:
    """Let actors and the parent's loop go first: a background boot is a refill.

    Only for isolated boots, which hold no lock anyone else needs.  A legacy boot holds the
    main GIL most of the time; demoting it would make the parent's loop wait for a thread the
    OS rarely runs (priority inversion), so it keeps normal priority and is bounded by count
    instead (the pool's boot limits).  Per-thread niceness is Linux-only; elsewhere a no-op.
    """
    if config != "isolated" or not sys.platform.startswith("linux") or BACKGROUND_NICENESS == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except OSError:
        pass


def _destroy_id(interpreter_id: int) -> None:
    try:
        _interpreters.destroy(interpreter_id)
    except _interpreters.InterpreterNotFoundError:
        pass
    finally:
        REGISTRY.interpreter_destroyed(interpreter_id)


async def boot(
    config: Config = "isolated",
    *,
    modules: Sequence[str] = (),
    name: str = "interp",
    policy: KillPolicy | None = None,
    guard_process: bool = False,
    defer_destroy: bool = False,
    background: bool = False,
) -> Subinterpreter:
    """Create an interpreter and import ``modules`` in it, on a dedicated thread.

    Shielded (an import cannot be interrupted half-way, and nobody else would own the
    interpreter) and bounded by :data:`BOOT_BOUND`: past it the boot is abandoned (census,
    warning) and its thread destroys the interpreter if it ever finishes.  ``background``
    lowers the thread's priority (warm-pool refills).  For ``name``, ``policy``,
    ``guard_process`` and ``defer_destroy`` see :class:`Subinterpreter`.  Raises
    :class:`BootstrapError` if an import fails, with the traceback from inside.
    """
    checked = check_config(config)
    booted: list[int] = []
    failed: list[BaseException] = []
    done = trio.Event()

    def run() -> None:
        try:
            booted.append(_boot_blocking(checked, tuple(modules), tuple(sys.path), background))
        except BaseException as exc:
            failed.append(exc)

    boot_key = REGISTRY.boot_key()

    def orphaned() -> None:
        for interpreter_id in booted:
            _destroy_id(interpreter_id)
        if thread.abandoned:  # (not when the loop is gone: then nothing was reported)
            REGISTRY.boot_reclaimed(boot_key)

    thread = DedicatedThread(
        run, name=f"subint-boot-{checked}", on_done=done.set, orphaned=orphaned
    )
    with trio.CancelScope(shield=True):
        thread.start()
        with trio.move_on_after(BOOT_BOUND):
            await thread.wait_done(done)
        if not done.is_set() and thread.give_up():
            reason = f"booting took longer than {BOOT_BOUND} s"
            _report_abandoned(
                -1,
                thread.name,
                checked,
                reason,
                "It is destroyed if its thread ever returns",
                boot_key=boot_key,
            )
            raise BootstrapError(
                "TimeoutError", reason, "", where=f"{checked} subinterpreter (booting)"
            )
        await thread.wait_done(done)  # finished in the last instant: the signal is queued
        if failed:
            raise failed[0]
        # Owned (and so reaped by the orphan reaper) before anything else can happen.
        interp = Subinterpreter(
            booted[0],
            checked,
            name=name,
            policy=policy,
            guard_process=guard_process,
            defer_destroy=defer_destroy,
        )
        await trio.to_thread.run_sync(thread.join, 1.0)
    return interp


async def create(
    config: Config = "isolated", *, name: str = "", policy: KillPolicy | None = None
) -> Subinterpreter:
    """A fresh interpreter, created off the trio loop; the caller must :meth:`~Subinterpreter.aclose` it."""
    return await boot(config, name=name or "interp", policy=policy)


@asynccontextmanager
async def open_subinterpreter(
    config: Config = "isolated", *, name: str = "", policy: KillPolicy | None = None
) -> AsyncIterator[Subinterpreter]:
    """A fresh subinterpreter that is killed (if running) and destroyed when the block exits."""
    interp = await create(config, name=name, policy=policy)
    try:
        yield interp
    finally:
        await interp.aclose()
