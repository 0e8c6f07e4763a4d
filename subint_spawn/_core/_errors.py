"""Errors described on one side of a boundary and rebuilt on the other: one pair for every path.

An exception raised in an actor (or in any function the driver runs in a subinterpreter) may
not exist on the parent's side: its class can live in a module only the other side imported.
So it crosses as an :data:`ErrorInfo`, ``[type_name, message, traceback_text, where,
pickled_exception_or_None]``, made by :func:`describe` and turned back into a
:class:`RemoteError` subclass by :func:`rebuild`.
"""

from __future__ import annotations

import pickle
import traceback
from typing import Any, TypeVar

from .._exceptions import RemoteActorError, RemoteError

__all__ = ["PICKLE_LIMIT", "TEXT_LIMIT", "ErrorInfo", "describe", "rebuild", "sendable_text"]

E = TypeVar("E", bound=RemoteError)

ErrorInfo = list[Any]

#: Longest message, and longest traceback text, an error description carries (characters).
#: Far below the frame limit, so a description always fits in a frame however big the error.
TEXT_LIMIT = 256 * 1024
#: A pickled exception larger than this is left out; the text still describes it.
PICKLE_LIMIT = 8 * 1024 * 1024


def describe(exc: BaseException, where: str, *, with_pickle: bool) -> ErrorInfo:
    """Describe ``exc`` for the other side; the pickled object only for in-process channels."""
    cls = type(exc)
    type_name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    deeper = _lone_remote_error(exc)
    if deeper is not None:
        # It came from deeper in the tree: keep its origin, prefix this hop.
        type_name, where = deeper.remote_type, f"{where} -> {deeper.where}"
        text = deeper.remote_traceback
        message = deeper.remote_message
        exc = deeper
    else:
        text = "".join(traceback.format_exception(exc))
        message = str(exc)
    pickled = None
    if with_pickle:
        try:
            pickled = pickle.dumps(exc)
        except Exception:
            pickled = None
        if pickled is not None and len(pickled) > PICKLE_LIMIT:
            pickled = None
    return [sendable_text(type_name), sendable_text(message), sendable_text(text), sendable_text(where), pickled]


def sendable_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (head and tail kept) and made valid UTF-8.

    An error must always reach the parent: a message too big for a frame, or holding lone
    surrogates (``os.fsdecode`` of a non-UTF-8 file name) that msgpack cannot encode, would
    otherwise make describing the error fail, and the actor die of it.
    """
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _lone_remote_error(exc: BaseException) -> RemoteActorError | None:
    """The single RemoteActorError inside ``exc`` (directly or in nested one-item groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, RemoteActorError) else None


def rebuild(
    info: ErrorInfo, cls: type[E], *, trusted: bool, where: str | None = None
) -> E:
    """The exception of class ``cls`` to raise here for an error the other side described.

    ``trusted`` is true only for in-process (pickle) channels: the original exception is then
    rebuilt and chained as ``__cause__``.  Bytes from another process are never unpickled.
    ``where`` replaces the description's own (the driver names the interpreter).
    """
    type_name, message, text, described_where, pickled = info
    error = cls(type_name, message, text, where=where or described_where)
    if trusted and isinstance(pickled, bytes):
        try:
            error.__cause__ = pickle.loads(pickled)
        except Exception:
            pass  # its class exists only over there; the text says it all
    return error
