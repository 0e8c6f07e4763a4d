"""Ctrl-C in a process that owns actors: stop them all, in bound, then raise KeyboardInterrupt.

trio turns SIGINT into a ``KeyboardInterrupt`` in the main task.  That starts the actor
nurseries' teardown, but the teardown is shielded and takes up to ~1.3 s for an actor stuck in
C; a second Ctrl-C then only adds another ``KeyboardInterrupt`` to a nursery that is still
waiting for its shielded children, so a user who presses it again gets nothing.

So while at least one actor nursery is open in the main thread of the main interpreter, SIGINT
gets this module's handler instead of trio's:

* **First Ctrl-C**: every such nursery is cancelled (through its trio token, which is safe
  from a signal handler), so every actor goes through the normal bounded teardown: IPC stop,
  the backend's hard stop, abandon for a thread stuck in C.  When a nursery's block has
  finished tearing down, it raises ``KeyboardInterrupt``, after printing which actors had to
  be abandoned.  Inside the block, code sees the Ctrl-C as cancellation (``finally`` blocks
  run, ``except KeyboardInterrupt`` inside the block does not).
* **Second Ctrl-C**: one line on stderr, then ``os._exit(130)`` at once.  Nothing else runs:
  not the teardown, not ``atexit``, not interpreter finalization.
* **One press delivered twice is one press**: a SIGINT less than :data:`SAME_PRESS_WINDOW`
  after the first one is ignored.  Tools that stop a child signal it and then its process
  group (GNU ``timeout -s INT``, some supervisors), so one "press" arrives twice within
  microseconds; counted as a second press, it would skip the whole teardown.  No human
  presses Ctrl-C twice within 0.2 s (a deliberate double tap is slower, and a held key
  repeats only after a longer delay), and the window is far above the time between two
  deliveries of one signal, even when a busy machine runs our handler late: the second
  delivery's handler runs as soon as the main thread is scheduled again.

The handler is only installed over the default handler or trio's own; a program that handles
SIGINT itself (or ignores it, as ``trio``-backend actor processes do) is left alone.  The
previous handler is put back when the last nursery closes.
"""

from __future__ import annotations

import _interpreters
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import trio

from ._trio_private import is_trio_sigint_handler

__all__ = [
    "FORCED_EXIT_STATUS",
    "SAME_PRESS_WINDOW",
    "Watch",
    "beyond_cancellation",
    "ctrl_c_cancels",
    "ignore_sigint_in_actor_process",
    "report_abandoned",
]

#: ``128 + SIGINT``: what a shell reports for a process ended by Ctrl-C.
FORCED_EXIT_STATUS = 130
#: Seconds after the first Ctrl-C in which another SIGINT is the same press delivered again.
SAME_PRESS_WINDOW = 0.2

_FIRST = "subint_spawn: Ctrl-C: stopping {count} actor(s); press Ctrl-C again to exit at once\n"
_FORCED = (
    "subint_spawn: second Ctrl-C: exiting now (status 130) without waiting for actors to stop\n"
)


@dataclass(eq=False)
class Watch:
    """One actor nursery's stake in Ctrl-C: ``scope`` is cancelled on the first press."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    token: trio.lowlevel.TrioToken | None = None
    #: How many actors the nursery runs (for the first message); set by the nursery.
    count_actors: Callable[[], int] = lambda: 0
    interrupted: bool = False
    #: Whether this process's SIGINT reaches this watch (main thread of the main interpreter).
    active: bool = False


class _Sigint:
    """The handler's state; only touched from the main thread (the handler runs there too)."""

    def __init__(self) -> None:
        self.watches: list[Watch] = []
        self.previous: Any = None
        #: ``time.monotonic()`` of the first press, or None before it.
        self.first_press_at: float | None = None


_state = _Sigint()


def _handle_sigint(signum: int, frame: FrameType | None) -> None:
    # Runs in the main thread between two bytecodes, possibly inside trio's scheduler: only
    # os.write (a buffered stream may be mid-write right here) and run_sync_soon, which trio
    # documents as safe from signal handlers.
    del signum, frame
    now = time.monotonic()
    if _state.first_press_at is not None:
        if now - _state.first_press_at < SAME_PRESS_WINDOW:
            return  # the first press, delivered again (signalled to us and to our group)
        _write_stderr(_FORCED)
        os._exit(FORCED_EXIT_STATUS)
    _state.first_press_at = now
    count = 0
    for watch in list(_state.watches):
        watch.interrupted = True
        count += watch.count_actors()
        if watch.token is not None:
            try:
                watch.token.run_sync_soon(watch.scope.cancel)
            except trio.RunFinishedError:
                pass  # that run is over; its nursery is gone with it
    _write_stderr(_FIRST.format(count=count))


def _write_stderr(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass  # no stderr: the exit status still tells


def _in_main_thread_of_main_interpreter() -> bool:
    return (
        _interpreters.get_current()[0] == 0
        and threading.current_thread() is threading.main_thread()
    )


def _is_ours_to_replace(handler: Any) -> bool:
    """The default handler, or trio's KeyboardInterrupt handler: both would only raise
    ``KeyboardInterrupt``, which we still do.  Anything else is the program's own choice."""
    if handler is signal.default_int_handler or handler is _handle_sigint:
        return True
    return is_trio_sigint_handler(handler)


def _eligible() -> bool:
    from ._guards import guarded_actor

    if guarded_actor() is not None:  # inside an actor: its parent owns Ctrl-C
        return False
    if not _in_main_thread_of_main_interpreter():
        return False
    return _is_ours_to_replace(signal.getsignal(signal.SIGINT))


def _register(watch: Watch) -> None:
    if not _state.watches:
        _state.previous = signal.getsignal(signal.SIGINT)
        _state.first_press_at = None
        signal.signal(signal.SIGINT, _handle_sigint)
    _state.watches.append(watch)


def _unregister(watch: Watch) -> None:
    _state.watches.remove(watch)
    if not _state.watches:
        if signal.getsignal(signal.SIGINT) is _handle_sigint:
            signal.signal(signal.SIGINT, _state.previous)
        _state.previous = None
        _state.first_press_at = None


@contextmanager
def ctrl_c_cancels() -> Iterator[Watch]:
    """For one actor nursery: a :class:`Watch` whose ``scope`` the first Ctrl-C cancels.

    Wrap the nursery's whole life, teardown included, in ``with watch.scope``: the second
    Ctrl-C must still be caught while actors are being stopped.  Outside the main thread of
    the main interpreter (in an actor, or a trio run on another thread) the watch is inert.
    """
    watch = Watch()
    if _eligible():
        watch.token = trio.lowlevel.current_trio_token()
        watch.active = True
        _register(watch)
    try:
        yield watch
    finally:
        if watch.active:
            _unregister(watch)


def ignore_sigint_in_actor_process() -> None:
    """For a ``trio``-backend actor process, before its ``trio.run``: ignore SIGINT.

    A terminal's Ctrl-C goes to its whole foreground process group, actor processes
    included.  Each would raise ``KeyboardInterrupt`` at a random point and print its own
    traceback, racing its parent, which got the same Ctrl-C and stops every actor anyway: over
    IPC, then with SIGKILL.  With SIGINT ignored, trio does not install its handler either,
    and the parent is the only one that decides.  (``SIG_IGN`` also survives ``exec``, so
    processes an actor starts inherit it.)
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def beyond_cancellation(error: BaseException | None) -> BaseException | None:
    """``error`` without the ``trio.Cancelled`` parts Ctrl-C itself caused (``None`` if that
    is all it was): what is left is worth showing as the cause of the ``KeyboardInterrupt``."""
    if isinstance(error, BaseExceptionGroup):
        _, rest = error.split(trio.Cancelled)
        return rest
    if isinstance(error, trio.Cancelled):
        return None
    return error


def report_abandoned(abandoned: list[tuple[str, str]]) -> None:
    """After an interrupted teardown: name every actor that could not be stopped."""
    for name, detail in abandoned:
        sys.stderr.write(
            f"subint_spawn: Ctrl-C: abandoned actor {name!r} ({detail}): it did not stop, most "
            "likely blocked inside a C call, so its finally blocks did not run; its thread "
            "stays in this process until that call returns\n"
        )
    sys.stderr.flush()
