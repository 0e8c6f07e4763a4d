"""Actor-side functions for tests/test_process_state.py: each tries to change process-wide state.

Every ``try_*`` returns normally when the change went through, so a missing guard shows up as a
call that *succeeds* (and the parent-state checks then see the damage).  None of them is harmful
to a process actor (``trio`` backend), where the change stays in the child.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

#: Variable names the tests use; the parent checks they never appear.
ENV_NAME = "SUBINT_SPAWN_TEST_ACTOR_WROTE_THIS"


def guards_installed() -> str | None:
    from subint_spawn._core._guards import guarded_actor

    return guarded_actor()


def try_chdir(path: str) -> str:
    os.chdir(path)
    return os.getcwd()


def try_fchdir(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    return os.getcwd()


def try_posix_chdir(path: str) -> str:
    import posix

    posix.chdir(path)
    return os.getcwd()


def try_environ_change(name: str) -> str:
    os.environ[name] = "changed-by-the-actor"
    return "changed"


def try_putenv_change(name: str) -> str:
    os.putenv(name, "changed-by-the-actor")
    return "changed"


def try_environ_delete(name: str) -> str:
    del os.environ[name]
    return "deleted"


def try_unsetenv(name: str) -> str:
    os.unsetenv(name)
    return "deleted"


def read_environ(name: str) -> str | None:
    return os.environ.get(name)


def c_getenv(name: str) -> str | None:
    """What C code (and a subprocess started with ``env=None``) sees, unlike ``os.environ``."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    value: bytes | None = libc.getenv(name.encode())
    return None if value is None else value.decode()


def both_views(name: str) -> list[str | None]:
    """This actor's ``os.environ`` and the C environment: they must agree.  (Lists, not
    tuples: msgpack, the process actors' codec, has no tuples.)"""
    return [os.environ.get(name), c_getenv(name)]


def rewrite_same_value(name: str, value: str) -> list[str | None]:
    """Writing the value a variable already has changes nothing, whoever set it."""
    os.environ[name] = value
    os.putenv(name, value)
    return both_views(name)


def own_variable_round_trip(name: str) -> list[list[str | None]]:
    """Add a variable nobody has, change it, remove it, the way libraries do (numpy's import
    adds OPENBLAS_MAIN_FREE with os.putenv and takes it away with os.unsetenv)."""
    seen = [both_views(name)]
    os.environ[name] = "added"
    seen.append(both_views(name))
    os.environ[name] = "changed"
    seen.append(both_views(name))
    del os.environ[name]
    seen.append(both_views(name))
    os.putenv(name, "put")
    seen.append([os.environ.get(name), c_getenv(name)])  # putenv never updates os.environ
    os.unsetenv(name)
    seen.append(both_views(name))
    return seen


def add_variable(name: str) -> list[str | None]:
    """Add a variable and leave it for the actor's end to take away."""
    os.environ[name] = "left-behind"
    return both_views(name)


def try_fork() -> str:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return "forked"


def try_posix_fork() -> str:
    import posix

    pid = posix.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return "forked"


def try_forkpty() -> str:
    pid, fd = os.forkpty()
    if pid == 0:
        os._exit(0)
    os.close(fd)
    os.waitpid(pid, 0)
    return "forked"


def try_signal_handler() -> str:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    return "installed"


def try_set_wakeup_fd() -> str:
    signal.set_wakeup_fd(-1)
    return "set"


def try_alarm() -> str:
    signal.alarm(0)  # 0 disarms: harmless even where it is allowed
    return "armed"


def signal_refusal_is_value_error() -> bool:
    """What trio's main-thread probe relies on: refusing ``signal.signal`` raises ValueError."""
    try:
        signal.signal(signal.SIGINT, signal.getsignal(signal.SIGINT))
    except ValueError:
        return True
    return False


def try_close_stdout() -> str:
    os.close(1)
    return "closed"


def try_closerange_stdio() -> str:
    os.closerange(0, 3)
    return "closed"


def try_dup2_onto_stderr() -> str:
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return "replaced"


def try_set_stdout_nonblocking() -> str:
    os.set_blocking(1, False)
    return "nonblocking"


def allowed_fd_work() -> str:
    """Closing, dup2-ing and reading fds that are not 0-2, and copying stdout, still work."""
    read_end, write_end = os.pipe()
    copy = os.dup(1)
    other = os.dup(read_end)
    os.dup2(write_end, other)
    for fd in (read_end, write_end, copy, other):
        os.close(fd)
    sys.stdout.write("")  # the actor's own stdout object still works
    return "ok"


def try_import_setproctitle() -> str:
    import setproctitle  # noqa: F401

    return "imported"


def rename_own_thread(name: str) -> str:
    """Renaming an actor's thread is fine: it names that OS thread, never the process."""
    import _thread

    threading.current_thread().name = name
    _thread.set_name(name)
    return name


def try_exit_process() -> str:
    os._exit(3)


def try_abort_process() -> str:
    os.abort()
