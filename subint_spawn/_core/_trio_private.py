"""Every place subint_spawn reaches into trio's private internals, in one module.

trio gives no public way to do these few things, and each is needed for a guarantee of ours
(no OS thread outlives its interpreter; Ctrl-C handling that knows trio's own handler).  Kept
here, and only here, so a trio release that moves them breaks one module, loudly: each helper
checks that what it touches is still there and, if not, degrades to doing nothing and logs
once, naming the trio version it was written against.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["WRITTEN_FOR", "idle_worker_count", "is_trio_sigint_handler", "stop_idle_workers"]

#: The trio versions these helpers were checked against.
WRITTEN_FOR = "trio 0.27 to 0.35"

_THREAD_CACHE_MODULE = "trio._core._thread_cache"
_KI_MODULE = "trio._core._ki"
_warned: set[str] = set()


def _missing(what: str) -> None:
    if what in _warned:
        return
    _warned.add(what)
    version = getattr(sys.modules.get("trio"), "__version__", "?")
    logging.getLogger("subint_spawn").warning(
        "trio %s no longer has %s (subint_spawn was written for %s); skipping what needs it",
        version,
        what,
        WRITTEN_FOR,
    )


def _idle_workers() -> tuple[Any, dict[Any, Any]] | None:
    """(the thread-cache module, its dict of idle workers), if trio is loaded and has them."""
    module = sys.modules.get(_THREAD_CACHE_MODULE)
    if module is None:
        return None  # trio was never imported here: no workers to count or stop
    idle = getattr(getattr(module, "THREAD_CACHE", None), "_idle_workers", None)
    if not isinstance(idle, dict):
        _missing("THREAD_CACHE._idle_workers")
        return None
    return module, idle


def idle_worker_count() -> int:
    """How many of trio's cached worker threads sit idle in this interpreter."""
    found = _idle_workers()
    return 0 if found is None else len(found[1])


def stop_idle_workers() -> None:
    """Make trio's idle worker threads in this interpreter exit now, not after their 10 s idle.

    Each idle worker waits on its own lock for a job; handing it a no-op job with the idle
    timeout at zero makes it run the job and then exit at once.
    """
    found = _idle_workers()
    if found is None:
        return
    module, idle = found
    if not hasattr(module, "IDLE_TIMEOUT"):
        _missing("IDLE_TIMEOUT")
        return
    module.IDLE_TIMEOUT = 0
    while idle:
        try:
            worker, _ = idle.popitem()
        except KeyError:
            break
        try:
            worker._job = (_noop, _noop, None)
            worker._worker_lock.release()
        except AttributeError:
            _missing("WorkerThread._job/_worker_lock")
            return


def is_trio_sigint_handler(handler: Callable[..., object] | object) -> bool:
    """Whether ``handler`` is the SIGINT handler trio installs while it runs."""
    return getattr(handler, "__module__", None) == _KI_MODULE


def _noop(*_: object) -> None:
    return None
