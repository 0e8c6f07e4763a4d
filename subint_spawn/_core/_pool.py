"""The warm interpreter pool: fresh interpreters with the actor runtime imported ahead of time.

A cold actor pays for ``import trio`` and the runtime inside its new interpreter (~150 ms of
CPU here) before it can answer anything.  A *warm* interpreter has already paid it, so an
actor spawned into one answers its first message in milliseconds.

Rules (see ai/warm-pool.md for the why):

* **One pool per trio run and config**, held in a :class:`trio.lowlevel.RunVar` and owned by a
  system task.  When the run ends, the owner's shielded ``finally`` waits for warm-ups in flight
  (bounded) and destroys every interpreter still idle: nothing outlives the ``trio.run``.
* **Warm-ups run on dedicated threads**, never on trio's thread cache (a recycled thread would
  keep the interpreter's thread state).  Each thread creates one interpreter, sets ``sys.path``
  the way the driver does, imports :data:`WARM_UP_MODULES`, and ends; it is joined off the loop.
  At most :data:`BOOT_LIMITS` warm-ups per config run at once: isolated ones run in parallel
  (one per core), legacy ones share the main GIL with the parent's loop, so one at a time.
* **One interpreter, one actor.**  :func:`take` hands an idle interpreter to exactly one spawn
  and never sees it again: the actor's teardown destroys it.  A used interpreter is never
  reused (its ``sys.modules``, ``__main__`` and module state would leak into the next actor).
* **Spawns never wait for the pool.**  :func:`take` returns ``None`` when nothing is idle and
  the spawn boots an interpreter of its own with :func:`boot` (the same warm-up, at normal
  priority, under the same per-config bound); each take wakes the owner to refill.
"""

from __future__ import annotations

import _interpreters
import collections
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import trio

from .._exceptions import AbandonedInterpreterWarning, BootstrapError
from . import _driver
from ._census import REGISTRY, AbandonedInterpreter, now
from ._handoff import Handoff

__all__ = [
    "BOOT_LIMITS",
    "WARM_UP_MODULES",
    "PoolStatus",
    "boot",
    "prewarm",
    "reap_idle_blocking",
    "status",
    "take",
]

log = logging.getLogger("subint_spawn.pool")

#: What every actor imports before it can serve: trio, the driver's guest half and what it
#: installs (process guards, the stack-dump link), the runtime and its spawn defaults.  Any
#: module of ours an actor imports on its way to "ready" belongs here: importing it at spawn
#: time costs the warm path ~0.5-2 ms per module (measured: the guards and stacks modules
#: were 2 ms of a 6 ms warm spawn).
WARM_UP_MODULES = (
    "trio",
    "subint_spawn._core._guest",
    "subint_spawn._core._guards",
    "subint_spawn._core._stacks",
    "subint_spawn._core._actor",
    "subint_spawn._core._defaults",
)
_WARM_UP_CODE = (
    "import importlib as _importlib\n"
    f"for _name in {WARM_UP_MODULES!r}:\n"
    "    _importlib.import_module(_name)\n"
    "del _importlib, _name\n"
)
#: How many warm-ups of each config may run at once.  Isolated interpreters import in
#: parallel, one per core; legacy ones contend with the parent's loop for the main GIL.
BOOT_LIMITS: dict[str, int] = {"isolated": max(1, os.cpu_count() or 1), "legacy": 1}
#: A warm-up that takes longer than this is abandoned (census record, warning); it destroys its
#: interpreter itself if it ever finishes.
WARM_UP_BOUND = 60.0
#: Niceness of isolated warm-up threads (Linux): background refills yield the cores to
#: running actors and the parent's loop.
WARM_UP_NICENESS = 10
#: How long joining a warm-up thread that already said it is done may take.
JOIN_BOUND = 1.0


@dataclass(frozen=True)
class PoolStatus:
    """One config's pool in the current trio run.

    ``level``: how many idle interpreters it keeps (what the last :func:`prewarm` asked for).
    ``idle``: warm and unused now; ``warming``: refills in flight.  Counts since the run
    started: ``booted`` refills that completed, ``taken`` handed to a spawn, ``cold`` spawns
    that found the pool empty (and booted an interpreter of their own, see :func:`boot`).
    """

    config: str
    level: int
    idle: int
    warming: int
    booted: int
    taken: int
    cold: int


# -- one warm-up on its own thread ---------------------------------------------------------------


def _boot(config: _driver.Config, parent_path: tuple[str, ...]) -> int:
    """Create an interpreter and import the runtime in it; on failure destroy it and raise."""
    interpreter_id = _interpreters.create(_driver.interpreter_config(config))
    REGISTRY.interpreter_created(interpreter_id)
    try:
        excinfo = _interpreters.exec(
            interpreter_id, _driver._SET_PATH, {"_parent_path": parent_path}
        )
        if excinfo is None:
            excinfo = _interpreters.exec(interpreter_id, _WARM_UP_CODE)
        if excinfo is not None:
            raise BootstrapError(
                excinfo.type.__qualname__,
                f"warming up an interpreter failed: {excinfo.msg}",
                getattr(excinfo, "errdisplay", None) or getattr(excinfo, "formatted", ""),
                where=f"warm {config} subinterpreter {interpreter_id}",
            )
    except BaseException:
        _destroy_blocking(interpreter_id)
        raise
    return interpreter_id


def _lower_priority(config: str) -> None:
    """Let actors and the parent's loop go first: a refill is background work.

    Only for isolated warm-ups, which hold no lock anyone else needs.  A legacy warm-up holds
    the main GIL most of the time; demoting it would make the parent's loop wait for a thread
    the OS rarely runs (priority inversion), so it keeps normal priority and is bounded by
    count instead (:data:`BOOT_LIMITS`).  Per-thread niceness is Linux-only; elsewhere a no-op.
    """
    if config != "isolated" or not sys.platform.startswith("linux") or WARM_UP_NICENESS == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_UP_NICENESS)
    except OSError:
        pass


def _destroy_blocking(interpreter_id: int) -> None:
    try:
        _interpreters.destroy(interpreter_id)
    except _interpreters.InterpreterNotFoundError:
        pass
    finally:
        REGISTRY.interpreter_destroyed(interpreter_id)


def _destroy_on_own_thread(interpreter_id: int) -> None:
    """Finalizing runs the interpreter's own code (``atexit``, ``__del__``): on a fresh thread,
    not on the trio cache thread that waits for it."""
    failed: list[BaseException] = []

    def destroy() -> None:
        try:
            _destroy_blocking(interpreter_id)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=destroy, name="subint-destroy")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


async def _destroy(interpreter_id: int) -> None:
    """Destroy an unused interpreter off the loop (milliseconds); shielded, never raises."""
    with trio.CancelScope(shield=True):
        try:
            await trio.to_thread.run_sync(_destroy_on_own_thread, interpreter_id)
        except Exception:
            log.exception("destroying warm interpreter %d failed", interpreter_id)


class _WarmUp:
    """One interpreter being created and warmed on a dedicated (non-cached) thread.

    The thread tells the loop it is done through the trio token, like the driver's threads.
    If the loop gave up on it (abandoned) or is gone, the thread destroys its interpreter
    itself, so a warm-up never leaks whoever stops waiting for it.
    """

    def __init__(self, config: _driver.Config, *, background: bool) -> None:
        self.config = config
        self.background = background
        self.interpreter_id: int | None = None
        self.error: BaseException | None = None
        self.done = trio.Event()
        self._handoff = Handoff()
        self._handoff.token = trio.lowlevel.current_trio_token()
        self.thread = threading.Thread(
            target=self._main, args=(tuple(sys.path),), name=f"subint-warm-{config}", daemon=True
        )

    def start(self) -> None:
        REGISTRY.thread_started(id(self.thread))
        try:
            self.thread.start()
        except BaseException:
            REGISTRY.thread_finished(id(self.thread))
            raise

    def _main(self, parent_path: tuple[str, ...]) -> None:
        try:
            if self.background:
                _lower_priority(self.config)
            self.interpreter_id = _boot(self.config, parent_path)
        except BaseException as exc:
            self.error = exc
        finally:
            self._handoff.thread_done(self.done.set, self._destroy_in_thread)
            REGISTRY.thread_finished(id(self.thread))

    def _destroy_in_thread(self) -> None:
        if self.interpreter_id is not None:
            _destroy_blocking(self.interpreter_id)
            self.interpreter_id = None

    async def result(self) -> int | None:
        """Wait (shielded, bounded) for the warm interpreter; ``None`` if abandoned.

        Shielded because a warm-up cannot be interrupted mid-import and nobody else would own
        its interpreter; bounded by :data:`WARM_UP_BOUND`.
        """
        with trio.CancelScope(shield=True):
            with trio.move_on_after(WARM_UP_BOUND):
                await self.done.wait()
            if not self.done.is_set():
                if self._handoff.give_up():
                    self._warn_abandoned()
                    return None
                await self.done.wait()  # it finished in the last instant: the signal is queued
            await trio.to_thread.run_sync(self.thread.join, JOIN_BOUND)
        if self.error is not None:
            raise self.error
        return self.interpreter_id

    def _warn_abandoned(self) -> None:
        interpreter_id = self.interpreter_id if self.interpreter_id is not None else -1
        reason = f"warming up took longer than {WARM_UP_BOUND} s"
        REGISTRY.abandoned(
            AbandonedInterpreter(interpreter_id, self.thread.name, self.config, reason, now())
        )
        message = (
            f"abandoned warm-up of a {self.config} subinterpreter ({self.thread.name!r}): {reason}. "
            "Its interpreter is destroyed if its thread ever returns; see subint_spawn.census()"
        )
        log.warning(message)
        warnings.warn(AbandonedInterpreterWarning(message), stacklevel=3)


# -- the pools of one trio run -------------------------------------------------------------------


class _Pool:
    """Idle warm interpreters of one config, and the bookkeeping to refill them."""

    def __init__(self, config: _driver.Config, owner: _Owner) -> None:
        self.config = config
        self.owner = owner
        self.limit = BOOT_LIMITS[config]
        self.level = 0
        self.idle: collections.deque[int] = collections.deque()
        self.warming = 0
        self.destroying = 0
        self.error: BaseException | None = None
        self.handed_out: set[int] = set()  # ids are never reused by CPython
        self.booted = self.taken = self.cold = 0
        # Every boot of this config in this run, refill or on-demand, holds a token while its
        # warm-up thread runs.
        self.limiter = trio.CapacityLimiter(self.limit)
        self._changed = trio.Event()

    def status(self) -> PoolStatus:
        return PoolStatus(
            self.config,
            self.level,
            len(self.idle),
            self.warming,
            self.booted,
            self.taken,
            self.cold,
        )

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()

    def settled(self) -> bool:
        """Nothing in flight beyond what the level asks for."""
        return self.destroying == 0 and len(self.idle) + self.warming <= self.level

    def schedule(self, nursery: trio.Nursery) -> None:
        """Trim idle interpreters above the level; start warm-ups up to it (bounded)."""
        while len(self.idle) > self.level:
            self.destroying += 1
            nursery.start_soon(self._destroy_one, _unlist(self.idle.pop()))
        while (
            self.error is None
            and self.warming < self.limit
            and len(self.idle) + self.warming < self.level
        ):
            self.warming += 1
            nursery.start_soon(self._warm_one)

    async def _destroy_one(self, interpreter_id: int) -> None:
        try:
            await _destroy(interpreter_id)
        finally:
            self.destroying -= 1
            self.notify()

    async def _warm_one(self) -> None:
        try:
            async with self.limiter:  # cancelled here (the run is ending): nothing started
                if self.owner.closed or len(self.idle) >= self.level:
                    return  # no longer wanted while it queued
                job = _WarmUp(self.config, background=True)
                job.start()
                interpreter_id = await job.result()
            if interpreter_id is None:
                self.error = BootstrapError(
                    "TimeoutError",
                    f"warming up took longer than {WARM_UP_BOUND} s",
                    "",
                    where="warm pool",
                )
            elif self.owner.closed or len(self.idle) >= self.level:
                await _destroy(interpreter_id)  # no longer wanted (level lowered meanwhile)
            else:
                self.idle.append(interpreter_id)
                _IDLE.add(interpreter_id)
                self.booted += 1
        except Exception as exc:  # a broken environment: stop refilling and tell prewarm()
            log.warning("warming up a %s interpreter failed: %s", self.config, exc)
            self.error = exc
        finally:
            self.warming -= 1
            self.notify()
            self.owner.wake()


class _Owner:
    """The system task that owns every pool of one trio run."""

    def __init__(self) -> None:
        self.pools = {config: _Pool(config, self) for config in ("isolated", "legacy")}
        self.closed = False
        self._wake = trio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    for pool in self.pools.values():
                        pool.schedule(nursery)
                    await self._wake.wait()
                    self._wake = trio.Event()
        except Exception:  # a system task must never raise: that would crash the whole run
            log.exception("the warm pool's owner failed; its interpreters are destroyed now")
        finally:
            # Warm-ups in flight were waited for by their (shielded) tasks above; what is idle
            # now is all that is left.
            with trio.CancelScope(shield=True):
                self.closed = True
                async with trio.open_nursery() as nursery:
                    for pool in self.pools.values():
                        while pool.idle:
                            nursery.start_soon(_destroy, _unlist(pool.idle.pop()))
                for pool in self.pools.values():
                    pool.notify()


_OWNER: trio.lowlevel.RunVar[_Owner] = trio.lowlevel.RunVar("subint_spawn_warm_pool")

#: Ids idle in any pool of this interpreter, for :func:`reap_idle_blocking`.
_IDLE: set[int] = set()


def _unlist(interpreter_id: int) -> int:
    _IDLE.discard(interpreter_id)
    return interpreter_id


def reap_idle_blocking() -> None:
    """Destroy, without trio, every interpreter still idle in a pool of this interpreter.

    Normally nothing is: each run's owner destroys its idle interpreters when the run ends.
    This is for a run that died without running its system tasks' ``finally`` (an actor
    whose trio loop was torn down by the hard kill), called after that run is over.
    """
    while _IDLE:
        _destroy_blocking(_IDLE.pop())


def _owner(*, create: bool) -> _Owner | None:
    try:
        return _OWNER.get()
    except LookupError:
        if not create:
            return None
    owner = _Owner()
    _OWNER.set(owner)
    try:
        trio.lowlevel.spawn_system_task(owner.run, name="subint_spawn warm pool")
    except RuntimeError:  # the run is already shutting its system tasks down
        owner.closed = True
    return owner


def _check_config(config: str) -> _driver.Config:
    if config not in BOOT_LIMITS:
        raise ValueError(f"unknown interpreter config {config!r}: use 'isolated' or 'legacy'")
    return config  # type: ignore[return-value]


# -- the API -------------------------------------------------------------------------------------


async def prewarm(n: int, config: _driver.Config = "isolated") -> None:
    """Keep ``n`` warm ``config`` interpreters ready for spawns; return once ``n`` are idle.

    Warm-ups run in the background on dedicated threads, at most ``BOOT_LIMITS[config]`` at a
    time.  Spawns on the ``subint`` backend take from the pool, which refills back to ``n``;
    a spawn that finds it empty boots a cold interpreter instead of waiting.  ``prewarm(0)``
    stops refilling and destroys the idle ones.  The pool lives until the current ``trio.run``
    ends, and every interpreter still idle then is destroyed.

    If this call is cancelled, the pool goes back to its previous size, and interpreters
    warmed for this call are destroyed before the cancellation propagates (shielded, bounded
    by the warm-ups in flight).  Raises :class:`BootstrapError` if an interpreter cannot be
    warmed (a broken environment).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"prewarm: n must be a non-negative int, got {n!r}")
    checked = _check_config(config)
    owner = _owner(create=True)
    assert owner is not None
    if owner.closed:
        raise RuntimeError("prewarm: this trio run is ending; its pool is closed")
    pool = owner.pools[checked]
    previous, pool.level, pool.error = pool.level, n, None
    owner.wake()
    try:
        # Done when n are idle and nothing is in flight beyond the level (for a lower n: the
        # surplus is destroyed by then).
        await pool.wait_for(
            lambda: (
                (len(pool.idle) >= n and pool.settled()) or pool.error is not None or owner.closed
            )
        )
    except BaseException:
        if pool.level == n:
            pool.level = previous
            owner.wake()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(WARM_UP_BOUND):
                await pool.wait_for(lambda: pool.settled() or owner.closed)
        raise
    if pool.error is not None:
        raise pool.error
    if owner.closed:
        raise RuntimeError("prewarm: this trio run is ending; its pool is closed")


def take(
    config: _driver.Config, *, name: str, policy: _driver.KillPolicy
) -> _driver.Subinterpreter | None:
    """An idle warm interpreter for one actor, now, or ``None`` (the caller boots a cold one).

    Synchronous, so nothing can interleave between taking and starting it.  The interpreter
    leaves the pool for good: the caller owns it and must reap it.
    """
    owner = _owner(create=False)
    if owner is None or owner.closed:
        return None
    pool = owner.pools[config]
    if not pool.idle:
        return None
    interpreter_id = _unlist(pool.idle.popleft())
    if interpreter_id in pool.handed_out:  # cannot happen; refuse rather than share one
        raise RuntimeError(f"warm interpreter {interpreter_id} was already handed out")
    pool.handed_out.add(interpreter_id)
    pool.taken += 1
    pool.notify()
    owner.wake()  # refill
    return _driver.adopt(interpreter_id, config, name=name, policy=policy)


async def boot(
    config: _driver.Config, *, name: str, policy: _driver.KillPolicy
) -> _driver.Subinterpreter | None:
    """A cold boot for one spawn that found the pool empty: warm one interpreter now, for it.

    The same warm-up as a refill, at normal priority (someone is waiting for it), under the
    same per-config bound: however many actors are spawned at once, at most
    ``BOOT_LIMITS[config]`` import the runtime at the same time, so N boots do not turn into N
    threads fighting over the cores (or the main GIL) with the parent's loop.  Cancellation
    while queued starts nothing; once the warm-up runs it is waited for (shielded, bounded) and
    the caller gets the interpreter, whose teardown is the caller's.

    ``None`` if the warm-up failed: the caller then boots the plain way, so that a broken
    environment is reported like any actor that cannot start.
    """
    owner = _owner(create=True)
    assert owner is not None
    if owner.closed:
        return None
    pool = owner.pools[config]
    pool.cold += 1
    async with pool.limiter:
        job = _WarmUp(config, background=False)
        job.start()
        try:
            interpreter_id = await job.result()
        except Exception as exc:
            log.debug(
                "cold warm-up of a %s interpreter failed (%s); booting the plain way", config, exc
            )
            return None
    if interpreter_id is None:
        return None
    return _driver.adopt(interpreter_id, config, name=name, policy=policy)


def status(config: _driver.Config = "isolated") -> PoolStatus:
    """The current trio run's pool of ``config`` (all zeros if nothing was prewarmed)."""
    checked = _check_config(config)
    owner = _owner(create=False)
    if owner is None:
        return PoolStatus(checked, 0, 0, 0, 0, 0, 0)
    return owner.pools[checked].status()


def handed_out(config: _driver.Config = "isolated") -> frozenset[int]:
    """Ids of every interpreter this run's pool has handed to a spawn (for tests)."""
    owner = _owner(create=False)
    return (
        frozenset() if owner is None else frozenset(owner.pools[_check_config(config)].handed_out)
    )
