"""Process guards: an actor must not change what belongs to the whole process.

A subinterpreter actor shares its process with the parent and with every other actor: one cwd,
one C ``environ``, one set of signal dispositions, one fd table, one process title.  CPython
3.14 refuses some process-wide changes in a subinterpreter by itself (``signal.signal`` and
``set_wakeup_fd`` outside the main interpreter; ``os.fork`` when the interpreter config has
``allow_fork=False``, which our ``isolated`` config has and ``legacy`` does not).  The rest it
lets through, and they silently change the parent: ``os.chdir`` moves the parent's cwd,
``os.environ[...] = ...`` rewrites the C environment (while the parent's ``os.environ`` dict
goes stale), ``os.close(1)`` takes the parent's stdout away.  A ``fork`` from a legacy actor's
thread succeeds and the child dies in a fatal error (it is not the main interpreter).

:func:`install_process_guards` replaces those functions *in the actor's own interpreter* (each
interpreter has its own ``os``, ``posix`` and ``signal`` module objects) with ones that raise
:class:`ProcessStateError`, saying why and what to do instead.  Reads keep working: ``os.getcwd``,
``os.environ[...]``, ``signal.getsignal``.

Guards protect the process, not against libraries: a harmless import-time write by a popular
package must not make that package unusable.  So the environment guard refuses only what
contradicts a view others already have -- changing or deleting a variable that was in the
process before this actor set it -- and lets an actor add variables, rewrite a value as it
is, and change or delete what it added itself (numpy's import adds ``OPENBLAS_MAIN_FREE`` with
``os.putenv`` and takes it away again).  What an actor added is taken away when its
interpreter ends.  See :class:`_SharedEnvironment` and ai/process-guards.md.

This catches accidents, not malice: ``ctypes`` can still call libc directly.

On the ``trio`` backend an actor is its own process and nothing it does reaches the parent;
the guards are installed there too (except those against ending the process, and the
environment guard: a process's environment is its own) so that code which runs on one backend
runs the same on the other.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

__all__ = [
    "ProcessStateError",
    "SignalStateError",
    "guarded_actor",
    "install_process_guards",
]

STDIO_FDS = (0, 1, 2)


class ProcessStateError(RuntimeError):
    """An actor tried to change state that belongs to the whole process."""


class SignalStateError(ProcessStateError, ValueError):
    """An actor tried to change signal handling.

    Also a ``ValueError``: that is what CPython raises for ``signal.signal`` outside the main
    interpreter, and what code probing for "am I the main thread?" (trio does) catches.
    """


# Pickled by reference from the public package, so the class name a caller sees (and
# RemoteActorError.remote_type) is the one users can import.
ProcessStateError.__module__ = "subint_spawn"
SignalStateError.__module__ = "subint_spawn"

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Takes the original function, returns its guarded replacement."""

_installed_for: str | None = None
# (st_dev, st_ino) of fds 0-2 when the guards went in; only those very files are protected.
# A process started with, say, fd 0 closed may later hand that number to one of our own
# sockets, which the runtime must be able to close.
_stdio_files: dict[int, tuple[int, int]] = {}


def guarded_actor() -> str | None:
    """The actor whose guards are installed in this interpreter, or ``None`` (not an actor)."""
    return _installed_for


def install_process_guards(actor_name: str, *, own_process: bool = False) -> None:
    """Make this interpreter refuse changes to process-wide state, naming ``actor_name``.

    Call it once, early in the actor's entry point, before user code is imported.
    ``own_process`` is true for a ``trio``-backend actor: ending the process (``os._exit``)
    then only ends the actor and stays allowed.  Installing twice is a no-op.
    """
    global _installed_for
    if _installed_for is not None:
        return
    _installed_for = actor_name
    _stdio_files.update(_stdio_identities())
    guards = _os_guards(actor_name, own_process)
    if not own_process:
        environment = _SharedEnvironment(actor_name)
        guards |= {"putenv": environment.guard_putenv, "unsetenv": environment.guard_unsetenv}
    for module in _os_modules():
        _guard_module(module, guards)
    _guard_module(signal, _signal_guards(actor_name))
    sys.meta_path.insert(0, _RefuseImport(actor_name, _PROCESS_TITLE_MODULES))


def _stdio_identities() -> dict[int, tuple[int, int]]:
    found = {}
    for fd in STDIO_FDS:
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        found[fd] = (info.st_dev, info.st_ino)
    return found


def _os_modules() -> list[ModuleType]:
    # os copies posix's functions at import; code can reach either, so both are guarded.
    modules: list[ModuleType] = [os]
    posix = sys.modules.get("posix")
    if posix is not None:
        modules.append(posix)
    return modules


def _guard_module(module: ModuleType, guards: dict[str, Wrap]) -> None:
    for name, wrap in guards.items():
        original = getattr(module, name, None)
        if original is not None:
            setattr(module, name, wrap(original))


def _refuse(
    actor: str,
    what: str,
    why: str,
    instead: str,
    error: type[ProcessStateError] = ProcessStateError,
) -> Wrap:
    """A wrapper factory: the guarded function always raises."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise error(f"actor {actor!r} may not {what}: {why}. {instead}")

        refused.__name__ = getattr(original, "__name__", what)
        refused.__doc__ = f"Refused in actor {actor!r}: {why}."
        return refused

    return wrap


def _refuse_if(actor: str, touches: Callable[..., bool], what: str, why: str, instead: str) -> Wrap:
    """A wrapper factory: the guarded function raises only when ``touches(*args)`` says so."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if touches(*args, **kwargs):
                raise ProcessStateError(f"actor {actor!r} may not {what}: {why}. {instead}")
            return original(*args, **kwargs)

        guarded.__name__ = getattr(original, "__name__", what)
        guarded.__doc__ = original.__doc__
        return guarded

    return wrap


def _os_guards(actor: str, own_process: bool) -> dict[str, Wrap]:
    shared = "the process's {} is shared by the parent and every actor"
    cwd = _refuse(
        actor,
        "change the working directory",
        shared.format("working directory"),
        "Use absolute paths, or pass cwd= to subprocess",
    )
    fork = _refuse(
        actor,
        "fork",
        "a fork from an actor's thread copies one thread of a multi-interpreter process and "
        "cannot run Python in the child",
        "Start processes with subprocess (or the 'trio' backend for process actors)",
    )

    def stdio(touches: Callable[..., bool]) -> Wrap:
        return _refuse_if(
            actor,
            touches,
            "close, replace or reconfigure fds 0, 1 or 2",
            "stdin, stdout and stderr are the parent's",
            "Replace sys.stdout/sys.stderr (they are this actor's own objects), "
            "or redirect a subprocess's streams",
        )

    guards = {
        "chdir": cwd,
        "fchdir": cwd,
        "fork": fork,
        "forkpty": fork,
        "close": stdio(_first_is_stdio),
        "closerange": stdio(_range_has_stdio),
        "dup2": stdio(_target_is_stdio),
        "set_blocking": stdio(_first_is_stdio),
    }
    if not own_process:
        guards["_exit"] = _refuse(
            actor,
            "end the process",
            "os._exit() would end the parent and every other actor with it",
            "Return, or raise an exception, to end the actor",
        )
        guards["abort"] = guards["_exit"]
    return guards


_EXIT_LOCK_BOUND = 1.0  # seconds


class _SharedEnvironment:
    """``os.putenv``/``os.unsetenv`` for an actor that shares the process's C environment.

    What harms the process is contradicting a view others already have: the parent's and every
    other actor's ``os.environ`` dicts, and what C code has read with ``getenv``, hold the
    value a variable had.  Changing or deleting such a variable makes them silently wrong, so
    it is refused.  Adding a variable nobody has contradicts no one (nobody's ``os.environ``
    holds it), and writing the value a variable already has changes nothing (it is not even
    written), so both are allowed; a variable this actor added is its own to change or delete.

    The decision reads the C environment, not this interpreter's ``os.environ``: that dict is a
    snapshot taken when the interpreter was created (a warm-pool interpreter may be older than
    the parent's last write).  ``ctypes`` is imported for that on the first write only.

    What the actor added is removed when its function ends (a guest exit hook, run before the
    driver reaps the interpreter; ``atexit`` too, for an interpreter that is destroyed another
    way), unless someone changed it since: like a process actor's environment, it does not
    outlive the actor.  Not at destroy alone: an actor's interpreter is destroyed in the
    background, after its parent has gone on.

    The check and the write are atomic within this interpreter (a lock), not across
    interpreters: two actors adding the same new variable at the same moment both succeed, and
    the later value wins.  A ``setenv`` can always race another thread's ``getenv``, as in any
    threaded process; that is one more reason a write that changes nothing writes nothing.
    """

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.added: dict[bytes, bytes] = {}  # what this actor set, for variables it added
        self.lock = threading.Lock()
        self.getenv: Callable[[bytes], bytes | None] | None = None
        self.unset: Callable[..., Any] | None = None  # the real unsetenv, for the exit hook

    def guard_putenv(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def putenv(name: Any, value: Any, /) -> None:
            key, val = _env_bytes(name, name=True), _env_bytes(value)
            if key is None or val is None:
                return original(name, value)  # CPython rejects bad arguments its own way
            with self.lock:
                current = self.c_getenv(key)
                if current == val:
                    return None
                if current is not None and self.added.get(key) != current:
                    raise ProcessStateError(self.refusal("change", key))
                original(name, value)
                self.added[key] = val
            return None

        putenv.__name__ = getattr(original, "__name__", "putenv")
        putenv.__doc__ = original.__doc__
        return putenv

    def guard_unsetenv(self, original: Callable[..., Any]) -> Callable[..., Any]:
        if self.unset is None:
            self.unset = original

        def unsetenv(name: Any, /) -> None:
            key = _env_bytes(name, name=True)
            if key is None:
                return original(name)
            with self.lock:
                current = self.c_getenv(key)
                if current is None:
                    self.added.pop(key, None)  # someone else removed it: nothing to do
                    return None
                if self.added.get(key) != current:
                    raise ProcessStateError(self.refusal("delete", key))
                original(name)
                del self.added[key]
            return None

        unsetenv.__name__ = getattr(original, "__name__", "unsetenv")
        unsetenv.__doc__ = original.__doc__
        return unsetenv

    def refusal(self, verb: str, key: bytes) -> str:
        name = os.fsdecode(key)
        return (
            f"actor {self.actor!r} may not {verb} environment variable {name!r}: the process's "
            f"environment is shared by the parent and every actor, and {name!r} was set there "
            "before, so others may rely on it (reading it works, and so do adding a new "
            "variable, changing one this actor added, and writing the value a variable already "
            "has). Pass env= to subprocess, or set the variable in the parent before spawning "
            "the actor"
        )

    def c_getenv(self, key: bytes) -> bytes | None:
        if self.getenv is None:
            self.getenv = _libc_getenv()
            import atexit

            from ._guest_hooks import at_guest_exit

            at_guest_exit(self.remove_additions)
            atexit.register(self.remove_additions)
        return self.getenv(key)

    def remove_additions(self) -> None:
        """At interpreter exit: take away what this actor added and nobody changed since.

        Bounded: a thread of this interpreter stopped by its finalization could, in theory,
        still hold the lock; then the additions stay rather than the destroy hanging."""
        if not self.lock.acquire(timeout=_EXIT_LOCK_BOUND):
            return
        try:
            for key, value in list(self.added.items()):
                if self.unset is not None and self.c_getenv(key) == value:
                    self.unset(key)
            self.added.clear()
        finally:
            self.lock.release()


def _env_bytes(value: object, *, name: bool = False) -> bytes | None:
    """``value`` encoded as ``os.putenv`` encodes it, or ``None`` when CPython would refuse it
    (the caller then lets CPython raise its own error): a NUL anywhere, and for a name, empty
    or holding ``=``."""
    try:
        encoded = os.fsencode(value)  # type: ignore[arg-type]
    except TypeError, UnicodeError:
        return None
    if b"\0" in encoded or (name and (not encoded or b"=" in encoded)):
        return None
    return encoded


def _libc_getenv() -> Callable[[bytes], bytes | None]:
    """libc's ``getenv``: the process's environment as it is now."""
    try:
        import ctypes

        # PyDLL keeps the GIL during the call: getenv never blocks, and a thread cannot be
        # parked by finalization in the middle of it while holding our lock.
        function = ctypes.PyDLL(None).getenv
        function.argtypes = [ctypes.c_char_p]
        function.restype = ctypes.c_char_p
    except ImportError, OSError, AttributeError:
        # No ctypes here: the interpreter's own snapshot is the best view left.
        snapshot = os.environb if hasattr(os, "environb") else {}
        return lambda key: snapshot.get(key)  # type: ignore[union-attr]
    return function  # type: ignore[no-any-return]


def _is_stdio(fd: object) -> bool:
    if not isinstance(fd, int) or isinstance(fd, bool) or fd not in _stdio_files:
        return False
    try:
        info = os.fstat(fd)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == _stdio_files[fd]


def _first_is_stdio(fd: object = None, *_: Any, **__: Any) -> bool:
    """close(fd), set_blocking(fd, flag)."""
    return _is_stdio(fd)


def _target_is_stdio(fd: object = None, fd2: object = None, *_: Any, **__: Any) -> bool:
    """dup2(fd, fd2): copying *from* 0-2 is harmless, replacing them is not."""
    return _is_stdio(fd2)


def _range_has_stdio(lo: object = None, hi: object = None, *_: Any, **__: Any) -> bool:
    """closerange(lo, hi) closes lo <= fd < hi."""
    if not isinstance(lo, int) or not isinstance(hi, int):
        return False
    return any(_is_stdio(fd) for fd in range(max(lo, 0), min(hi, len(STDIO_FDS))))


def _signal_guards(actor: str) -> dict[str, Wrap]:
    def refuse(what: str) -> Wrap:
        return _refuse(
            actor,
            what,
            "signal handling belongs to the main interpreter (Ctrl-C included: the parent stops actors)",
            "Watch for work to stop through trio cancellation instead",
            SignalStateError,
        )

    timer = _refuse(
        actor,
        "arm a process timer",
        "alarm/setitimer send a signal to the whole process, which ends it by default",
        "Use trio.sleep or trio.move_on_after",
        SignalStateError,
    )
    return {
        "signal": refuse("install signal handlers"),
        "set_wakeup_fd": refuse("set the signal wakeup fd"),
        "siginterrupt": refuse("change signal restart behaviour"),
        "alarm": timer,
        "setitimer": timer,
    }


_PROCESS_TITLE_MODULES = frozenset({"setproctitle", "prctl"})


class _RefuseImport:
    """A ``sys.meta_path`` finder that refuses modules whose purpose is renaming the process.

    An ``ImportError`` rather than a runtime error: libraries that set the process title treat
    the module as optional (``try: import setproctitle``) and go on without it.
    """

    def __init__(self, actor: str, names: frozenset[str]) -> None:
        self.actor = actor
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            raise ImportError(
                f"actor {self.actor!r} may not import {fullname}: it renames the process, which is "
                "shared by the parent and every actor",
                name=fullname,
            )
        return None
