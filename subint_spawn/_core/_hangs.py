"""Stack dumps for hangs: a test or program that stops making progress tells where it is stuck.

``faulthandler`` writes from a C watchdog thread, so it works even when every Python thread is
wedged.  It writes to a file rather than stderr because test runners capture stderr and throw
it away when the process is killed for timing out.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["dump_on_hang"]


@contextmanager
def dump_on_hang(seconds: float, path: str | os.PathLike[str]) -> Iterator[Path]:
    """If the block is still running after ``seconds``, write every thread's stack to ``path``.

    The file is removed again when the block finishes in time and nothing was written.  Only
    one such timer can be armed per process (a faulthandler limitation); arming a new one
    replaces the old.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w") as sink:
        faulthandler.dump_traceback_later(seconds, repeat=False, file=sink, exit=False)
        try:
            yield target
        finally:
            faulthandler.cancel_dump_traceback_later()
    if target.exists() and target.stat().st_size == 0:
        target.unlink()
