"""The first code a tractor actor runs in its subinterpreter: tractor's own child entry point.

The driver runs :func:`subint_spawn._tractor._spawn.actor_child_main` as a plain function
(tractor's entry runs its own ``trio.run``); it installs our spawn method in this interpreter's
copy of tractor too (an actor that spawns ``'subint'`` children spawns them through the driver
as well), then calls :func:`run_child_runtime` here.  Before tractor takes over:

* The driver's cooperative cancel is pointed at tractor's runtime.  tractor's ``async_main`` is
  wrapped (in this interpreter only) and announces itself to the guest
  (:func:`subint_spawn._core._guest.announce_trio_loop`) with something whose ``cancel()`` runs
  tractor's runtime cancel (:class:`_RuntimeCancel`): cancelling a scope around tractor's
  runtime is not enough, because tractor shields the loop that serves its parent's channel.
  Without it the kill's first step would do nothing and every kill would go straight to
  exception injection, which can leave trio half torn down.  (Each injection also wakes this
  interpreter's loop, so a runtime idle in ``epoll`` takes it: the guest does that for any
  announced loop.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core import _guest


def run_child_runtime(
    uid: tuple[str, str], loglevel: str | None, parent_addr: Any, infect_asyncio: bool
) -> None:
    """Run tractor's child runtime (our spawn method already installed in this interpreter);
    returns when the actor's runtime has ended."""
    from . import _api

    _api.wrap_child_async_main(_announcing)
    _api.load().child_main(
        uid=uid,
        loglevel=loglevel,
        parent_addr=parent_addr,
        infect_asyncio=infect_asyncio,
        spawn_method=_api.METHOD_KEY,
    )


def _announcing(original: Callable[..., Any]) -> Callable[..., Any]:
    """tractor's ``async_main``, announcing itself to the guest once its loop runs."""

    async def async_main(actor: Any, *args: Any, **kwargs: Any) -> Any:
        import trio

        with trio.CancelScope() as scope:
            _guest.announce_trio_loop(_RuntimeCancel(actor, scope))
            return await original(actor, *args, **kwargs)
        return None

    return async_main


class _RuntimeCancel:
    """What the guest cancels on the driver's cooperative step, in place of its own root scope.

    This runs tractor's own runtime cancel (what a parent's cancel request runs), and cancels
    the scope around the runtime only while the runtime is not up far enough to take that
    (still connecting to its parent).  The guest calls :meth:`cancel` on this interpreter's
    trio thread, through the loop's token.
    """

    def __init__(self, actor: Any, scope: Any) -> None:
        self._actor = actor
        self._scope = scope
        self.requested = False

    def cancel(self) -> None:
        from . import _api

        if _guest.kill_requested():
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
