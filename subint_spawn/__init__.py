"""subint_spawn: trio actors, each in its own CPython subinterpreter (PEP 734)."""

from ._core._census import census
from ._exceptions import (
    AbandonedInterpreterWarning,
    ActorStartupError,
    BootstrapError,
    ChannelClosed,
    ContextCancelled,
    InterpreterKilled,
    ProtocolError,
    RemoteActorError,
    RemoteError,
    SubintSpawnError,
)

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
    "SubintSpawnError",
    "census",
]
