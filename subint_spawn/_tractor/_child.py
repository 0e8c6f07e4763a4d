"""The first code a tractor actor runs in its subinterpreter: tractor's own child entry point.

The driver calls :func:`actor_child_main` as a plain function (tractor's entry runs its own
``trio.run``).  Two things happen before tractor takes over:

* Our spawn method is installed in this interpreter's copy of tractor too, so an actor that
  spawns its own ``'subint'`` children spawns them through the driver as well.
* The driver's cooperative cancel is pointed at tractor's runtime.  The guest only knows how to
  cancel an ``async`` function it runs under its *own* ``trio.run``; here tractor owns the loop.
  So tractor's ``async_main`` is wrapped (in this interpreter only) in a cancel scope that is
  announced to the guest, the way the guest's own ``trio_root`` announces its scope.  Without it
  the kill's first step would do nothing and every kill would go straight to exception
  injection, which can leave trio half torn down.  This reaches into the guest's private state
  (see :func:`_guest_announcer`) until the driver offers it as an API; if that state moves, the
  cancel step is skipped (with a log line) and injection still stops the actor.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("subint_spawn.tractor")

Announce = Callable[[Any, Any], None]


def actor_child_main(
    uid: tuple[str, str],
    loglevel: str | None,
    parent_addr: Any,
    infect_asyncio: bool,
    config: str,
) -> None:
    """Run tractor's child runtime; returns when the actor's runtime has ended."""
    announce = _guest_announcer(sys._getframe(1))
    from .. import tractor as front
    from . import _api

    try:
        front.install(config)  # type: ignore[arg-type]
    except ImportError as exc:
        if config == "isolated":
            exc.add_note(
                "tractor could not be imported in an isolated interpreter (its codec, msgspec, "
                "refuses them: msgspec issue 1026); spawn tractor actors with config='legacy'"
            )
        raise
    if announce is not None:
        _api.wrap_child_async_main(lambda original: _announced(original, announce))
    _api.load().child_main(
        uid=uid,
        loglevel=loglevel,
        parent_addr=parent_addr,
        infect_asyncio=infect_asyncio,
        spawn_method=_api.METHOD_KEY,
    )


def _announced(original: Callable[..., Any], announce: Announce) -> Callable[..., Any]:
    async def async_main(*args: Any, **kwargs: Any) -> Any:
        import trio

        with trio.CancelScope() as scope:
            announce(trio.lowlevel.current_trio_token(), scope)
            return await original(*args, **kwargs)
        return None

    return async_main


def _guest_announcer(frame: Any) -> Announce | None:
    """How to tell this interpreter's guest watchdog about tractor's trio loop.

    TEMPORARY: finds the guest's ``_Guard`` as a local of its ``run_guarded`` frame and follows
    the protocol of ``_Guard.trio_root`` (store the token and scope, then honour a CANCEL that
    arrived before the loop was up).  To be replaced by a driver API for sync guests that run
    their own trio loop.
    """
    while frame is not None and frame.f_code.co_name != "run_guarded":
        frame = frame.f_back
    guard = frame.f_locals.get("guard") if frame is not None else None
    if guard is None or not hasattr(guard, "trio_state") or not hasattr(guard, "cancel_requested"):
        log.info("the guest's cancel hook was not found: kills of tractor actors skip the cooperative step")
        return None

    def announce(token: Any, scope: Any) -> None:
        guard.trio_state = (token, scope)
        if guard.cancel_requested:  # the CANCEL arrived while tractor was still booting
            scope.cancel()

    return announce
