"""``python -m subint_spawn._backends._trio_child FD NAME MODULES_JSON``: a process actor."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    fd, name, modules = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    path = os.environ.pop("SUBINT_SPAWN_SYS_PATH", None)
    if path:
        sys.path[:] = json.loads(path)
    _die_with_parent()
    import trio

    from .._core._actor import actor_main

    trio.run(actor_main, fd, name, modules, "msgpack", False, "trio", "isolated")


def _die_with_parent() -> None:
    """SIGKILL this process when the parent thread that started it ends (Linux).

    An actor busy in a loop never reads the EOF its dead parent leaves on the channel; without
    this, a hard-killed mid-level actor would leave its children running as orphans.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    main()
