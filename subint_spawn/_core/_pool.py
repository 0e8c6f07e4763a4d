"""The warm interpreter pool: booted interpreters with the actor runtime imported ahead of time.

A cold actor pays for ``import trio`` and the runtime inside its new interpreter (~150 ms of
CPU here) before it can answer anything.  A *warm* interpreter has already paid it, so an
actor spawned into one answers its first message in milliseconds.

The pool is a cache of the driver's :class:`~._driver.Subinterpreter` objects, booted by
:func:`._driver.boot` and destroyed by their own :meth:`~._driver.Subinterpreter.aclose`: it
owns no thread, destroy or abandon logic of its own.  Rules (see ai/warm-pool.md for the why):

* **One pool per trio run, config and module set**, held in a :class:`trio.lowlevel.RunVar`
  and owned by a system task.  When the run ends, the owner's shielded ``finally`` waits for
  boots in flight (bounded by the driver) and destroys every interpreter still idle: nothing
  outlives the ``trio.run``.  If the run dies without that ``finally`` (an actor's loop torn
  down by a hard kill), the idle interpreters are still the driver's, and its orphan reaper
  destroys them when the actor's function ends.
* **Bounded boots.**  At most :data:`BOOT_LIMITS` boots per config run at once, refills and
  spawns together: isolated ones run in parallel (one per core), legacy ones share the main
  GIL with the parent's loop, so one at a time.
* **One interpreter, one actor.**  :func:`take` hands an idle interpreter to exactly one spawn
  and never sees it again: the actor's teardown destroys it.  A used interpreter is never
  reused (its ``sys.modules``, ``__main__`` and module state would leak into the next actor).
* **Spawns never wait for the pool.**  :func:`take` returns ``None`` when nothing is idle and
  the spawn boots an interpreter of its own with :func:`boot` (the same boot, at normal
  priority, under the same per-config bound); each take wakes the owner to refill.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from . import _driver
from ._names import CONFIGS, Config, check_config

__all__ = [
    "BOOT_LIMITS",
    "WARM_UP_MODULES",
    "PoolStatus",
    "boot",
    "prewarm",
    "status",
    "take",
]

log = logging.getLogger("subint_spawn.pool")

#: What every actor imports before it can serve: trio, the driver's guest half and what it
#: installs (process guards, the stack-dump link), the runtime and its spawn defaults.  Any
#: module of ours an actor imports on its way to "ready" belongs here: importing it at spawn
#: time costs the warm path ~0.5-2 ms per module (measured: the guards and stacks modules
#: were 2 ms of a 6 ms warm spawn).
WARM_UP_MODULES: tuple[str, ...] = (
    "trio",
    "subint_spawn._core._guest",
    "subint_spawn._core._guards",
    "subint_spawn._core._stacks",
    "subint_spawn._core._actor",
    "subint_spawn._core._defaults",
)
#: How many boots of each config may run at once.  Isolated interpreters import in parallel,
#: one per core; legacy ones contend with the parent's loop for the main GIL.
BOOT_LIMITS: dict[Config, int] = {"isolated": max(1, os.cpu_count() or 1), "legacy": 1}


@dataclass(frozen=True)
class PoolStatus:
    """One pool (config and module set) in the current trio run.

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


class _Pool:
    """Idle warm interpreters of one config and module set, and the bookkeeping to refill."""

    def __init__(self, config: Config, modules: tuple[str, ...], owner: _Owner) -> None:
        self.config = config
        self.modules = modules
        self.owner = owner
        self.limit = BOOT_LIMITS[config]
        self.level = 0
        self.idle: collections.deque[_driver.Subinterpreter] = collections.deque()
        self.warming = 0
        self.destroying = 0
        self.error: BaseException | None = None
        self.handed_out: set[int] = set()  # ids are never reused by CPython
        self.booted = self.taken = self.cold = 0
        self._changed = trio.Event()

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """Shared by every pool of this config: boots contend for the same cores (or GIL)."""
        return self.owner.limiters[self.config]

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
            nursery.start_soon(self._destroy_one, self.idle.pop())
        while (
            self.error is None
            and self.warming < self.limit
            and len(self.idle) + self.warming < self.level
        ):
            self.warming += 1
            nursery.start_soon(self._warm_one)

    async def _destroy_one(self, interp: _driver.Subinterpreter) -> None:
        try:
            await interp.aclose()
        finally:
            self.destroying -= 1
            self.notify()

    async def _warm_one(self) -> None:
        try:
            async with self.limiter:  # cancelled here (the run is ending): nothing started
                if self.owner.closed or len(self.idle) >= self.level:
                    return  # no longer wanted while it queued
                interp = await _driver.boot(
                    self.config, modules=self.modules, name="warm", background=True
                )
            if self.owner.closed or len(self.idle) >= self.level:
                await interp.aclose()  # no longer wanted (level lowered meanwhile)
            else:
                self.idle.append(interp)
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
        self.pools: dict[tuple[Config, tuple[str, ...]], _Pool] = {}
        self.limiters = {config: trio.CapacityLimiter(BOOT_LIMITS[config]) for config in CONFIGS}
        self.closed = False
        self._wake = trio.Event()

    def pool(self, config: Config, modules: tuple[str, ...]) -> _Pool:
        key = (config, modules)
        found = self.pools.get(key)
        if found is None:
            found = self.pools[key] = _Pool(config, modules, self)
        return found

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    for pool in list(self.pools.values()):
                        pool.schedule(nursery)
                    await self._wake.wait()
                    self._wake = trio.Event()
        except Exception:  # a system task must never raise: that would crash the whole run
            log.exception("the warm pool's owner failed; its interpreters are destroyed now")
        finally:
            # Boots in flight were waited for by their (shielded) tasks above; what is idle
            # now is all that is left.
            with trio.CancelScope(shield=True):
                self.closed = True
                async with trio.open_nursery() as nursery:
                    for pool in self.pools.values():
                        while pool.idle:
                            nursery.start_soon(pool.idle.pop().aclose)
                for pool in self.pools.values():
                    pool.notify()


_OWNER: trio.lowlevel.RunVar[_Owner] = trio.lowlevel.RunVar("subint_spawn_warm_pool")


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


# -- the API -------------------------------------------------------------------------------------


async def prewarm(
    n: int, config: Config = "isolated", *, modules: Sequence[str] = WARM_UP_MODULES
) -> None:
    """Keep ``n`` warm ``config`` interpreters ready for spawns; return once ``n`` are idle.

    Boots run in the background on dedicated threads, at most ``BOOT_LIMITS[config]`` at a
    time.  Spawns on the ``subint`` backend take from the pool, which refills back to ``n``;
    a spawn that finds it empty boots a cold interpreter instead of waiting.  ``prewarm(0)``
    stops refilling and destroys the idle ones.  The pool lives until the current ``trio.run``
    ends, and every interpreter still idle then is destroyed.  ``modules`` is what each warm
    interpreter imports ahead (default: the actor runtime); each module set is a pool of its
    own.

    If this call is cancelled, the pool goes back to its previous size, and interpreters
    warmed for this call are destroyed before the cancellation propagates (shielded, bounded
    by the boots in flight).  Raises :class:`BootstrapError` if an interpreter cannot be
    warmed (a broken environment).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"prewarm: n must be a non-negative int, got {n!r}")
    checked = check_config(config)
    owner = _owner(create=True)
    assert owner is not None
    if owner.closed:
        raise RuntimeError("prewarm: this trio run is ending; its pool is closed")
    pool = owner.pool(checked, tuple(modules))
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
            with trio.move_on_after(_driver.BOOT_BOUND):
                await pool.wait_for(lambda: pool.settled() or owner.closed)
        raise
    if pool.error is not None:
        raise pool.error
    if owner.closed:
        raise RuntimeError("prewarm: this trio run is ending; its pool is closed")


def take(
    config: Config,
    *,
    modules: Sequence[str] = WARM_UP_MODULES,
    name: str,
    policy: _driver.KillPolicy,
    guard_process: bool,
    defer_destroy: bool,
) -> _driver.Subinterpreter | None:
    """An idle warm interpreter for one actor, now, or ``None`` (the caller boots a cold one).

    Synchronous, so nothing can interleave between taking and starting it.  The interpreter
    leaves the pool for good: the caller owns it and must reap it.
    """
    owner = _owner(create=False)
    if owner is None or owner.closed:
        return None
    pool = owner.pools.get((config, tuple(modules)))
    if pool is None or not pool.idle:
        return None
    interp = pool.idle.popleft()
    if interp.id in pool.handed_out:  # cannot happen; refuse rather than share one
        raise RuntimeError(f"warm interpreter {interp.id} was already handed out")
    pool.handed_out.add(interp.id)
    pool.taken += 1
    pool.notify()
    owner.wake()  # refill
    interp.name, interp.policy = name, policy
    interp.guard_process, interp.defer_destroy = guard_process, defer_destroy
    return interp


async def boot(
    config: Config,
    *,
    modules: Sequence[str] = WARM_UP_MODULES,
    name: str,
    policy: _driver.KillPolicy,
    guard_process: bool,
    defer_destroy: bool,
) -> _driver.Subinterpreter | None:
    """A cold boot for one spawn that found the pool empty: warm one interpreter now, for it.

    The same boot as a refill, at normal priority (someone is waiting for it), under the same
    per-config bound: however many actors are spawned at once, at most ``BOOT_LIMITS[config]``
    import the runtime at the same time, so N boots do not turn into N threads fighting over
    the cores (or the main GIL) with the parent's loop.  Cancellation while queued starts
    nothing; once the boot runs it is waited for (shielded, bounded) and the caller gets the
    interpreter, whose teardown is the caller's.

    ``None`` if the boot failed: the caller then boots the plain way, so that a broken
    environment is reported like any actor that cannot start.
    """
    owner = _owner(create=True)
    assert owner is not None
    if owner.closed:
        return None
    pool = owner.pool(config, tuple(modules))
    pool.cold += 1
    async with pool.limiter:
        try:
            return await _driver.boot(
                config,
                modules=modules,
                name=name,
                policy=policy,
                guard_process=guard_process,
                defer_destroy=defer_destroy,
            )
        except Exception as exc:
            log.debug(
                "cold boot of a %s interpreter failed (%s); booting the plain way", config, exc
            )
            return None


def status(config: Config = "isolated", *, modules: Sequence[str] = WARM_UP_MODULES) -> PoolStatus:
    """The current trio run's pool of ``config`` (all zeros if nothing was prewarmed)."""
    checked = check_config(config)
    owner = _owner(create=False)
    pool = None if owner is None else owner.pools.get((checked, tuple(modules)))
    if pool is None:
        return PoolStatus(checked, 0, 0, 0, 0, 0, 0)
    return pool.status()


def handed_out(
    config: Config = "isolated", *, modules: Sequence[str] = WARM_UP_MODULES
) -> frozenset[int]:
    """Ids of every interpreter this run's pool has handed to a spawn (for tests)."""
    owner = _owner(create=False)
    pool = None if owner is None else owner.pools.get((check_config(config), tuple(modules)))
    return frozenset() if pool is None else frozenset(pool.handed_out)
