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

The requests and replies travel on the control socket described in :mod:`._control`.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ._control import parse_dump_request, send_dump_reply

__all__ = [
    "DumpTarget",
    "dump_stacks",
    "register_dump_source",
    "render_here",
    "serve_dumps",
]

_POLL_SLICE = 0.05
#: How long the collector waits for each actor (the actors are asked in parallel).
DEFAULT_TIMEOUT = 1.0
#: Of the time an answerer is given, the share it may spend waiting for its own children.
_CHILD_SHARE = 0.6
_MIN_CHILD_BUDGET = 0.05
_SEND_BOUND = 1.0  # how long an answerer keeps trying to get its reply into the socket
_INDENT = "    "


# -- formatting one interpreter's own threads --------------------------------------------------


def format_threads(labels: dict[int, str] | None = None, skip: Iterable[int] = ()) -> str:
    """Every thread of the *calling* interpreter, innermost frame last, with thread names."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    names.update(labels or {})
    skipped = set(skip)
    frames = [
        (ident, frame) for ident, frame in sys._current_frames().items() if ident not in skipped
    ]
    # The thread that runs the program (or the actor) first, then the rest by name.
    frames.sort(
        key=lambda item: (
            names.get(item[0], "?") not in ("MainThread", "runner"),
            names.get(item[0], "?"),
        )
    )
    parts = []
    for ident, frame in frames:
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"Thread {ident:#x} ({names.get(ident, '?')}):\n{stack}")
    return "\n".join(parts) if parts else "(no Python threads)\n"


def _indent(text: str) -> str:
    return "".join(
        _INDENT + line if line.strip() else line for line in text.splitlines(keepends=True)
    )


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
    #: Why it may not answer in time, said when it does not.
    silence_hint: str = "a thread of its own holding its GIL in C starves its watchdog"


#: Where live actors are found: each module that starts actors registers a function listing
#: its own when it is imported.  A program that never imported one has none to ask.
_SOURCES: list[Callable[[], list[DumpTarget]]] = []


def register_dump_source(source: Callable[[], list[DumpTarget]]) -> None:
    """Make :func:`dump_stacks` ask the actors ``source()`` lists (called at each dump)."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def live_targets() -> list[DumpTarget]:
    """Every live actor (subinterpreter or process) that *this* interpreter started."""
    return [target for source in list(_SOURCES) for target in source()]


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
        answers[index] = f"(no answer within {wait:.2f} s: {targets[index].silence_hint})\n"
        if partial:
            answers[index] += f"(what arrived before the deadline:)\n{partial}"
    return [f"=== {target.label} ===\n{answers[index]}" for index, target in enumerate(targets)]


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
