"""Stacks of every live actor, collected without the trio loop: the tool for diagnosing hangs.

Who can see what:

* A process (or interpreter) sees its own threads' frames with ``sys._current_frames()``.
* A subinterpreter's threads are invisible from outside it, and ``faulthandler`` cannot even
  be imported in an isolated one.  So the parent asks the interpreter's own watchdog thread
  (:mod:`._guest`) over the control socket; a helper thread in there formats the
  interpreter's threads and writes them back.
* A ``trio``-backend actor is another process; a daemon thread in it serves the same request
  on a socket of its own (:mod:`.._backends._trio_child`).

Either way the answerer also asks *its own* live actors, with a smaller time budget, and
appends their answers indented, so a whole actor tree comes back from one request.

**The control socket is SOCK_SEQPACKET**, and everything on it is a record.  Parent to guest:
``c`` (cancel), ``k`` (kill), ``d`` + request id + budget (dump).  Guest to parent: ``u``
(cleaning up, see :data:`._guest.CLEANING_UP`) or ``D`` + request id + last-flag + a chunk of
UTF-8 text.  Records arrive whole or not at all, so a writer that gives up (its deadline
passed, the buffer is full) never leaves half a frame behind that would swallow the next
``u``; and :class:`ControlLink` is the one reader of the parent's end, so the kill path
asking "is it cleaning up?" and a dump waiting for its reply never eat each other's records.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ._guest import CLEANING_UP, DUMP

__all__ = ["ControlLink", "DumpTarget", "control_socketpair", "dump_stacks", "render_here", "serve_dumps"]

#: Tag of a dump reply record (guest or process child to parent).
DUMP_REPLY = b"D"
_REQUEST = struct.Struct(">II")  # request id, budget in ms (after the DUMP tag)
_REPLY = struct.Struct(">IB")  # request id, 1 if this is the last chunk (after the DUMP_REPLY tag)
_CHUNK = 32 * 1024  # well below the socket's send buffer (~208 KiB), so one always fits
_MAX_RECORD = 1 + _REPLY.size + _CHUNK
_MAX_TEXT = 4 * 1024 * 1024  # a reply is cut here: a runaway tree must not flood the parent
_POLL_SLICE = 0.05
#: How long the collector waits for each actor (the actors are asked in parallel).
DEFAULT_TIMEOUT = 1.0
#: Of the time an answerer is given, the share it may spend waiting for its own children.
_CHILD_SHARE = 0.6
_MIN_CHILD_BUDGET = 0.05
_SEND_BOUND = 1.0  # how long an answerer keeps trying to get its reply into the socket
_INDENT = "    "


def control_socketpair() -> tuple[socket.socket, socket.socket]:
    """(parent end, guest end) of a control socket: records, never a stream (see above)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


# -- formatting one interpreter's own threads --------------------------------------------------


def format_threads(labels: dict[int, str] | None = None, skip: Iterable[int] = ()) -> str:
    """Every thread of the *calling* interpreter, innermost frame last, with thread names."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    names.update(labels or {})
    skipped = set(skip)
    frames = [(ident, frame) for ident, frame in sys._current_frames().items() if ident not in skipped]
    # The thread that runs the program (or the actor) first, then the rest by name.
    frames.sort(key=lambda item: (names.get(item[0], "?") not in ("MainThread", "runner"), names.get(item[0], "?")))
    parts = []
    for ident, frame in frames:
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"Thread {ident:#x} ({names.get(ident, '?')}):\n{stack}")
    return "\n".join(parts) if parts else "(no Python threads)\n"


def _indent(text: str) -> str:
    return "".join(_INDENT + line if line.strip() else line for line in text.splitlines(keepends=True))


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
            except (BlockingIOError, InterruptedError):
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
        except (BlockingIOError, InterruptedError):
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
        record = DUMP_REPLY + _REPLY.pack(request_id, 1 if last else 0) + data[offset : offset + _CHUNK]
        if not send_record(sock, record, deadline):
            return False
    return True


def serve_dumps(sock: socket.socket, *, skip_self: bool = True) -> None:
    """Answer dump requests on ``sock`` until its other end closes (a process child's thread)."""
    skip = {threading.get_ident()} if skip_self else set()
    while True:
        try:
            record = sock.recv(64)
        except OSError:
            return
        if not record:
            return
        request = parse_dump_request(record)
        if request is not None:
            request_id, budget = request
            text = render_here(budget, skip=skip)
            send_dump_reply(sock, request_id, text, time.monotonic() + _SEND_BOUND)


# -- collecting ---------------------------------------------------------------------------------


class _Dumpable(Protocol):
    def request_dump(self, budget: float) -> int | None: ...
    def answer(self, request_id: int) -> str | None: ...
    def forget(self, request_id: int) -> str: ...
    def gone(self) -> bool: ...
    def fileno(self) -> int: ...


@dataclass(frozen=True)
class DumpTarget:
    """One live actor of this interpreter that can be asked for its stacks."""

    label: str  # e.g. "actor 'worker' (subinterpreter 3, isolated)"
    link: _Dumpable
    note: str = ""  # said instead of asking, e.g. "its function has ended; cleaning up"


def live_targets() -> list[DumpTarget]:
    """Every live actor (subinterpreter or process) that *this* interpreter started.

    Found through the modules' own registries, and only if those modules were ever imported
    here: a program that never spawned anything has no actors to ask.
    """
    targets: list[DumpTarget] = []
    for module_name in ("subint_spawn._core._driver", "subint_spawn._backends._trio"):
        module = sys.modules.get(module_name)
        if module is not None:
            targets.extend(module.dump_targets())
    return targets


def _gather(targets: list[DumpTarget], wait: float) -> list[str]:
    """Ask every target at once, wait for all of them together (at most ``wait`` s)."""
    deadline = time.monotonic() + wait
    child_budget = wait * _CHILD_SHARE
    answers: dict[int, str] = {}
    pending: dict[int, int] = {}  # target index -> request id
    for index, target in enumerate(targets):
        if target.note:
            answers[index] = f"({target.note})\n"
            continue
        request_id = target.link.request_dump(child_budget)
        if request_id is None:
            answers[index] = "(gone: it no longer reads requests)\n"
        else:
            pending[index] = request_id
    while pending:
        for index, request_id in list(pending.items()):
            link = targets[index].link
            answer = link.answer(request_id)
            if answer is None and link.gone():
                answer = f"(it ended before answering)\n{link.forget(request_id)}"
            if answer is not None:
                answers[index] = answer
                del pending[index]
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0:
            break
        poller = select.poll()
        for index in pending:
            fd = targets[index].link.fileno()
            if fd >= 0:
                poller.register(fd, select.POLLIN)
        # Short slices: another thread (the kill path) may read our reply off the socket,
        # and then our poll would not wake for it.
        poller.poll(min(remaining, _POLL_SLICE) * 1000)
    for index, request_id in pending.items():
        partial = targets[index].link.forget(request_id)
        answers[index] = f"(no answer within {wait:.2f} s: {_silence_hint(targets[index].label)})\n"
        if partial:
            answers[index] += f"(what arrived before the deadline:)\n{partial}"
    return [f"=== {target.label} ===\n{answers[index]}" for index, target in enumerate(targets)]


def _silence_hint(label: str) -> str:
    if "legacy" in label:
        return "a legacy interpreter shares the main GIL; a thread holding it in C starves its watchdog"
    if "process" in label:
        return "its dump thread got no GIL (a thread holding it in C?) or the process is stopped"
    return "a thread of its own holding its GIL in C starves its watchdog"


def render_here(
    wait: float,
    *,
    labels: dict[int, str] | None = None,
    skip: Iterable[int] = (),
    targets: list[DumpTarget] | None = None,
) -> str:
    """This interpreter's threads, then each of its live actors' answers, indented.

    ``wait`` bounds the whole thing; an actor is given a share of it for its own children.
    """
    own = format_threads(labels, skip)
    if targets is None:
        targets = live_targets()
    if not targets:
        return own
    if wait < _MIN_CHILD_BUDGET:
        sections = [f"=== {target.label} ===\n(not asked: no time left)\n" for target in targets]
    else:
        sections = _gather(targets, wait)
    return own + "".join("\n" + _indent(section) for section in sections)


# -- the public entry point ---------------------------------------------------------------------

_helper_idents: set[int] = set()  # our own dumping threads, left out of what they dump


def _where_am_i() -> str:
    import _interpreters

    interpreter_id = int(_interpreters.get_current()[0])
    if interpreter_id == 0:
        return f"main interpreter (pid {os.getpid()})"
    return f"interpreter {interpreter_id} (pid {os.getpid()})"


def dump_stacks(file: object | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Write the stacks of this process's threads and of every live actor; return the text.

    Works from any thread and never touches a trio loop, so it works while the loop is stuck
    (that is when it is needed).  Actors are asked in parallel and each gets ``timeout``
    seconds; one that cannot answer is listed as "no answer".  Nested actors appear indented
    under the actor that started them.  ``file`` is a text stream (default ``sys.stderr``).
    Called on a trio thread it blocks that loop for up to ``timeout``.
    """
    header = f"=== subint_spawn stack dump, pid {os.getpid()}, {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n"
    body = render_here(timeout, skip=_helper_idents)
    text = f"{header}=== {_where_am_i()} ===\n{body}"
    out = sys.stderr if file is None else file
    out.write(text)  # type: ignore[attr-defined]
    flush: Callable[[], object] | None = getattr(out, "flush", None)
    if flush is not None:
        flush()
    return text


def register_helper_thread(ident: int) -> None:
    _helper_idents.add(ident)


def unregister_helper_thread(ident: int) -> None:
    _helper_idents.discard(ident)
