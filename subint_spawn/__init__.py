"""subint_spawn: trio actors, each in its own CPython subinterpreter (PEP 734)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
    TractorNotSupported,
)

# Every actor's interpreter imports this package, since the actor runtime lives in it; most of
# what the public names pull in -- nurseries, the warm pool, the driver, stack dumps -- only a
# parent needs.  So they load on first use (PEP 562): an actor that never spawns children does
# not pay for them in boot time and memory.  The exceptions are small and used everywhere.
_LAZY: dict[str, str] = {
    "census": "._core._census",
    "Context": "._core._context",
    "MsgStream": "._core._context",
    "ProcessStateError": "._core._guards",
    "SignalStateError": "._core._guards",
    "StackDumpSignal": "._core._hangs",
    "dump_on_hang": "._core._hangs",
    "install_stack_dump_signal": "._core._hangs",
    "prewarm": "._core._pool",
    "ActorNursery": "._core._nursery",
    "current_spawn_backend": "._core._nursery",
    "open_nursery": "._core._nursery",
    "set_spawn_backend": "._core._nursery",
    "Portal": "._core._portal",
    "dump_stacks": "._core._stacks",
}

if TYPE_CHECKING:
    from ._core._census import census
    from ._core._context import Context, MsgStream
    from ._core._guards import ProcessStateError, SignalStateError
    from ._core._hangs import StackDumpSignal, dump_on_hang, install_stack_dump_signal
    from ._core._pool import prewarm
    from ._core._nursery import ActorNursery, current_spawn_backend, open_nursery, set_spawn_backend
    from ._core._portal import Portal
    from ._core._stacks import dump_stacks


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
    "TractorNotSupported",
    "census",
    "dump_on_hang",
    "dump_stacks",
    "install_stack_dump_signal",
    "StackDumpSignal",
    "prewarm",
]
