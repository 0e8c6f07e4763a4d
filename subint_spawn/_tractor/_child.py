"""The first code a tractor actor runs in its subinterpreter: tractor's own child entry point.

The driver calls :func:`actor_child_main` as a plain function (tractor's entry runs its own
``trio.run``).  Two things happen before tractor takes over:

* Our spawn method is installed in this interpreter's copy of tractor too, so an actor that
  spawns its own ``'subint'`` children spawns them through the driver as well.
* The driver's cooperative cancel is pointed at tractor's runtime.  The guest only knows how to
  cancel an ``async`` function it runs under its *own* ``trio.run``; here tractor owns the loop.
  So tractor's ``async_main`` is wrapped (in this interpreter only) and announces to the guest,
  the way the guest's own ``trio_root`` announces its scope, something whose ``cancel()`` runs
  tractor's runtime cancel (:class:`_RuntimeCancel`).  Without it the kill's first step would do
  nothing and every kill would go straight to exception injection, which can leave trio half
  torn down.  This reaches into the guest's private state (see :func:`_guest_announcer`) until
  the driver offers it as an API; if that state moves, the cancel step is skipped (with a log
  line) and injection still stops the actor.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("subint_spawn.tractor")


def actor_child_main(
    uid: tuple[str, str],
    loglevel: str | None,
    parent_addr: Any,
    infect_asyncio: bool,
    config: str,
) -> None:
    """Run tractor's child runtime; returns when the actor's runtime has ended."""
    guest = _GuestHook.find(sys._getframe(1))
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
    if guest is not None:
        _api.wrap_child_async_main(guest.announcing)
    _api.load().child_main(
        uid=uid,
        loglevel=loglevel,
        parent_addr=parent_addr,
        infect_asyncio=infect_asyncio,
        spawn_method=_api.METHOD_KEY,
    )


class _GuestHook:
    """This interpreter's guest watchdog, as far as the cooperative cancel needs it.

    TEMPORARY: the guest's ``_Guard`` is found as a local of its ``run_guarded`` frame and
    ``_Guard.trio_root``'s protocol is followed (store the trio token and the thing to cancel,
    then honour a CANCEL that arrived before the loop was up).  To be replaced by a driver API
    for guests that run their own trio loop.
    """

    def __init__(self, guard: Any) -> None:
        self._guard = guard

    @classmethod
    def find(cls, frame: Any) -> _GuestHook | None:
        while frame is not None and frame.f_code.co_name != "run_guarded":
            frame = frame.f_back
        guard = frame.f_locals.get("guard") if frame is not None else None
        if not all(
            hasattr(guard, name)
            for name in ("trio_state", "cancel_requested", "kill_requested", "_obey")
        ):
            log.info(
                "the guest's cancel hook was not found: kills of tractor actors skip the cooperative step"
            )
            return None
        return cls(guard)

    @property
    def killing(self) -> bool:
        """The driver has gone on to injecting exceptions."""
        return bool(self._guard.kill_requested)

    def announcing(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """tractor's ``async_main``, announcing itself to the guest once its loop runs."""

        async def async_main(actor: Any, *args: Any, **kwargs: Any) -> Any:
            import trio

            with trio.CancelScope() as scope:
                token = trio.lowlevel.current_trio_token()
                target = _RuntimeCancel(actor, scope, self)
                self._wake_loop_on_kill(token)
                self._guard.trio_state = (token, target)
                if self._guard.cancel_requested:  # the CANCEL arrived while tractor was booting
                    target.cancel()
                return await original(actor, *args, **kwargs)
            return None

        return async_main

    def _wake_loop_on_kill(self, token: Any) -> None:
        """After each exception the guest injects, wake this interpreter's trio loop.

        An injected exception is only delivered when the thread runs Python bytecode.  A trio
        loop with nothing to do waits in ``epoll`` (in C) until its next deadline: tractor's
        runtime waiting on a child process's 1.6 s hard-kill timer sat there past the whole
        kill bound and was abandoned, although it was not stuck at all.  A no-op callback
        through the loop's token makes it return to Python at once.
        """
        from .._core._guest import KILL

        obey = self._guard._obey

        def obey_then_wake(command: bytes) -> None:
            obey(command)
            if command == KILL:
                _wake(token)

        self._guard._obey = obey_then_wake


def _wake(token: Any) -> None:
    import trio

    try:
        token.run_sync_soon(_nothing)
    except trio.RunFinishedError:
        pass  # the loop is gone: nothing left to deliver the exception to


def _nothing() -> None:
    return None


class _RuntimeCancel:
    """What the guest cancels on the driver's cooperative step, in place of its own root scope.

    Cancelling the trio scope around tractor's runtime is not enough: tractor shields the loop
    that serves its parent's channel, so the runtime would wait on.  This runs tractor's own
    runtime cancel instead (what a parent's cancel request runs), and cancels the scope only
    while the runtime is not up far enough to take that (still connecting to its parent).
    The guest calls :meth:`cancel` on this interpreter's trio thread, through the loop's token.
    """

    def __init__(self, actor: Any, scope: Any, guest: _GuestHook) -> None:
        self._actor = actor
        self._scope = scope
        self._guest = guest
        self.requested = False

    def cancel(self) -> None:
        from . import _api

        if self._guest.killing:
            # A cancel queued while the loop was stuck runs only once an injected exception
            # freed it; by then the runtime's own cancel would wait for tasks the injection
            # broke, and never end.  The injection (and the closed parent channel) end it.
            return
        self.requested = True
        if not _api.cancel_runtime_soon(self._actor):
            self._scope.cancel()

    @property
    def cancelled_caught(self) -> bool:
        """Read by the guest once the runtime has returned: it ended because it was asked to."""
        return self.requested
