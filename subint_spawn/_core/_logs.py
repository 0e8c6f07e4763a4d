"""Log records from actors, handed to the parent's ``logging`` with the actor's name on them.

An actor's interpreter (or process) has a ``logging`` of its own: handlers the user configured
in the main interpreter do not exist there, so a record logged in an actor would reach nobody,
or the terminal in the wrong format.  Instead every actor's root logger gets a
:class:`ForwardingHandler` that sends each record up the actor's channel; the parent re-emits
it through its own logger of the same name (:func:`reemit`), so the user's configuration --
levels, handlers, format -- applies as if the code ran in the parent.

Every re-emitted record carries ``record.actor``: the actor's path from the parent that
re-emits it (``"worker"``, or ``"mid -> leaf"`` for a grandchild), usable in a format string
as ``%(actor)s``, and the message is prefixed with ``[path]`` so even a plain format shows it.

Logging must never break or block the actor: a record that cannot be encoded is reported by
``logging``'s usual ``handleError``; while the parent is not reading and the channel's queue
is full, records are dropped and counted, and the next one that gets through says how many.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import trio

from . import _messages as m
from ._channel import Channel

__all__ = ["ForwardingHandler", "install", "reemit"]

_FORMATTER = logging.Formatter()


class ForwardingHandler(logging.Handler):
    def __init__(self, channel: Channel, actor_name: str) -> None:
        super().__init__()
        self._channel = channel
        self._actor_name = actor_name
        self._trio_thread = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            frame = self._channel.encode((m.LOG, *self._describe(record)))
        except Exception:
            self.handleError(record)
            return
        if threading.get_ident() == self._trio_thread:
            self._send(frame)
            return
        try:  # another thread of the actor: the channel belongs to the trio thread
            self._token.run_sync_soon(self._send, frame)
        except trio.RunFinishedError:
            self.dropped += 1

    def _describe(self, record: logging.LogRecord) -> tuple[int, str, str, str, str | None]:
        deeper = getattr(record, "actor", None)  # re-emitted here from one of our own children
        path = self._actor_name if deeper is None else f"{self._actor_name} -> {deeper}"
        message = getattr(record, "actor_message", None) if deeper is not None else None
        if message is None:
            message = record.getMessage()
        if self.dropped:
            message = (
                f"{message} ({self.dropped} earlier record(s) dropped: the parent was not reading)"
            )
        exc_text = record.exc_text
        if exc_text is None and record.exc_info:
            exc_text = _FORMATTER.formatException(record.exc_info)
        return record.levelno, record.name, message, path, exc_text

    def _send(self, frame: bytes) -> None:
        if self._channel.send_nowait(frame):
            self.dropped = 0
        else:
            self.dropped += 1


def install(channel: Channel, actor_name: str, level: int) -> ForwardingHandler:
    """Route this actor's log records to its parent; ``level`` is the parent's root level."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)  # a trio-backend child may inherit a basicConfig'd stderr
    handler = ForwardingHandler(channel, actor_name)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def reemit(message: tuple[Any, ...]) -> None:
    """In the parent: log what an actor logged, through the logger of the same name."""
    _, level, name, text, path, exc_text = message
    logger = logging.getLogger(name)
    if not logger.isEnabledFor(level):
        return
    record = logger.makeRecord(name, level, "<actor>", 0, "[%s] %s", (path, text), None)
    record.actor = path
    record.actor_message = text
    record.exc_text = exc_text
    logger.handle(record)
