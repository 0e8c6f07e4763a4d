"""subint_spawn: trio actors, each in its own CPython subinterpreter (PEP 734)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The one place the version is written: pyproject.toml reads it from here (hatch).
__version__ = "0.1.0"

# The exceptions are imported now: small, and used everywhere.  Every name _exceptions
# exports is public here.
from . import _exceptions
from ._exceptions import *

# Every actor's interpreter imports this package, since the actor runtime lives in it; most of
# what the public names pull in -- nurseries, the warm pool, the driver, stack dumps -- only a
# parent needs.  So they load on first use (PEP 562): an actor that never spawns children does
# not pay for them in boot time and memory.  The exceptions are small and used everywhere.
_LAZY: dict[str, str] = {
    "ActorInfo": "._core._identity",
    "current_actor": "._core._identity",
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
    "current_spawn_backend": "._core._defaults",
    "current_config": "._core._defaults",
    "open_nursery": "._core._nursery",
    "set_default_config": "._core._defaults",
    "set_spawn_backend": "._core._defaults",
    "spawn_defaults": "._core._defaults",
    "Portal": "._core._portal",
    "dump_stacks": "._core._stacks",
}

if TYPE_CHECKING:
    from ._core._census import (
        census as census,
    )
    from ._core._context import (
        Context as Context,
    )
    from ._core._context import (
        MsgStream as MsgStream,
    )
    from ._core._defaults import (
        current_config as current_config,
    )
    from ._core._defaults import (
        current_spawn_backend as current_spawn_backend,
    )
    from ._core._defaults import (
        set_default_config as set_default_config,
    )
    from ._core._defaults import (
        set_spawn_backend as set_spawn_backend,
    )
    from ._core._defaults import (
        spawn_defaults as spawn_defaults,
    )
    from ._core._guards import (
        ProcessStateError as ProcessStateError,
    )
    from ._core._guards import (
        SignalStateError as SignalStateError,
    )
    from ._core._hangs import (
        StackDumpSignal as StackDumpSignal,
    )
    from ._core._hangs import (
        dump_on_hang as dump_on_hang,
    )
    from ._core._hangs import (
        install_stack_dump_signal as install_stack_dump_signal,
    )
    from ._core._identity import (
        ActorInfo as ActorInfo,
    )
    from ._core._identity import (
        current_actor as current_actor,
    )
    from ._core._nursery import (
        ActorNursery as ActorNursery,
    )
    from ._core._nursery import (
        open_nursery as open_nursery,
    )
    from ._core._pool import (
        prewarm as prewarm,
    )
    from ._core._portal import (
        Portal as Portal,
    )
    from ._core._stacks import (
        dump_stacks as dump_stacks,
    )


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


__all__ = [*_exceptions.__all__, *_LAZY]  # noqa: PLE0604 -- derived: one source for each half
