"""``python -m subint_spawn._backends._trio_child FD NAME MODULES_JSON``: a process actor."""

from __future__ import annotations

import json
import os
import sys
from functools import partial

from .._core._names import DUMP_FD_ENV, LOG_LEVEL_ENV, PARENT_PID_ENV, PATH_ENV


def main() -> None:
    fd, name, modules = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    path = os.environ.pop(PATH_ENV, None)
    if path:
        sys.path[:] = json.loads(path)
    _die_with_parent()
    _answer_stack_dumps()
    import trio

    from .._core._actor import actor_main

    log_level = int(os.environ.pop(LOG_LEVEL_ENV, "30") or 30)
    from .._core._guards import install_process_guards
    from .._core._interrupt import ignore_sigint_in_actor_process

    ignore_sigint_in_actor_process()
    install_process_guards(name, own_process=True)
    trio.run(
        partial(
            actor_main,
            fd=fd,
            name=name,
            enable_modules=modules,
            codec="msgpack",
            dup=False,
            backend="trio",
            config="isolated",
            log_level=log_level,
        )
    )


def _die_with_parent() -> None:
    """Exit at once when the parent *process* ends (Linux: a pidfd becomes readable).

    An actor busy in a loop never reads the EOF its dead parent leaves on the channel;
    without this, a hard-killed mid-level actor would leave its children running as orphans.
    Not PR_SET_PDEATHSIG: it fires when the parent *thread* that forked exits, and trio forks
    from a worker thread that exits after 10 s idle (that killed every actor after ~10 s).
    """
    expected = int(os.environ.pop(PARENT_PID_ENV, "0") or 0)
    if not expected or not hasattr(os, "pidfd_open"):
        return
    try:
        pidfd = os.pidfd_open(expected)
    except ProcessLookupError:
        os._exit(1)  # the parent is already gone
    except OSError:
        return  # no pidfd support here: rely on the channel's EOF
    if os.getppid() != expected:  # it died before we watched
        os._exit(1)

    def watch() -> None:
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll()
        os._exit(1)

    import threading

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _answer_stack_dumps() -> None:
    """Serve the parent's stack-dump requests from a daemon thread of this process.

    A thread, not a signal handler: it answers while the main thread is stuck anywhere that
    releases the GIL (a wedged trio loop, a blocking call, a pure-Python loop), and it also
    asks this process's own actors, which a faulthandler signal dump could not.  It ends with
    the process; the parent closes its end when it reaps us.
    """
    fd = int(os.environ.pop(DUMP_FD_ENV, "-1") or -1)
    if fd < 0:
        return
    import socket
    import threading

    from .._core._stacks import serve_dumps

    sock = socket.socket(fileno=fd)
    threading.Thread(
        target=serve_dumps, args=(sock,), name="stack-dump-server", daemon=True
    ).start()


if __name__ == "__main__":
    main()
