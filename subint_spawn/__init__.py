"""subint_spawn: trio actors, each in its own CPython subinterpreter (PEP 734)."""

from ._core._census import census
from ._core._context import Context, MsgStream
from ._core._guards import ProcessStateError, SignalStateError
from ._core._hangs import StackDumpSignal, dump_on_hang, install_stack_dump_signal
from ._core._pool import prewarm
from ._core._nursery import ActorNursery, current_spawn_backend, open_nursery, set_spawn_backend
from ._core._portal import Portal
from ._core._stacks import dump_stacks
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
    StreamOverrun,
    SubintSpawnError,
)

__all__ = [
    "ActorNursery",
    "Context",
    "MsgStream",
    "Portal",
    "current_spawn_backend",
    "open_nursery",
    "set_spawn_backend",
    "AbandonedInterpreterWarning",
    "ActorStartupError",
    "BootstrapError",
    "ChannelClosed",
    "ContextCancelled",
    "InterpreterKilled",
    "ProcessStateError",
    "ProtocolError",
    "RemoteActorError",
    "RemoteError",
    "SignalStateError",
    "StreamOverrun",
    "SubintSpawnError",
    "census",
    "dump_on_hang",
    "dump_stacks",
    "install_stack_dump_signal",
    "StackDumpSignal",
    "prewarm",
]
