"""The subinterpreter driver, usable on its own: one interpreter's life, bounded and leak-free.

from subint_spawn import driver

async with driver.open_subinterpreter("isolated") as interp:
    interp.start(mymod.work, 21)
    print(await interp.wait())
"""

from ._core._census import AbandonedInterpreter, Census, census
from ._core._driver import (
    Config,
    KillPolicy,
    Subinterpreter,
    Termination,
    boot,
    create,
    drain_destroys,
    interpreter_config,
    open_subinterpreter,
)
from ._core._guest import runs_trio

__all__ = [
    "AbandonedInterpreter",
    "Census",
    "Config",
    "KillPolicy",
    "Subinterpreter",
    "Termination",
    "boot",
    "census",
    "create",
    "drain_destroys",
    "interpreter_config",
    "open_subinterpreter",
    "runs_trio",
]
