"""The control socket between a parent and one guest (or process child): one protocol, one place.

Every interpreter the driver starts carries a watchdog thread (:mod:`._guest`) that listens on
the guest end of a control socket; a ``trio``-backend actor process answers stack-dump requests
on one too.  Both sides import this module and nothing else of ours, so the tags, the framing
and the parent's reader are written once.

**The socket is SOCK_SEQPACKET**, and everything on it is a record.  Records arrive whole or not
at all, so a writer that gives up (its deadline passed, the buffer is full) never leaves half a
frame behind that would swallow the next one.

Parent to guest:

* :data:`CANCEL` -- cooperative: cancel the guest's root trio cancel scope.
* :data:`KILL` -- inject an exception into the guest's runner thread.
* :data:`DUMP` + request id + budget (ms) -- format every thread's stack and answer.

Guest to parent:

* :data:`CLEANING_UP` -- the guest's function is over (returned, raised or was killed) and it
  is only cleaning up now; no injection can land any more, so the parent stops escalating.
* :data:`DUMP_REPLY` + request id + last-flag + a chunk of UTF-8 text.

:class:`ControlLink` is the one reader of the parent's end, so the kill path asking "is it
cleaning up?" and a dump waiting for its reply never eat each other's records.
"""

from __future__ import annotations

import itertools
import select
import socket
import struct
import threading
import time

__all__ = [
    "CANCEL",
    "CLEANING_UP",
    "DUMP",
    "DUMP_REPLY",
    "KILL",
    "ControlLink",
    "KilledByWatchdog",
    "control_socketpair",
    "parse_dump_request",
    "send_dump_reply",
    "send_record",
]

CANCEL = b"c"
KILL = b"k"
DUMP = b"d"
CLEANING_UP = b"u"
DUMP_REPLY = b"D"


class KilledByWatchdog(BaseException):
    """What :data:`KILL` injects into a guest's runner thread.

    Defined here, beside the command, so the runtime inside the guest (which must let it pass
    rather than report it as a call's error) knows it by class, not by name.
    """


_REQUEST = struct.Struct(">II")  # request id, budget in ms (after the DUMP tag)
_REPLY = struct.Struct(">IB")  # request id, 1 if this is the last chunk (after the DUMP_REPLY tag)
_CHUNK = 32 * 1024  # well below the socket's send buffer (~208 KiB), so one always fits
_MAX_RECORD = 1 + _REPLY.size + _CHUNK
_MAX_TEXT = 4 * 1024 * 1024  # a reply is cut here: a runaway tree must not flood the parent
_POLL_SLICE = 0.05


def control_socketpair() -> tuple[socket.socket, socket.socket]:
    """(parent end, guest end) of a control socket: records, never a stream (see above)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


# -- the parent's end of a control socket ------------------------------------------------------


class ControlLink:
    """The parent's end of one guest's (or process child's) control socket.

    Used from the trio thread (kill escalation), from a guest's runner (reaping its orphans)
    and from any thread that collects stacks, hence the lock; it is never held across a wait.
    Replies carry the request id, so a late answer to a request that timed out is dropped
    instead of being taken for the answer to the next one.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._lock = threading.Lock()
        self._closed = False
        self._eof = False
        self._cleaning_up = False
        self._ids = itertools.count(1)
        self._partial: dict[int, list[bytes]] = {}  # request id -> chunks so far
        self._answers: dict[int, str] = {}

    def fileno(self) -> int:
        """For polling only: the number may be closed (and even reused) under the poller."""
        return -1 if self._closed else self._sock.fileno()

    def send(self, command: bytes) -> bool:
        with self._lock:
            if self._closed:
                return False
            try:
                self._sock.send(command)
            except OSError:
                return False  # buffer full or closed: the guest is already being told or is gone
            return True

    def cleaning_up(self) -> bool:
        """Has the guest said its function is over (see ``_guest.CLEANING_UP``)?"""
        with self._lock:
            self._pump()
            return self._cleaning_up

    def gone(self) -> bool:
        with self._lock:
            self._pump()
            return self._closed or self._eof

    def request_dump(self, budget: float) -> int | None:
        """Ask for a dump (the answerer may spend ``budget`` s on its own children).

        Returns the request id, or None when nobody can answer any more: the socket is closed
        or at EOF, or the guest's watchdog has already stopped (it reads no more commands).
        """
        with self._lock:
            self._pump()
            if self._closed or self._eof or self._cleaning_up:
                return None
            request_id = next(self._ids) & 0xFFFFFFFF
            record = DUMP + _REQUEST.pack(request_id, min(int(budget * 1000), 0xFFFFFFFF))
            try:
                self._sock.send(record)
            except OSError:
                return None
            self._partial[request_id] = []
            return request_id

    def answer(self, request_id: int) -> str | None:
        """The complete answer to ``request_id`` if it has arrived (non-blocking)."""
        with self._lock:
            self._pump()
            return self._answers.pop(request_id, None)

    def forget(self, request_id: int) -> str:
        """Stop waiting for ``request_id``; return whatever part of it had arrived."""
        with self._lock:
            self._pump()
            chunks = self._partial.pop(request_id, [])
            answer = self._answers.pop(request_id, None)
        if answer is not None:
            return answer
        return b"".join(chunks).decode("utf-8", "replace")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._sock.close()

    def _pump(self) -> None:
        """Read every record that is there (lock held); never blocks."""
        while not (self._closed or self._eof):
            try:
                record = self._sock.recv(_MAX_RECORD)
            except BlockingIOError, InterruptedError:
                return
            except OSError:
                self._eof = True
                return
            if not record:
                self._eof = True
                return
            self._take(record)

    def _take(self, record: bytes) -> None:
        tag = record[:1]
        if tag == CLEANING_UP:
            self._cleaning_up = True
        elif tag == DUMP_REPLY and len(record) >= 1 + _REPLY.size:
            request_id, last = _REPLY.unpack_from(record, 1)
            chunks = self._partial.get(request_id)
            if chunks is None:
                return  # an answer nobody waits for any more
            chunks.append(record[1 + _REPLY.size :])
            if last:
                del self._partial[request_id]
                self._answers[request_id] = b"".join(chunks).decode("utf-8", "replace")
        # Anything else is not ours to understand; dropping one record loses nothing else.


# -- the answering side (inside a guest, or in a process child) --------------------------------


def parse_dump_request(record: bytes) -> tuple[int, float] | None:
    """``(request id, budget in s)`` from a dump request record, or None if it is not one."""
    if record[:1] != DUMP or len(record) < 1 + _REQUEST.size:
        return None
    request_id, budget_ms = _REQUEST.unpack_from(record, 1)
    return request_id, budget_ms / 1000


def send_record(sock: socket.socket, record: bytes, deadline: float) -> bool:
    """Send one record without ever blocking past ``deadline``; False if it could not go.

    The socket stays blocking for its other users (the watchdog's reads); ``MSG_DONTWAIT``
    makes just this send non-blocking, and a record is queued whole or not at all.
    """
    while True:
        try:
            sock.send(record, socket.MSG_DONTWAIT)
            return True
        except BlockingIOError, InterruptedError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLOUT)
            poller.poll(min(remaining, _POLL_SLICE) * 1000)
        except OSError:
            return False  # the parent closed its end: nobody to answer


def send_dump_reply(sock: socket.socket, request_id: int, text: str, deadline: float) -> bool:
    data = text.encode("utf-8", "replace")
    if len(data) > _MAX_TEXT:
        data = data[:_MAX_TEXT] + b"\n... (cut: the dump exceeded 4 MiB)\n"
    offsets = range(0, max(len(data), 1), _CHUNK)
    for offset in offsets:
        last = offset + _CHUNK >= len(data)
        record = (
            DUMP_REPLY + _REPLY.pack(request_id, 1 if last else 0) + data[offset : offset + _CHUNK]
        )
        if not send_record(sock, record, deadline):
            return False
    return True
