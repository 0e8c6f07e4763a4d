"""Names defined once: spawn backends, interpreter configs, and the environment variables a
``trio``-backend actor process is started with.

A leaf module (it imports nothing of ours), so every layer -- the driver, the pool, the
backends, the spawn defaults, the pytest plugin, the CLI -- can validate against the same
lists without importing each other.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "BACKENDS",
    "CONFIGS",
    "DUMP_FD_ENV",
    "LOG_LEVEL_ENV",
    "PARENT_PID_ENV",
    "PATH_ENV",
    "BackendName",
    "Config",
    "check_backend",
    "check_config",
]

BackendName = Literal["subint", "trio"]
"""``subint``: an actor is a subinterpreter of this process; ``trio``: a child process."""
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)

Config = Literal["isolated", "legacy"]
"""``isolated``: own GIL, runs in parallel; ``legacy``: shares the main GIL and loads
single-phase-init C extensions that refuse isolated interpreters."""
CONFIGS: tuple[Config, ...] = get_args(Config)

#: The parent's ``sys.path`` (JSON), for a ``trio``-backend actor process.
PATH_ENV = "SUBINT_SPAWN_SYS_PATH"
#: The parent's effective root log level: the actor forwards records at it and above.
LOG_LEVEL_ENV = "SUBINT_SPAWN_LOG_LEVEL"
#: The fd of the actor process's end of its stack-dump socket.
DUMP_FD_ENV = "SUBINT_SPAWN_DUMP_FD"
#: The parent's pid: the actor process exits when that process does.
PARENT_PID_ENV = "SUBINT_SPAWN_PARENT_PID"


def check_backend(name: object) -> BackendName:
    """``name`` if it is a spawn backend, else ``ValueError`` listing the choices."""
    if name not in BACKENDS:
        raise ValueError(
            f"unknown spawn backend {name!r}: use one of {', '.join(map(repr, BACKENDS))}"
        )
    return name  # type: ignore[return-value]


def check_config(config: object) -> Config:
    """``config`` if it is an interpreter config, else ``ValueError`` listing the choices."""
    if config not in CONFIGS:
        raise ValueError(
            f"unknown interpreter config {config!r}: use one of {', '.join(map(repr, CONFIGS))}"
        )
    return config  # type: ignore[return-value]
