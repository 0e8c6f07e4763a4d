"""Stack dumps for hangs: a test or program that stops making progress tells where it is stuck.

Two writers, because neither can do the whole job:

* ``faulthandler`` writes from a C watchdog thread, so it works even when every Python thread
  is wedged, including one holding the GIL in C.  But it only sees the interpreter it was
  armed in: an actor's subinterpreter threads are invisible to it, and a C timer cannot call
  Python to ask them.
* :func:`._stacks.dump_stacks`, run from a Python helper thread, asks every live actor (see
  :mod:`._stacks`).  It needs the GIL for a moment, and never the trio loop.

Both write to files rather than stderr, because test runners capture stderr and throw it
away when the process is killed for timing out.

``faulthandler`` is imported inside the functions: this module is loaded with the package in
every actor interpreter, and isolated interpreters refuse to import ``faulthandler``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self, TextIO

from ._stacks import dump_stacks, register_helper_thread, unregister_helper_thread

__all__ = ["StackDumpSignal", "actor_stacks_path", "dump_on_hang", "install_stack_dump_signal"]

log = logging.getLogger("subint_spawn.hangs")

# A helper that is mid-dump when asked to stop finishes first: dump_stacks is bounded by its
# per-actor timeout (asked in parallel), plus writing the text.
_HELPER_STOP_BOUND = 10.0


def actor_stacks_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`dump_on_hang` writes the actors' stacks: ``x.txt`` -> ``x.actors.txt``."""
    target = Path(path)
    return target.with_name(f"{target.stem}.actors{target.suffix}")


class _ActorStackTimer:
    """After ``seconds``, unless stopped first, write :func:`dump_stacks` to ``path``."""

    def __init__(self, seconds: float, path: Path) -> None:
        self.path = path
        self.fired = threading.Event()
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="subint-hang-dump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_HELPER_STOP_BOUND)

    def _run(self) -> None:
        if self._stop.wait(self._seconds):
            return
        register_helper_thread(threading.get_ident())
        try:
            with open(self.path, "w") as out:
                dump_stacks(out)
        except Exception:
            log.exception("writing actor stacks to %s failed", self.path)
        finally:
            unregister_helper_thread(threading.get_ident())
            self.fired.set()


@contextmanager
def dump_on_hang(
    seconds: float, path: str | os.PathLike[str], *, actor_stacks: bool = True
) -> Iterator[Path]:
    """If the block is still running after ``seconds``, write where everything is stuck.

    ``path`` gets every thread of this interpreter (faulthandler, so even a wedged process
    writes it).  With ``actor_stacks``, :func:`actor_stacks_path` (``<stem>.actors<suffix>``
    next to it) gets :func:`dump_stacks`: this process's threads and every live actor's, by
    name, nested actors included.  The faulthandler file is removed again when the block
    ends in time, by returning or by raising; the actors file is only created when the timer
    fires.  Only one faulthandler timer can be armed per process; arming a new one replaces
    the old.
    """
    import faulthandler

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    timer = _ActorStackTimer(seconds, actor_stacks_path(target)) if actor_stacks else None
    try:
        with open(target, "w") as sink:
            faulthandler.dump_traceback_later(seconds, repeat=False, file=sink, exit=False)
            if timer is not None:
                timer.start()
            try:
                yield target
            finally:
                faulthandler.cancel_dump_traceback_later()
                if timer is not None:
                    timer.stop()
    finally:
        # However the block ended (a failed or skipped test raises through here), an empty
        # file only means nothing hung: leave no clutter behind.
        if target.exists() and target.stat().st_size == 0:
            target.unlink()


# -- the signal trigger -------------------------------------------------------------------------

_installed: dict[int, StackDumpSignal] = {}


class StackDumpSignal:
    """An installed stack-dump signal; :meth:`uninstall` it, or use it as a context manager.

    The signal is caught by ``faulthandler``'s C-level handler, which writes into a pipe
    that a helper thread watches; the helper then runs :func:`dump_stacks`.  So neither the
    main thread nor the trio loop has to run any Python for the dump to happen: a plain
    Python signal handler would only run once the main thread gets back to bytecode.
    """

    def __init__(self, signum: int, file: TextIO | str | os.PathLike[str] | None) -> None:
        self.signum = signum
        self.file = file
        self.dumps = 0  # dumps written so far
        self._wake_read, self._wake_write = os.pipe()
        self._stop_read, self._stop_write = os.pipe()
        for fd in (self._wake_read, self._wake_write):
            # The write end is non-blocking so that a full pipe can only cut faulthandler's
            # (discarded) text short, never block the signal handler.
            os.set_blocking(fd, False)
        self._thread = threading.Thread(
            target=self._serve, name="subint-stack-dump-signal", daemon=True
        )

    def _install(self) -> None:
        import faulthandler

        faulthandler.register(self.signum, file=self._wake_write, all_threads=True, chain=False)
        self._thread.start()

    def uninstall(self) -> None:
        """Restore the signal's previous handling and stop the helper (idempotent)."""
        if _installed.get(self.signum) is not self:
            return
        import faulthandler

        faulthandler.unregister(self.signum)
        del _installed[self.signum]
        os.write(self._stop_write, b"x")
        self._thread.join(_HELPER_STOP_BOUND)
        for fd in (self._wake_read, self._wake_write, self._stop_read, self._stop_write):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def _serve(self) -> None:
        import select

        register_helper_thread(threading.get_ident())
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if self._stop_read in ready:
                    return
                self._drain()
                self._dump()
        finally:
            unregister_helper_thread(threading.get_ident())

    def _drain(self) -> None:
        """Discard faulthandler's text: it only woke us, and dump_stacks covers those threads."""
        while True:
            try:
                if not os.read(self._wake_read, 65536):
                    return
            except BlockingIOError:
                return

    def _dump(self) -> None:
        try:
            if isinstance(self.file, (str, os.PathLike)):
                with open(self.file, "a") as out:
                    dump_stacks(out)
            else:
                dump_stacks(self.file)
            self.dumps += 1
        except Exception:
            log.exception("dumping stacks on signal %d failed", self.signum)


def install_stack_dump_signal(
    signum: int = signal.SIGUSR1, file: TextIO | str | os.PathLike[str] | None = None
) -> StackDumpSignal:
    """On ``signum`` (default SIGUSR1), write :func:`dump_stacks` to ``file``.

    ``file`` is a text stream, a path (appended to), or None for ``sys.stderr``.  Works while
    the trio loop is stuck: a helper thread does the dump.  Call it from the main thread of
    the main interpreter, like any signal setup; it replaces the signal's handler until
    :meth:`StackDumpSignal.uninstall` (or the end of its ``with`` block).
    """
    import _interpreters

    if (
        threading.current_thread() is not threading.main_thread()
        or _interpreters.get_current()[0] != 0
    ):
        raise RuntimeError(
            "install_stack_dump_signal() must be called from the main thread of the main "
            "interpreter, like signal.signal(); inside an actor, call dump_stacks() instead"
        )
    if signum in _installed:
        raise RuntimeError(
            f"a stack dump is already installed for signal {signum}; uninstall it first"
        )
    trigger = StackDumpSignal(signum, file)
    _installed[signum] = trigger
    try:
        trigger._install()
    except BaseException:
        import faulthandler

        faulthandler.unregister(signum)
        del _installed[signum]
        for fd in (
            trigger._wake_read,
            trigger._wake_write,
            trigger._stop_read,
            trigger._stop_write,
        ):
            os.close(fd)
        raise
    return trigger
