"""Who cleans up after a dedicated thread: decided exactly once, under a lock.

A driver thread (or a pool warm-up thread) ends on its own schedule; the trio task waiting
for it may give up first (abandon) or its whole loop may be gone.  Whichever side comes second
learns what the first decided:

* the thread finished first: it signals the loop through the trio token, and the trio side
  reaps; if the loop is already gone, nobody will reap, so the thread cleans up itself;
* the trio side gave up first: the thread cleans up itself when (if ever) it finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import trio

__all__ = ["Handoff"]


class Handoff:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.token: trio.lowlevel.TrioToken | None = None  # the loop to signal; set before the thread starts
        self.finished = False
        self.abandoned = False

    def thread_done(self, notify: Callable[[], object], clean_up_here: Callable[[], object]) -> None:
        """Called once, from the thread's ``finally``."""
        with self._lock:
            self.finished = True
            abandoned = self.abandoned
        if abandoned:
            clean_up_here()
            return
        try:
            assert self.token is not None
            self.token.run_sync_soon(notify)
        except trio.RunFinishedError:
            clean_up_here()  # the loop is gone: nobody else will
        except OSError:
            # The loop died without finishing (its interpreter's trio run was killed by an
            # injected exception): its wakeup socket is closed, so the callback would sit in a
            # queue nobody reads.  Same as gone.
            clean_up_here()

    def give_up(self, *, thread_stuck: bool = True) -> bool:
        """The trio side stops waiting.  With ``thread_stuck``, refused (False) if the thread
        finished in the meantime: its signal is queued and the caller reaps as usual."""
        with self._lock:
            if thread_stuck and self.finished:
                return False
            self.abandoned = True
        return True
