"""Own one subinterpreter's life: create it, run one function in it on a dedicated OS thread,
hear when it ends, kill it if asked, and destroy it -- never hanging the caller, never leaking.

Life of a :class:`Subinterpreter`, which is one-shot (a used interpreter is destroyed, never
reused: its ``sys.modules`` and module state would leak into the next user)::

    create (off the trio loop)  ->  start(fn)  ->  fn ends | kill()  ->  reap: join + destroy

Why each piece is the way it is:

* **A dedicated, non-cached thread per interpreter.**  Running a subinterpreter leaves that
  interpreter's thread state bound to the OS thread, so a recycled worker (trio's thread cache)
  would carry it into unrelated jobs.  The thread is a daemon so a wedged one never blocks
  process exit.  Driving interpreters from a worker thread is also far cheaper than from the
  main thread (~20 us vs ~140 us per ``exec`` here).
* **Exit is signalled through the parent's trio token** from the thread's ``finally``:
  ``run_sync_soon`` never blocks, so the thread is done microseconds later.  If the parent's
  loop is already gone (``RunFinishedError``) nobody will reap, so the thread reaps itself.
* **Join and destroy happen off the trio loop, bounded.**  ``destroy`` finalizes a whole
  interpreter (milliseconds) and blocks while any non-daemon thread lives in it, so it is only
  called once the guest reported that none does.
* **Kill escalates** (see :mod:`._guest` for the inside half): cooperative cancel of the guest's
  root trio scope; after ``grace``, an exception injected into the runner thread, repeated
  until ``kill_bound``; then *abandon*: a loud warning, a census record, and the caller goes on.
  The abandoned thread destroys its interpreter itself if it ever comes back out of C.
"""

from __future__ import annotations

import logging
import pickle
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import _interpreters
import trio

from .._exceptions import AbandonedInterpreterWarning, BootstrapError, InterpreterKilled, RemoteError
from . import _guest
from ._census import REGISTRY, AbandonedInterpreter, now
from ._funcref import ref_of
from ._handoff import Handoff
from ._stacks import ControlLink, DumpTarget, control_socketpair

__all__ = ["Config", "KillPolicy", "Subinterpreter", "Termination", "open_subinterpreter"]

log = logging.getLogger("subint_spawn.driver")

Config = Literal["isolated", "legacy"]

_SET_PATH = "import sys; sys.path[:] = _parent_path; del _parent_path"
Termination = Literal["exited", "cancelled", "killed", "abandoned"]


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
    ``legacy`` shares the main GIL and loads single-phase-init extensions (msgspec 0.22 and many
    other C extensions refuse to import in an isolated interpreter).
    """
    if config == "isolated":
        return _interpreters.new_config("isolated", allow_daemon_threads=True)
    if config == "legacy":
        return _interpreters.new_config("legacy")
    raise ValueError(f"unknown interpreter config {config!r}: use 'isolated' or 'legacy'")


class Subinterpreter:
    """One subinterpreter and the one dedicated thread that runs a function in it.

    Make one with :func:`open_subinterpreter`, which guarantees it is killed and destroyed when
    the block exits however it exits.
    """

    def __init__(self, interpreter_id: int, config: Config, name: str, policy: KillPolicy) -> None:
        self.id = interpreter_id
        self.config = config
        self.name = name
        self.policy = policy
        # The parent's end is read by one ControlLink only: the kill path's "cleaning up?" and
        # stack dumps share it without eating each other's records (see _stacks).
        self._control, self._guest_control = control_socketpair()
        self._link = ControlLink(self._control)
        self._thread: threading.Thread | None = None
        # Set when the thread has finished, or when we abandoned it: either way nobody in this
        # trio loop has anything left to wait for.
        self._exited = trio.Event()
        self._raw: Any = None
        self._termination: Termination | None = None
        # Guards the hand-off between "the thread finished" and "the parent gave up on it".
        self._handoff = Handoff()
        self._reaped = False  # a reap has started (it may have been cut short)
        # Destroy exactly once, whichever thread gets there: the trio side, the interpreter's
        # own thread, a late destroyer, or the orphan reaper of a killed parent actor.
        self._destroy_lock = threading.Lock()
        self._destroyed = False

    def __repr__(self) -> str:
        return f"<Subinterpreter id={self.id} {self.config} {self.name!r}>"

    @property
    def thread_name(self) -> str:
        return f"subint-{self.id}-{self.name}"

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._exited.is_set()

    @property
    def exited(self) -> bool:
        """The function ended, or the interpreter was abandoned (nothing more to wait for)."""
        return self._exited.is_set()

    async def wait_exited(self) -> None:
        """Until :attr:`exited`; unlike :meth:`wait` this neither reaps nor raises."""
        await self._exited.wait()

    # -- start ---------------------------------------------------------------------------------

    def start(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` in the interpreter on its own new thread; return at once.

        ``fn`` must be importable by name inside the interpreter (a module-level function);
        ``async def`` functions run under ``trio.run`` there.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self!r} was already started; interpreters are one-shot")
        fn_ref = ref_of(fn)
        try:
            arguments = pickle.dumps((args, kwargs))
        except Exception as exc:
            raise TypeError(
                f"arguments for {fn_ref[0]}.{fn_ref[1]} cannot cross into a subinterpreter: {exc}. "
                "Pass picklable values (plain data, or instances of module-level classes)"
            ) from exc
        self._handoff.token = trio.lowlevel.current_trio_token()
        call_args = (self._guest_control.fileno(), fn_ref, arguments)
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(tuple(sys.path), call_args),
            name=self.thread_name,
            daemon=True,
        )
        REGISTRY.thread_started(id(self._thread))
        self._thread.start()

    def _thread_main(self, parent_path: tuple[str, ...], call_args: tuple[Any, ...]) -> None:
        try:
            # A fresh interpreter computes its own sys.path, which lacks whatever the parent
            # added; set it before anything of ours is imported there.
            excinfo = _interpreters.exec(self.id, _SET_PATH, {"_parent_path": parent_path})
            if excinfo is not None:
                self._raw = (None, excinfo)
            else:
                self._raw = _interpreters.call(self.id, _guest.run_guarded, call_args)
        except BaseException as exc:  # the call itself failed: the interpreter is unusable
            self._raw = exc
        finally:
            self._handoff.thread_done(self._exited.set, self._reap_in_thread)
            REGISTRY.thread_finished(id(threading.current_thread()))

    # -- wait and kill -----------------------------------------------------------------------

    async def wait(self) -> Any:
        """Wait for the function to end, reap the interpreter, and return what it returned.

        Raises :class:`RemoteError` if it raised (remote traceback attached),
        :class:`BootstrapError` if it could not start, :class:`InterpreterKilled` if it was
        cancelled, killed or abandoned.
        """
        if self._thread is None:
            raise RuntimeError(f"{self!r} was never started")
        await self._exited.wait()
        await self._reap()
        return self._unpack()

    async def kill(self) -> Termination:
        """Stop the running function, escalating as far as needed; return how it ended.

        Bounded by the policy (about ``grace + kill_bound``) and shielded from cancellation:
        giving up half-way would leave a running interpreter nobody owns.
        """
        with trio.CancelScope(shield=True):
            if self._thread is None or self._exited.is_set():
                return self._ending()
            self._command(_guest.CANCEL)
            with trio.move_on_after(self.policy.grace):
                await self._exited.wait()
                return self._ending()
            deadline = trio.current_time() + self.policy.kill_bound
            while trio.current_time() < deadline and not self._guest_cleaning_up():
                self._command(_guest.KILL)
                with trio.move_on_after(min(self.policy.inject_every, deadline - trio.current_time())):
                    await self._exited.wait()
                    return self._ending()
            if self._guest_cleaning_up():
                with trio.move_on_after(self.policy.cleanup_bound):
                    await self._exited.wait()
                    return self._ending()
            if self._abandon("still running after cancel and injected exceptions (stuck in C?)"):
                return "abandoned"
            await self._exited.wait()  # it finished in the last instant; the signal is queued
            return self._ending()

    def _guest_cleaning_up(self) -> bool:
        """Has the guest said its function is over (see ``_guest.CLEANING_UP``)?"""
        return self._link.cleaning_up()

    def _command(self, command: bytes) -> None:
        self._link.send(command)  # if it cannot go, the guest is already being told or is gone

    def _ending(self) -> Termination:
        if self._handoff.abandoned:
            return "abandoned"
        raw = self._raw
        if isinstance(raw, tuple) and raw[1] is None and raw[0][0] in ("cancelled", "killed"):
            status: Termination = raw[0][0]
            return status
        return "exited"

    def _abandon(
        self, reason: str, *, thread_stuck: bool = True, fate: str = "It is destroyed if its thread ever returns"
    ) -> bool:
        """Give up on this interpreter: record it, warn loudly, never block.

        With ``thread_stuck`` the hand-off decides: if the thread finished in the meantime it
        was not stuck after all and the caller reaps as usual (returns False).  ``fate`` tells
        the user what becomes of the interpreter.
        """
        if not self._handoff.give_up(thread_stuck=thread_stuck):
            return False
        self._exited.set()
        record = AbandonedInterpreter(self.id, self.thread_name, self.config, reason, now())
        REGISTRY.abandoned(record)
        message = (
            f"abandoned subinterpreter {self.id} ({self.config}) and its thread "
            f"{self.thread_name!r}: {reason}. {fate}; see subint_spawn.census()"
        )
        log.warning(message)
        warnings.warn(AbandonedInterpreterWarning(message), stacklevel=3)
        return True

    # -- reap ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Kill if still running, then join the thread and destroy the interpreter (bounded)."""
        with trio.CancelScope(shield=True):
            if self.running:
                await self.kill()
            await self._reap()

    async def _reap(self) -> None:
        if self._reaped or self._handoff.abandoned:
            return
        self._reaped = True
        if self._thread is not None:
            await trio.to_thread.run_sync(self._thread.join, self.policy.join_bound)
            if self._thread.is_alive():
                self._reaped = False
                self._abandon("its thread signalled exit but did not end")
                return
        if not self._safe_to_destroy():
            self._abandon_to_late_destroyer()
            return
        await trio.to_thread.run_sync(self._destroy)

    def _abandon_to_late_destroyer(self) -> None:
        """The guest left non-daemon threads running.  Destroying the interpreter waits for
        them (CPython joins them first), possibly forever, so the caller does not wait: a daemon
        thread destroys it once they end, and the census lists it as abandoned until then."""
        self._abandon(
            "its code left non-daemon threads running, and destroying it waits for them",
            thread_stuck=False,
            fate="A daemon thread destroys it once those threads end",
        )
        threading.Thread(target=self._destroy, name=f"subint-late-destroy-{self.id}", daemon=True).start()

    def _reap_in_thread(self) -> None:
        # On the interpreter's own dedicated thread, which nobody waits for: destroying here
        # may wait for the guest's leftover non-daemon threads, and that is fine.
        self._reaped = True
        self._destroy()

    def _safe_to_destroy(self) -> bool:
        leftovers = self._leftover_threads()
        if leftovers:
            described = ", ".join(f"{name!r}{' (daemon)' if daemon else ''}" for name, daemon in leftovers)
            log.warning("actor interpreter %d left threads running: %s", self.id, described)
        return not any(not daemon for _, daemon in leftovers)

    def _leftover_threads(self) -> tuple[tuple[str, bool], ...]:
        raw = self._raw
        if isinstance(raw, tuple) and raw[1] is None:
            leftovers: tuple[tuple[str, bool], ...] = raw[0][2]
            return leftovers
        return ()

    def _destroy(self) -> None:
        with self._destroy_lock:
            if self._destroyed:
                return
            self._destroyed = True
            self._destroy_once()

    def _destroy_once(self) -> None:
        try:
            _interpreters.destroy(self.id)
        except _interpreters.InterpreterNotFoundError:
            pass
        finally:
            self._link.close()
            self._guest_control.close()
            REGISTRY.interpreter_destroyed(self.id)
            _LIVE.discard(self)

    def _finish_blocking(self) -> None:
        """After :func:`reap_orphans_blocking`'s kill steps: abandon if still stuck, else reap."""
        if self._destroyed or self._handoff.abandoned:
            return
        thread = self._thread
        if thread is not None:
            if thread.is_alive() and self._abandon("orphaned by its parent's exit and stuck (in C?)"):
                return
            thread.join(self.policy.join_bound)
        self._reaped = True
        if self._safe_to_destroy():
            self._destroy()
        else:
            self._abandon_to_late_destroyer()

    # -- results -------------------------------------------------------------------------------

    def _unpack(self) -> Any:
        if not self._handoff.finished:
            raise InterpreterKilled("abandoned", f"{self.thread_name} is stuck; see census()")
        raw = self._raw
        where = f"subinterpreter {self.id} ({self.name})"
        if isinstance(raw, BaseException):
            raise BootstrapError(
                type(raw).__qualname__,
                f"could not run anything in the interpreter: {raw}",
                "",
                where=where,
            ) from raw
        outcome, excinfo = raw
        if excinfo is not None:
            raise BootstrapError(
                excinfo.type.__qualname__, excinfo.msg, getattr(excinfo, "errdisplay", None) or "", where=where
            )
        status, payload, _ = outcome
        if status == "ok":
            return pickle.loads(payload)
        if status == "error":
            raise unpack_error(payload, where)
        raise InterpreterKilled(status, payload or "")


def unpack_error(packed: tuple[str, str, str, bytes | None], where: str) -> RemoteError:
    """Rebuild a :class:`RemoteError` from :func:`._guest.pack_error` data, original as cause."""
    type_name, message, text, pickled = packed
    error = RemoteError(type_name, message, text, where=where)
    if pickled is not None:
        try:
            error.__cause__ = pickle.loads(pickled)
        except Exception:
            pass  # the class exists only over there; the text is what we have
    return error


# Orphans already ignored (or never got) their supervisor's stop: a short cooperative step,
# and the whole escalation well inside ACTOR_KILL_POLICY.kill_bound, which is how long this
# interpreter's own parent waits for it.
ORPHAN_KILL_POLICY = KillPolicy(grace=0.05, kill_bound=0.3, cleanup_bound=5.0)

# Every Subinterpreter this interpreter created and has not destroyed: what
# reap_orphans_blocking() reaps when this interpreter's own trio loop is gone.
_LIVE: set[Subinterpreter] = set()


async def create(config: Config = "isolated", *, name: str = "", policy: KillPolicy | None = None) -> Subinterpreter:
    """Create an interpreter off the trio loop (it takes milliseconds); the caller must reap it."""
    native_config = interpreter_config(config)
    interpreter_id = await trio.to_thread.run_sync(_interpreters.create, native_config)
    REGISTRY.interpreter_created(interpreter_id)
    interp = Subinterpreter(interpreter_id, config, name or "interp", policy or KillPolicy())
    _LIVE.add(interp)
    return interp


def adopt(interpreter_id: int, config: Config, *, name: str = "", policy: KillPolicy | None = None) -> Subinterpreter:
    """Take charge of an interpreter made elsewhere (the warm pool, :mod:`._pool`), unused and
    already counted in the census, exactly as :func:`create` would have; the caller must reap it."""
    interp = Subinterpreter(interpreter_id, config, name or "interp", policy or KillPolicy())
    _LIVE.add(interp)
    return interp


def reap_orphans_blocking() -> None:
    """Kill and destroy, without trio, every interpreter created here that nobody reaped.

    The guest calls this after its own trio loop ended, however it ended.  An actor that was
    hard-killed has had exceptions injected all through its teardown, so its supervisors may
    never have stopped its children; they would run on with nobody left to stop them.  All
    orphans go through the kill steps *together*: this runs while the actor's own parent is
    counting down to abandoning it.
    """
    # Not "not _reaped": a reap that the killed loop started (its supervisor was tearing the
    # child down when the injected exception landed) never finished, and must be finished here.
    orphans = [interp for interp in list(_LIVE) if not interp._destroyed and not interp._handoff.abandoned]
    policy = ORPHAN_KILL_POLICY
    running = [interp for interp in orphans if interp._thread is not None and interp._thread.is_alive()]
    for interp in running:
        interp._command(_guest.CANCEL)
    _join_all(running, policy.grace)
    deadline = time.monotonic() + policy.kill_bound
    while (running := [i for i in running if i._thread is not None and i._thread.is_alive()]) and (
        time.monotonic() < deadline
    ):
        for interp in running:
            if not interp._guest_cleaning_up():
                interp._command(_guest.KILL)
        _join_all(running, policy.inject_every)
    cleaning = [i for i in running if i._thread is not None and i._thread.is_alive() and i._guest_cleaning_up()]
    _join_all(cleaning, policy.cleanup_bound)
    for interp in orphans:
        interp._finish_blocking()


def dump_targets() -> list[DumpTarget]:
    """This interpreter's subinterpreters whose function is running (abandoned ones included)."""
    targets = []
    for interp in sorted(_LIVE, key=lambda i: i.id):
        thread = interp._thread
        if thread is None or not thread.is_alive():
            continue
        label = f"actor {interp.name!r} (subinterpreter {interp.id}, {interp.config}"
        label += ", abandoned)" if interp._handoff.abandoned else ")"
        note = "its function has ended; it is cleaning up" if interp._link.cleaning_up() else ""
        targets.append(DumpTarget(label, interp._link, note))
    return targets


def _join_all(interps: list[Subinterpreter], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for interp in interps:
        assert interp._thread is not None
        interp._thread.join(max(0.0, deadline - time.monotonic()))


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
