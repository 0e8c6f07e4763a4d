"""The one module that touches tractor's internals.

Everything subint_spawn needs from tractor goes through here: which of its modules and names we
import, the check that they still have the shape we were built against, the swap of
``tractor.spawn._spawn._methods['subint']``, and the private attributes of tractor's actor
nursery that a spawn method has to maintain.  tractor's spawn-method interface is internal to
tractor and changes between commits, so nothing else in subint_spawn imports tractor: when it
moves, this file is the only one to read again.

The check runs when the method is installed (:func:`load`), never mid-spawn: a tractor whose
interface differs is refused with a message naming the commit this was built against.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._exceptions import TractorNotSupported

log = logging.getLogger("subint_spawn.tractor")

#: The tractor commit this adapter was built and tested against (its ``mtf_backend`` branch).
SUPPORTED_COMMIT = "e0d181b083929c8eb50bdf657c5f3fc8b9bd83c8"
INSTALL_HINT = f"pip install 'tractor @ git+https://github.com/goodboy/tractor@{SUPPORTED_COMMIT}'"

#: The key in tractor's table of spawn methods that we take over.
METHOD_KEY = "subint"

# tractor calls every spawn method with these parameters (``new_proc`` passes them on as is).
_SPAWN_PARAMETERS = (
    "name",
    "actor_nursery",
    "subactor",
    "errors",
    "bind_addrs",
    "parent_addr",
    "_runtime_vars",
    "infect_asyncio",
    "task_status",
    "proc_kwargs",
)
_CHILD_MAIN_PARAMETERS = ("uid", "loglevel", "parent_addr", "infect_asyncio", "spawn_method")
_SPAWN_SPEC_FIELDS = (
    "_parent_main_data",
    "_runtime_vars",
    "enable_modules",
    "reg_addrs",
    "bind_addrs",
)


@dataclass(frozen=True)
class Tractor:
    """The parts of tractor a spawn method uses, resolved and checked once."""

    spawn: ModuleType  # tractor.spawn._spawn: _methods, cancel_on_completion
    entry: ModuleType  # tractor.spawn._entry: where the child's trio.run starts async_main
    child_main: Callable[..., None]  # tractor._child._actor_child_main
    portal_type: type
    spawn_spec_type: type
    current_actor: Callable[[], Any]
    cancel_on_completion: Callable[..., Any]
    original_method: Callable[..., Any]


_loaded: Tractor | None = None


def load() -> Tractor:
    """Import tractor and check its spawn interface; raise :class:`TractorNotSupported` if it
    is missing or differs from the one at :data:`SUPPORTED_COMMIT`."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded


def _load() -> Tractor:
    try:
        import tractor  # noqa: F401  -- the package first, so a missing tractor says so plainly
    except ModuleNotFoundError as exc:
        if exc.name != "tractor":
            raise  # tractor is there, something it imports is not: that error says it best
        raise TractorNotSupported(
            f"tractor is not installed ({exc}). subint_spawn's tractor spawn method needs tractor "
            f"at commit {SUPPORTED_COMMIT[:8]}: {INSTALL_HINT}"
        ) from exc
    try:
        from tractor import _child
        from tractor.msg import types as msgtypes
        from tractor.runtime import _portal, _runtime, _state
        from tractor.spawn import _entry
        from tractor.spawn import _spawn as spawn
    except ImportError as exc:
        raise _incompatible(f"a module it uses is missing ({exc})") from exc

    methods = getattr(spawn, "_methods", None)
    if not isinstance(methods, dict) or METHOD_KEY not in methods:
        raise _incompatible(f"tractor.spawn._spawn._methods has no {METHOD_KEY!r} entry")
    original = _original_method(methods[METHOD_KEY])
    _expect_parameters(
        "tractor.spawn._spawn.new_proc", getattr(spawn, "new_proc", None), _SPAWN_PARAMETERS
    )
    _expect_parameters(f"tractor's {METHOD_KEY!r} spawn method", original, _SPAWN_PARAMETERS)
    _expect_parameters(
        "tractor._child._actor_child_main",
        getattr(_child, "_actor_child_main", None),
        _CHILD_MAIN_PARAMETERS,
    )
    for module, name in (
        (spawn, "cancel_on_completion"),
        (spawn, "try_set_start_method"),
        (_entry, "async_main"),
        (_portal, "Portal"),
        (_state, "current_actor"),
        (msgtypes, "SpawnSpec"),
        (_runtime.Actor, "cancel_soon"),
    ):
        if not hasattr(module, name):
            raise _incompatible(f"{module.__name__}.{name} is missing")
    fields = getattr(msgtypes.SpawnSpec, "__struct_fields__", ())
    missing = [f for f in _SPAWN_SPEC_FIELDS if f not in fields]
    if missing:
        raise _incompatible(f"tractor.msg.types.SpawnSpec lacks the fields {missing}")
    return Tractor(
        spawn=spawn,
        entry=_entry,
        child_main=_child._actor_child_main,
        portal_type=_portal.Portal,
        spawn_spec_type=msgtypes.SpawnSpec,
        current_actor=_state.current_actor,
        cancel_on_completion=spawn.cancel_on_completion,
        original_method=original,
    )


def _original_method(current: Callable[..., Any]) -> Callable[..., Any]:
    """tractor's own method, even if ours is installed already (``load`` may run again after a
    ``_loaded`` reset, in tests)."""
    return getattr(current, "_subint_spawn_replaces", current)


def _expect_parameters(what: str, fn: object, expected: tuple[str, ...]) -> None:
    if not callable(fn):
        raise _incompatible(f"{what} is missing")
    try:
        found = tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError) as exc:
        raise _incompatible(f"{what} has no readable signature ({exc})") from exc
    if found != expected:
        raise _incompatible(f"{what} takes ({', '.join(found)}), expected ({', '.join(expected)})")


def _incompatible(detail: str) -> TractorNotSupported:
    return TractorNotSupported(
        f"this tractor's spawn interface differs from the one subint_spawn supports: {detail}. "
        f"subint_spawn's tractor spawn method is built against tractor commit {SUPPORTED_COMMIT}; "
        f"install that one: {INSTALL_HINT}"
    )


# -- the method table -------------------------------------------------------------------------


def install_method(method: Callable[..., Any]) -> None:
    """Make ``method`` tractor's ``'subint'`` spawn method (in this interpreter)."""
    api = load()
    method._subint_spawn_replaces = api.original_method  # type: ignore[attr-defined]
    api.spawn._methods[METHOD_KEY] = method


def restore_method() -> None:
    """Put tractor's own ``'subint'`` method back."""
    api = load()
    api.spawn._methods[METHOD_KEY] = api.original_method


def installed_method() -> Callable[..., Any] | None:
    """The method in tractor's table if it is ours, else None (tractor not even imported: None)."""
    if _loaded is None:
        return None
    method = _loaded.spawn._methods.get(METHOD_KEY)
    return method if hasattr(method, "_subint_spawn_replaces") else None


# -- what a spawn method must do to tractor's actor nursery ------------------------------------
# tractor's nursery keeps its children in private attributes; its own spawn methods maintain
# them, so ours must too.


def ipc_server(actor_nursery: Any) -> Any:
    return actor_nursery._actor.ipc_server


def register_child(actor_nursery: Any, subactor: Any, process: Any, portal: Any) -> None:
    """What tractor's nursery needs to cancel the child (``_children``) and what its IPC server
    needs to find the child's nursery (``_actoruid2nursery``)."""
    uid = subactor.aid.uid
    actor_nursery._children[uid] = (subactor, process, portal)
    load().current_actor()._actoruid2nursery[uid] = actor_nursery


def unregister_child(actor_nursery: Any, subactor: Any) -> None:
    actor_nursery._children.pop(subactor.aid.uid, None)


async def wait_until_joined(actor_nursery: Any) -> None:
    """Until the nursery's block has ended (normally or not) and it waits for its children."""
    await actor_nursery._join_procs.wait()


def cancels_after_result(actor_nursery: Any, portal: Any) -> bool:
    """Was the child started with ``run_in_actor`` (cancel it once its result is in)?"""
    return portal in actor_nursery._cancel_after_result_on_exit


def end_sending(chan: Any) -> None:
    """Shut down the sending side of a channel's socket: the peer reads the end of the channel,
    as from a process that died.

    Not ``Channel.aclose()``: that closes the socket under our own runtime's task reading it,
    which then fails with ``ClosedResourceError``.  And not through trio's socket object: trio
    would remember the shutdown and fail our own later sends with ``ClosedResourceError`` too,
    which tractor does not expect.  Shut down through a duplicate descriptor, our side's later
    sends fail as to a dead process (``BrokenResourceError``) and our reader sees the channel
    end once the peer's side closes.
    """
    sock = getattr(getattr(chan, "stream", None), "socket", None)
    if sock is None:
        log.info("no socket under %r to shut down", chan)
        return
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as duplicate:
            duplicate.shutdown(socket.SHUT_WR)
    except OSError as exc:  # closed or not connected any more: the peer has its end already
        log.debug("shutting down %r: %r", chan, exc)


def spawn_spec(subactor: Any, bind_addrs: Any, runtime_vars: dict[str, Any]) -> Any:
    return load().spawn_spec_type(
        _parent_main_data=subactor._parent_main_data,
        enable_modules=subactor.enable_modules,
        reg_addrs=subactor.reg_addrs,
        bind_addrs=bind_addrs,
        _runtime_vars=runtime_vars,
    )


# -- inside the child's interpreter ---------------------------------------------------------


def wrap_child_async_main(wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """In *this* interpreter only (the child's own copy of tractor): wrap the ``async_main``
    that tractor's child entry runs under ``trio.run`` (its first argument is the actor), so
    our code runs inside that loop."""
    entry = load().entry
    entry.async_main = wrap(entry.async_main)


def cancel_runtime_soon(actor: Any) -> bool:
    """From the actor's own trio thread: start tractor's runtime cancel, what a parent's cancel
    request runs.  False if the runtime is not up far enough to take it (then cancel its scope)."""
    if getattr(actor, "_service_tn", None) is None:
        return False
    try:
        actor.cancel_soon()
    except RuntimeError as exc:  # its service nursery is closing: the runtime is on its way out
        # (Raising here would crash the loop: this runs as a trio run_sync_soon callback.)
        log.debug("tractor's runtime cancel refused (%r); cancelling its scope instead", exc)
        return False
    return True
