"""A dedicated OS thread whose end is signalled to a trio loop, and who cleans up after it.

Every thread that runs code in (or creates, or destroys) a subinterpreter is one of these: a
fresh daemon thread, never trio's thread cache, because running an interpreter leaves its
thread state bound to the OS thread, and a recycled worker would carry it into unrelated jobs.

The thread ends on its own schedule; the trio task waiting for it may give up first (abandon)
or its whole loop may be gone.  Whichever side comes second learns what the first decided,
exactly once, under a lock:

* the thread finished first: it signals the loop through the trio token (``run_sync_soon``
  never blocks, so the thread is done microseconds later) and the trio side cleans up; if the
  loop is already gone, nobody will, so the thread runs ``orphaned`` itself;
* the trio side gave up first (:meth:`DedicatedThread.give_up`): the thread runs ``orphaned``
  when, if ever, it finishes.

Inside a guest that is being killed, the signal itself can be lost: an injected exception that
lands while the loop runs the signal's callback cuts it off, and a shielded wait for it would
never end (ai/kill-lands-once.md).  So the trio side waits with :meth:`DedicatedThread.wait_done`,
and every KILL's wake-up of the guest's loop sets the signal of each awaited thread that has
finished (:func:`_repair_lost_signals`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import trio

from ._census import REGISTRY
from ._guest_hooks import on_kill_wake

__all__ = ["DedicatedThread"]


class DedicatedThread:
    """Run ``target()`` once on a new daemon thread named ``name``.

    ``on_done`` runs in the trio loop that called :meth:`start` once the target has returned
    (or raised: catching is the target's job); ``orphaned`` runs on the thread itself if
    nobody in that loop will clean up any more.
    """

    def __init__(
        self,
        target: Callable[[], object],
        *,
        name: str,
        on_done: Callable[[], object],
        orphaned: Callable[[], object],
    ) -> None:
        self._target = target
        self._on_done = on_done
        self._orphaned = orphaned
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        #: The target returned (set on the thread, under the lock, before anyone is told).
        self.finished = False
        #: The trio side stopped waiting; the thread cleans up after itself.
        self.abandoned = False
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    @property
    def name(self) -> str:
        return self.thread.name

    def start(self) -> None:
        """Start it; call from the trio loop that is to hear about its end."""
        self._token = trio.lowlevel.current_trio_token()
        REGISTRY.thread_started(id(self.thread))
        try:
            self.thread.start()
        except BaseException:
            REGISTRY.thread_finished(id(self.thread))
            raise

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None) -> bool:
        """Block until the thread has ended or ``timeout`` passed; whether it ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def give_up(self, *, thread_stuck: bool = True) -> bool:
        """The trio side stops waiting.  With ``thread_stuck``, refused (False) if the thread
        finished in the meantime: its signal is queued and the caller cleans up as usual."""
        with self._lock:
            if thread_stuck and self.finished:
                return False
            self.abandoned = True
        return True

    async def wait_done(self, signal: trio.Event) -> None:
        """Until ``signal`` (this thread's ``on_done`` sets it) is set: an ``Event.wait`` that
        a lost signal cannot strand (see the module docstring)."""
        waiter = object()  # one entry per wait: two tasks may await the same thread
        _awaited[waiter] = (self, signal)
        try:
            await signal.wait()
        finally:
            del _awaited[waiter]

    def _main(self) -> None:
        try:
            self._target()
        finally:
            self._finished()
            REGISTRY.thread_finished(id(self.thread))

    def _finished(self) -> None:
        with self._lock:
            self.finished = True
            abandoned = self.abandoned
        if abandoned:
            self._orphaned()
            return
        assert self._token is not None
        try:
            self._token.run_sync_soon(self._on_done)
        except trio.RunFinishedError:
            self._orphaned()  # the loop is gone: nobody else will clean up
        except OSError:
            # The loop died without finishing (its interpreter's trio run was killed by an
            # injected exception): its wakeup socket is closed, so the callback would sit in a
            # queue nobody reads.  Same as gone.
            self._orphaned()


#: Threads whose end a task of this interpreter awaits now, with the signal it waits for.
_awaited: dict[object, tuple[DedicatedThread, trio.Event]] = {}


def _repair_lost_signals() -> None:
    """Set the signal of every awaited thread that has finished: its own was cut off."""
    for thread, signal in list(_awaited.values()):
        if thread.finished and not signal.is_set():
            signal.set()


on_kill_wake(_repair_lost_signals)
