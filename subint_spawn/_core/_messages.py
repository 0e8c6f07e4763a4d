"""The messages parent and actor exchange, and their validation.

A message is a flat tuple whose first item names its kind.  Tuples (not classes) because the
same messages travel through pickle (isolated interpreters cannot import msgspec) and msgpack
(to subprocesses), which turns tuples into lists; :func:`parse` checks shape and field types on
arrival, so a malformed message becomes a :class:`ProtocolError` naming what was wrong instead
of an ``IndexError`` deep in the runtime.

Parent -> actor::

    ("call", cid, module, qualname, kwargs)     run module.qualname(**kwargs), answer with cid
    ("context", cid, module, qualname, kwargs)  run module.qualname(ctx, **kwargs) as context cid
    ("cancel", cid)                             cancel that call or context
    ("stop",)                                   cancel everything, close the channel, exit

Actor -> parent::

    ("ready", name, uid, pid, interpreter_id)   enable_modules imported, serving; who it is
                                                (an :class:`._identity.ActorInfo`)
    ("startup_error", error)                    could not start; the actor exits
    ("started", cid, value)                     the context's first value (ctx.started)
    ("return", cid, value)                      a call's or context's result
    ("error", cid, error)
    ("cancelled", cid, error)                   the context ended by cancellation
    ("log", level, logger, text, actor, exc)    a log record, re-emitted by the parent

Both ways, within a context::

    ("stream", cid, [payload, ...])             stream items, each encoded on its own
                                                (so a bad value fails its own send, and a
                                                burst travels as one frame)
    ("stream_end", cid)                         the sender closed its side of the stream
    ("credit", cid, n)                          the receiver consumed n more items (flow control)

``error`` is an :data:`._errors.ErrorInfo`: ``[type_name, message, traceback_text, where,
pickled]`` (see there).
"""

from __future__ import annotations

from typing import Any

from .._exceptions import ProtocolError

__all__ = ["is_stream_items", "parse"]

CALL = "call"
CONTEXT = "context"
CANCEL = "cancel"
STOP = "stop"
READY = "ready"
STARTUP_ERROR = "startup_error"
STARTED = "started"
RETURN = "return"
ERROR = "error"
CANCELLED = "cancelled"
STREAM = "stream"
STREAM_END = "stream_end"
CREDIT = "credit"
LOG = "log"

_ANY = object
_SCHEMAS: dict[str, tuple[type, ...]] = {
    CALL: (int, str, str, dict),
    CONTEXT: (int, str, str, dict),
    CANCEL: (int,),
    STOP: (),
    READY: (str, str, int, int),
    STARTUP_ERROR: (list,),
    STARTED: (int, _ANY),
    RETURN: (int, _ANY),
    ERROR: (int, list),
    CANCELLED: (int, list),
    STREAM: (int, list),
    STREAM_END: (int,),
    CREDIT: (int, int),
    LOG: (int, str, str, str, _ANY),
}
_BOTH_WAYS = frozenset({STREAM, STREAM_END, CREDIT})
TO_ACTOR = frozenset({CALL, CONTEXT, CANCEL, STOP}) | _BOTH_WAYS
TO_PARENT = frozenset({READY, STARTUP_ERROR, STARTED, RETURN, ERROR, CANCELLED, LOG}) | _BOTH_WAYS


def parse(message: Any, allowed: frozenset[str]) -> tuple[Any, ...]:
    """Validate an arriving message; return it as a tuple, or raise :class:`ProtocolError`."""
    # Fast paths for the bulk of the traffic -- stream items, calls, results -- as pickle
    # delivers them: the same checks in fewer steps (``type(x) is int`` also refuses bools).
    if type(message) is tuple:
        n = len(message)
        if n == 3:
            kind = message[0]
            if (kind == STREAM and type(message[1]) is int and type(message[2]) is list) or (
                kind == RETURN and kind in allowed and type(message[1]) is int
            ):
                return message
        elif (
            n == 5
            and message[0] == CALL
            and CALL in allowed
            and (
                type(message[1]) is int
                and type(message[2]) is str
                and type(message[3]) is str
                and type(message[4]) is dict
            )
        ):
            return message
    if not isinstance(message, (tuple, list)) or not message or not isinstance(message[0], str):
        raise ProtocolError(f"not a message: {message!r:.200}")
    kind = message[0]
    if kind not in allowed:
        raise ProtocolError(f"unexpected message kind {kind!r} (expected one of {sorted(allowed)})")
    schema = _SCHEMAS[kind]
    if len(message) != len(schema) + 1:
        raise ProtocolError(f"{kind!r} message needs {len(schema)} fields, got {len(message) - 1}")
    for index, (value, expected) in enumerate(zip(message[1:], schema), start=1):
        if expected is _ANY:
            continue
        if expected is list:
            ok = isinstance(value, (list, tuple))
        else:
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if not ok:
            raise ProtocolError(
                f"{kind!r} field {index} should be {expected.__name__}, got {type(value).__name__}"
            )
    if kind in (ERROR, STARTUP_ERROR, CANCELLED):
        _check_error_info(message[-1])
    return tuple(message)


def is_stream_items(message: Any) -> bool:
    """Whether ``message`` is a well-formed ``stream`` message, as it arrives (pickle)."""
    return (
        type(message) is tuple
        and len(message) == 3
        and message[0] == STREAM
        and type(message[1]) is int
        and type(message[2]) is list
    )


def _check_error_info(info: Any) -> None:
    if len(info) != 5 or not all(isinstance(part, str) for part in info[:4]):
        raise ProtocolError(f"malformed error description: {info!r:.200}")
