"""Every exception and warning subint_spawn raises, in one place.

Errors that happen in another interpreter or process cross the boundary as text (type name,
message, formatted traceback), because the exception object itself may not exist on this side
(its class may live in a module only the actor imported).  Where a codec can rebuild the original
object safely -- the in-process pickle codec used by the ``subint`` backend -- it is chained as
``__cause__`` so ``except`` clauses and debuggers see the real thing; the text is always there.
"""

from __future__ import annotations

import builtins
import sys

__all__ = [
    "AbandonedInterpreterWarning",
    "ActorStartupError",
    "BootstrapError",
    "BytecodeWarning",
    "ChannelClosed",
    "ContextCancelled",
    "InterpreterKilled",
    "ProtocolError",
    "RemoteActorError",
    "RemoteError",
    "StreamOverrun",
    "SubintSpawnError",
    "TractorNotSupported",
]


class SubintSpawnError(Exception):
    """Base class of every error subint_spawn raises itself."""


class RemoteError(SubintSpawnError):
    """An exception raised on the other side of an interpreter or process boundary.

    ``remote_type`` is the qualified name of the original exception type, ``remote_message``
    its ``str()``, ``remote_traceback`` the full formatted traceback as the remote side saw it.
    """

    def __init__(
        self,
        remote_type: str,
        remote_message: str,
        remote_traceback: str,
        *,
        where: str = "remote",
    ) -> None:
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.where = where
        super().__init__(remote_type, remote_message)

    def __str__(self) -> str:
        head = (
            f"{self.remote_type}: {self.remote_message}"
            if self.remote_message
            else self.remote_type
        )
        if not self.remote_traceback:
            return f"{head} (in {self.where})"
        body = self.remote_traceback.rstrip("\n")
        indented = "\n".join("  | " + line for line in body.splitlines())
        return f"{head} (in {self.where})\n  | --- traceback in {self.where} ---\n{indented}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_remote_error, (type(self), self.__dict__.copy()))

    @property
    def boxed_type(self) -> type[BaseException] | None:
        """The remote exception's class, if this process has it; else ``None``.

        Looked up by ``remote_type`` among the builtins and the modules this process has
        already imported -- nothing is imported to find it, since an error report should not
        run a module's code.  The module of the function you called is imported here, so an
        exception class defined next to it is found; on the ``subint`` backend, rebuilding
        the original exception imports its module too.
        """
        return _find_exception_type(self.remote_type)


def _find_exception_type(qualified: str) -> type[BaseException] | None:
    parts = qualified.split(".")
    candidates = [(builtins, parts)] if len(parts) == 1 else []
    for split in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is not None:
            candidates.append((module, parts[split:]))
    for found, path in candidates:
        for name in path:
            found = getattr(found, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    return None


def _rebuild_remote_error(cls: type[RemoteError], state: dict[str, object]) -> RemoteError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, state.get("remote_type"), state.get("remote_message"))
    return error


class BootstrapError(RemoteError):
    """The code meant to run in a subinterpreter could not even start there.

    Typically the function's module cannot be imported in a fresh interpreter, or an extension
    module refuses to load in an ``isolated`` one (then ``config='legacy'`` is the fix).
    """


class RemoteActorError(RemoteError):
    """An actor raised.

    ``where`` names each hop from the actor that reports it down to the one that raised, as
    ``"mid -> leaf"``; ``hops`` is that path as a tuple and ``actor_name`` the actor that raised.
    """

    @property
    def hops(self) -> tuple[str, ...]:
        return tuple(self.where.split(" -> "))

    @property
    def actor_name(self) -> str:
        return self.hops[-1]


class ActorStartupError(RemoteActorError):
    """An actor could not start: unknown module, ImportError inside it, or a refused extension."""


class InterpreterKilled(SubintSpawnError):
    """The interpreter did not finish on its own: it was cancelled, killed or abandoned.

    ``how`` is one of ``'cancelled'`` (its trio loop honoured a cooperative cancel), ``'killed'``
    (an exception was injected into its thread) or ``'abandoned'`` (its thread is stuck in C).
    """

    def __init__(self, how: str, detail: str = "") -> None:
        self.how = how
        self.detail = detail
        super().__init__(f"interpreter {how}" + (f": {detail}" if detail else ""))


class ProtocolError(SubintSpawnError):
    """A peer sent something that is not a valid frame or message; the channel is closed."""


class ChannelClosed(SubintSpawnError):
    """The IPC channel to an actor closed before the answer arrived (the actor died or was killed)."""


class ContextCancelled(RemoteActorError):
    """A context was cancelled by the *other* side; the side that asked sees a clean exit."""


class StreamOverrun(ProtocolError):
    """A peer sent more stream items than it had credit for (it ignored flow control)."""


class TractorNotSupported(SubintSpawnError):
    """tractor's ``subint`` spawn method cannot be ours: tractor is not installed, or its spawn
    interface is not the one subint_spawn was built against (the message names that commit)."""


class AbandonedInterpreterWarning(RuntimeWarning):
    """A subinterpreter's thread was stuck (usually inside C) past every kill step.

    Its thread is left to finish on its own (it is a daemon, so it never blocks process exit) and
    the interpreter is destroyed if and when it does; ``subint_spawn.census()`` lists it meanwhile.
    """


class BytecodeWarning(RuntimeWarning):
    """The code every actor imports (trio, subint_spawn) has no usable ``.pyc`` files and
    Python will not write them, so each actor compiles it from source: spawns take about
    twice as long.  ``python -m subint_spawn compile`` writes them once.  Warned once per
    process, at its first spawn."""
