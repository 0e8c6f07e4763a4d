"""Every exception and warning subint_spawn raises, in one place.

Errors that happen in another interpreter or process cross the boundary as text (type name,
message, formatted traceback), because the exception object itself may not exist on this side
(its class may live in a module only the actor imported).  Where a codec can rebuild the original
object safely -- the in-process pickle codec used by the ``subint`` backend -- it is chained as
``__cause__`` so ``except`` clauses and debuggers see the real thing; the text is always there.
"""

from __future__ import annotations

__all__ = [
    "AbandonedInterpreterWarning",
    "ActorStartupError",
    "BootstrapError",
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
        head = f"{self.remote_type}: {self.remote_message}" if self.remote_message else self.remote_type
        if not self.remote_traceback:
            return f"{head} (in {self.where})"
        body = self.remote_traceback.rstrip("\n")
        indented = "\n".join("  | " + line for line in body.splitlines())
        return f"{head} (in {self.where})\n  | --- traceback in {self.where} ---\n{indented}"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_remote_error, (type(self), self.__dict__.copy()))


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
