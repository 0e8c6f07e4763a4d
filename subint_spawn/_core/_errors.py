"""Errors described on one side of a boundary and rebuilt on the other: one pair for every path.

An exception raised in an actor (or in any function the driver runs in a subinterpreter) may
not exist on the parent's side: its class can live in a module only the other side imported.
So it crosses as an :data:`ErrorInfo`, ``[type_name, message, traceback_text, where,
pickled]``, made by :func:`describe` and turned back into a :class:`RemoteError` subclass by
:func:`rebuild`.  ``pickled`` is the pickled exception (in-process channels only), or the
reason it could not be pickled, or ``None``.

An exception is pickled *without* its ``__init__``: the default way, ``cls(*args)``, fails
to rebuild every exception whose ``__init__`` takes other arguments than it passes to
``Exception.__init__`` (``MyError(code, detail)`` calling ``super().__init__(f"...")``),
which is common.  Its class, ``args`` and ``__dict__`` are restored as they were instead.
"""

from __future__ import annotations

import io
import pickle
import traceback
from typing import Any

from .._exceptions import RemoteActorError, RemoteError

__all__ = ["PICKLE_LIMIT", "TEXT_LIMIT", "ErrorInfo", "describe", "rebuild", "sendable_text"]


ErrorInfo = list[Any]

#: Longest message, and longest traceback text, an error description carries (characters).
#: Far below the frame limit, so a description always fits in a frame however big the error.
TEXT_LIMIT = 256 * 1024
#: A pickled exception larger than this is left out; the text still describes it.
PICKLE_LIMIT = 8 * 1024 * 1024


def describe(exc: BaseException, where: str, *, with_pickle: bool) -> ErrorInfo:
    """Describe ``exc`` for the other side; the pickled object only for in-process channels."""
    cls = type(exc)
    type_name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
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
    pickled: bytes | str | None = None
    if with_pickle:
        pickled = _pickle_exception(exc)
    return [
        sendable_text(type_name),
        sendable_text(message),
        sendable_text(text),
        sendable_text(where),
        pickled,
    ]


def _pickle_exception(exc: BaseException) -> bytes | str:
    """``exc`` pickled (see the module's docstring), or why it could not be."""
    buffer = io.BytesIO()
    try:
        _ExceptionPickler(buffer).dump(exc)
    except Exception as failure:
        return sendable_text(f"it cannot be pickled: {type(failure).__name__}: {failure}", 1000)
    if buffer.tell() > PICKLE_LIMIT:
        return f"pickled, it takes {buffer.tell()} bytes, over the {PICKLE_LIMIT}-byte limit"
    return buffer.getvalue()


class _ExceptionPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        # Only exceptions pickled the default way (a class with its own __reduce__, such as
        # OSError or our RemoteError, knows best) whose __init__ is Python code (a builtin's
        # __init__ may keep state that is in neither args nor __dict__).
        if (
            isinstance(obj, BaseException)
            and cls.__reduce__ is BaseException.__reduce__
            and hasattr(cls.__init__, "__code__")
        ):
            return _rebuild_exception, (cls, obj.args, obj.__dict__ or None)
        return NotImplemented


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any] | None
) -> BaseException:
    """An exception of class ``cls`` with these ``args`` and ``__dict__``, ``__init__`` not run."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


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


def rebuild[E: RemoteError](
    info: ErrorInfo, cls: type[E], *, trusted: bool, where: str | None = None
) -> E:
    """The exception of class ``cls`` to raise here for an error the other side described.

    ``trusted`` is true only for in-process (pickle) channels: the original exception is then
    rebuilt and chained as ``__cause__``.  Bytes from another process are never unpickled.
    ``where`` replaces the description's own (the driver names the interpreter).  When the
    original cannot be had on a trusted channel, a note on the error says why.
    """
    type_name, message, text, described_where, pickled = info
    error = cls(type_name, message, text, where=where or described_where)
    if not trusted:
        return error
    why: str | None = pickled if isinstance(pickled, str) else None
    if isinstance(pickled, bytes):
        try:
            error.__cause__ = pickle.loads(pickled)
        except Exception as failure:  # e.g. its class exists only over there
            why = f"it cannot be unpickled here: {type(failure).__name__}: {failure}"
    if why is not None:
        error.add_note(f"the original {type_name} is not attached as __cause__: {why}")
    return error
