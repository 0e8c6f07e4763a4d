"""Run tractor's actors in subinterpreters through subint_spawn's driver.

    import subint_spawn.tractor
    subint_spawn.tractor.install()          # before the actor tree starts

    async with tractor.open_nursery(start_method="subint") as an:
        ...

:func:`install` replaces the entry ``'subint'`` of tractor's table of spawn methods
(``tractor.spawn._spawn._methods``) with subint_spawn's method, in this interpreter; that is
the only change it makes to tractor, and :func:`uninstall` puts tractor's own method back.
Importing this module changes nothing: it does not even import tractor.

subint_spawn does not depend on tractor.  :func:`install` raises
:class:`~subint_spawn.TractorNotSupported` if tractor is missing (saying what to install) or if
its spawn interface is not the one this was built against (:data:`SUPPORTED_COMMIT`): the
mismatch is found when the method is selected, never in the middle of a spawn.

The interpreter config is ``legacy`` by default: tractor's codec, msgspec, refuses to load in an
``isolated`` interpreter (msgspec issue 1026).  Pass ``config="isolated"`` (or set
``SUBINT_SPAWN_TRACTOR_CONFIG=isolated``) the day it loads.

See docs/tractor.md.
"""

from __future__ import annotations

import os

from ._core._driver import Config, KillPolicy
from ._exceptions import TractorNotSupported
from ._tractor import _api, _spawn

__all__ = [
    "CONFIG_ENV",
    "SUPPORTED_COMMIT",
    "TractorNotSupported",
    "install",
    "installed",
    "prewarm",
    "uninstall",
]

SUPPORTED_COMMIT = _api.SUPPORTED_COMMIT
#: Environment variable that sets the default interpreter config (``legacy`` or ``isolated``).
CONFIG_ENV = "SUBINT_SPAWN_TRACTOR_CONFIG"
_CONFIGS = ("legacy", "isolated")


def install(config: Config | None = None, *, policy: KillPolicy | None = None) -> None:
    """Make tractor's ``'subint'`` spawn method subint_spawn's, in this interpreter.

    ``config``: the interpreter config for every actor spawned from here (default: the
    ``SUBINT_SPAWN_TRACTOR_CONFIG`` environment variable, else ``legacy``).  ``policy``: the
    driver's kill steps (default :data:`subint_spawn._tractor._spawn.KILL_POLICY`).  Calling it
    again just updates the settings.
    """
    chosen = config or os.environ.get(CONFIG_ENV) or "legacy"
    if chosen not in _CONFIGS:
        source = "config" if config else CONFIG_ENV
        raise ValueError(f"{source}={chosen!r}: use 'legacy' or 'isolated'")
    _spawn.install_here(chosen, policy)  # type: ignore[arg-type]


async def prewarm(n: int, config: Config | None = None) -> None:
    """Keep ``n`` warm interpreters for tractor actors in the current trio run: tractor's child
    runtime is imported in them ahead, so an actor spawned into one skips the ~0.8 s that
    importing tractor takes in a fresh ``legacy`` interpreter.  Call it in the root actor's
    trio run (inside ``tractor.open_root_actor`` or ``tractor.open_nursery``); the pool and
    what it holds end with that run.  ``config``: default, the one :func:`install` chose.
    """
    await _spawn.prewarm(n, config)


def uninstall() -> None:
    """Put tractor's own ``'subint'`` spawn method back (nothing to do if ours is not in)."""
    if _api.installed_method() is not None:
        _api.restore_method()


def installed() -> bool:
    """Is tractor's ``'subint'`` spawn method subint_spawn's, in this interpreter?"""
    return _api.installed_method() is not None
