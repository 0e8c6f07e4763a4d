"""A message channel over one connected socket: length-prefixed frames, one codec.

Frame = 4-byte big-endian length + that many bytes of codec output.  Errors are split by whose
fault they are:

* a value the codec cannot encode is the *sender's* mistake: ``TypeError`` in the sender,
  nothing queued, the channel stays usable;
* a payload over ``max_frame`` likewise (``ValueError``), before anything is queued;
* a frame that announces more than ``max_frame`` or does not decode is the *peer's* fault or
  corruption: :class:`ProtocolError`, and the channel is closed -- there is no way to find the
  next frame boundary again;
* end of stream: :class:`ChannelClosed`.

**Stream items are coalesced.**  A control message (a call, a result, an error, a cancel, a
credit) is written before ``send`` returns, as if unbuffered.  Stream items are the one
message the channel merges: an item sent within ``BURST_WINDOW`` of the one before is queued,
and consecutive queued items of one context leave as a single
``("stream", cid, [payload, ...])`` frame when the writer task (:meth:`Channel.run_writer`)
next runs -- one syscall and one frame for the whole burst, on both ends.  Bytes leave in the
order they were sent (a control message first seals the items queued before it), and since
only whole frames are ever queued and the unsent tail stays in the channel when a flush is
cancelled, cancellation can delay bytes but never tear a frame.  Without a writer task (before
it starts, after it was cancelled) every send flushes inline, so the channel works either way.

Reads likewise take whatever the socket has (up to ``_READ_SIZE``) and hand out frames from
that buffer without touching the socket again.  Both directions yield to the scheduler at
most once per syscall, not per message, and remain cancellation points on every call.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque
from typing import Any

import trio

from .._exceptions import ChannelClosed, ProtocolError
from ._codec import Codec
from ._identity import ActorInfo
from ._messages import STREAM

__all__ = ["DEFAULT_MAX_FRAME", "HEADER", "Channel", "channel_from_fd"]

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_unpack_header = _HEADER.unpack_from
#: The frame header, for a sender that frames a payload itself (see Channel.encode).
HEADER = _HEADER
#: Bytes asked of one read.  Below glibc's mmap threshold (128 KiB): ``recv(n)`` allocates n
#: bytes, and at 256 KiB a process whose threshold never rose (a fresh ``trio``-backend actor)
#: paid an mmap and a munmap on every read, ~20 us a round trip (measured with strace -c).
_READ_SIZE = 64 * 1024
#: Senders wait (cancellably, nothing queued) while this much is waiting to be written.
HIGH_WATER = 1024 * 1024
#: Stream items sent closer together than this (seconds) are a burst, and queue.
BURST_WINDOW = 100e-6
#: A queued run of items is sealed into a frame at this many items or bytes.
_BATCH_ITEMS = 512
_BATCH_BYTES = 256 * 1024
#: Bytes a frame spends on the batch wrapper, and on each item in it, beyond the items' own
#: bytes (measured: pickle 10 per item at most, msgpack 5); counted so that a sealed batch
#: always fits the peer's frame limit.
_BATCH_OVERHEAD = 64
_ITEM_OVERHEAD = 16
#: A sender that never waits still lets other tasks run this often.
_YIELD_EVERY = 64
# Compact a buffer when this many consumed bytes sit at its head.
_COMPACT_AT = 1024 * 1024


class Channel:
    def __init__(
        self, sock: socket.socket, codec: Codec, *, max_frame: int = DEFAULT_MAX_FRAME
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self.codec = codec
        self.max_frame = max_frame
        #: Who is on the other end, once known (a parent's channel learns it from ``ready``).
        self.peer: ActorInfo | None = None
        self._closed = False
        self._inbox = bytearray()
        self._in_pos = 0
        self._loads = codec.loads
        self._decoded: deque[Any] = deque()  # decoded by receive_many, not yet received
        # The last read emptied the socket and nothing whole is buffered (no bad header, no
        # decoded messages): the next receive waits before it reads.
        self._drained = False
        self._bad_header = False  # a header over the limit waits, behind delivered messages
        self._outbox = bytearray()
        self._out_pos = 0
        # Stream items queued in a burst and not framed yet: all of context _batch_cid.
        self._batch: list[bytes] = []
        self._batch_cid = -1
        self._batch_bytes = 0  # their bytes, with the per-item overhead
        self._batch_limit = min(_BATCH_BYTES, max_frame - _BATCH_OVERHEAD)
        self._flush_lock = trio.Lock()
        self._writer_attached = False
        self._writer_wakeup = trio.lowlevel.ParkingLot()
        self._writer_parked = False
        self._room = trio.lowlevel.ParkingLot()  # senders waiting below HIGH_WATER
        self._sent_since_yield = 0
        self._last_send = 0.0

    # -- sending -------------------------------------------------------------------------------

    def encode(self, message: Any) -> bytes:
        """Frame ``message``; ``TypeError``/``ValueError`` (nothing sent) if it cannot be."""
        try:
            payload = self.codec.dumps(message)
        except Exception as exc:
            raise TypeError(
                f"cannot send this value over a {self.codec.name} channel: {exc}. "
                f"Send {self.codec.accepts}"
            ) from exc
        if len(payload) > self.max_frame:
            raise ValueError(
                f"message of {len(payload)} bytes exceeds the {self.max_frame}-byte frame limit; "
                "send it in pieces (a stream, one chunk per item)"
            )
        return _HEADER.pack(len(payload)) + payload

    async def send(self, message: Any) -> None:
        await self.send_frame(self.encode(message))

    async def send_frame(self, frame: bytes) -> None:
        """Send one whole frame; it is on the wire (or in the kernel) when this returns, as far
        as the socket takes it -- the writer task does the rest."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.write_now(frame):
            return
        await self._wait_for_room()
        self._seal()  # items sent before this frame leave before it
        self._outbox += frame
        if self._writer_attached:
            if not self._write_available():
                self._wake_writer()
        else:
            await self._flush()

    def write_now(self, frame: bytes) -> bool:
        """Send ``frame`` without waiting if nothing is queued and the writer task runs: the
        socket takes what it can, and the rest is queued whole, ahead of anything sent later.
        False, and nothing done, otherwise (then ``await send_frame(frame)``).

        The usual case for calls and answers, and no copy into the outbox.  Not a checkpoint:
        for a sender that needs none (an actor's dispatcher answering inline).
        """
        if self._outbox or self._batch or self._closed or not self._writer_attached:
            return False
        try:
            sent = self._sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._close_socket()
            raise ChannelClosed(f"peer went away: {exc}") from exc
        if sent < len(frame):
            self._outbox += memoryview(frame)[sent:]
            self._wake_writer()
        return True

    async def send_item(self, cid: int, payload: bytes) -> None:
        """Send one stream item of context ``cid``, already encoded with ``codec.dumps``.

        A lone item is written at once, like any frame.  An item that follows another within
        ``BURST_WINDOW`` -- a producer in a loop -- is queued, and the queued run of one
        context's items goes out as one frame when this thread's trio loop next runs the
        writer.  So only the tail of a burst waits, and only until the sender's next
        checkpoint, which a sender that never blocks still reaches every ``_YIELD_EVERY``
        items.
        """
        size = len(payload) + _ITEM_OVERHEAD
        if size > self.max_frame - _BATCH_OVERHEAD:
            raise ValueError(
                f"stream item of {len(payload)} bytes exceeds the {self.max_frame}-byte frame limit; "
                "send it in smaller pieces"
            )
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed or len(self._outbox) - self._out_pos + self._batch_bytes >= HIGH_WATER:
            await self._wait_for_room()
        now = time.perf_counter()
        in_burst = now - self._last_send < BURST_WINDOW
        self._last_send = now
        if self._batch_cid != cid or self._batch_bytes + size > self._batch_limit:
            self._seal()  # a batch holds one context's items and always fits in a frame
            self._batch_cid = cid
        self._batch.append(payload)
        self._batch_bytes += size
        if not self._writer_attached:
            await self._flush()
            return
        if len(self._batch) >= _BATCH_ITEMS or self._batch_bytes >= self._batch_limit:
            self._seal()
        if not in_burst and self._write_available():
            return
        self._wake_writer()
        self._sent_since_yield += 1
        if self._sent_since_yield >= _YIELD_EVERY:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def _wait_for_room(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._unsent >= HIGH_WATER and self._writer_attached and not self._closed:
            await self._room.park()  # cancellable, and nothing of ours is queued yet
        if self._closed:
            raise ChannelClosed("channel is closed")

    def _wake_writer(self) -> None:
        if self._writer_parked:
            self._writer_parked = False  # one wakeup is enough until it parks again
            self._writer_wakeup.unpark()

    def _seal(self) -> None:
        """Frame the queued items (a list of bytes always encodes) and queue the frame."""
        if self._batch:
            payload = self.codec.dumps((STREAM, self._batch_cid, self._batch))
            self._outbox += _HEADER.pack(len(payload))
            self._outbox += payload
            self._batch = []
            self._batch_bytes = 0

    def decode_items(self, payloads: Any) -> list[Any]:
        """The values of a ``stream`` frame's payloads; :class:`ProtocolError` if one is bad."""
        loads = self.codec.loads
        try:
            return [loads(payload) for payload in payloads]
        except Exception as exc:
            self._close_socket()
            raise ProtocolError(
                f"undecodable {self.codec.name} stream item from peer: {exc}"
            ) from exc

    def send_nowait(self, frame: bytes) -> bool:
        """Queue a frame from synchronous code (a logging handler) without ever waiting.

        False, and nothing queued, if the channel is closed or its queue is at the high-water
        mark: the caller decides what dropping means.
        """
        if self._closed or self._unsent >= HIGH_WATER:
            return False
        self._seal()
        self._outbox += frame
        try:
            if self._write_available():
                return True
        except ChannelClosed:
            return False
        self._wake_writer()
        return True

    async def run_writer(self) -> None:
        """The writer task: flush whatever is queued, until the channel closes.

        Cancelling it is safe: the unsent tail stays queued and later sends flush inline.
        """
        if self._writer_attached:
            raise RuntimeError("this channel already has a writer task")
        self._writer_attached = True
        try:
            while not self._closed:
                if self._unsent:
                    await self._flush()
                else:
                    self._writer_parked = True
                    try:
                        await self._writer_wakeup.park()
                    finally:
                        self._writer_parked = False
        except ChannelClosed:
            pass  # the reader sees the same end and reports it
        finally:
            self._writer_attached = False
            self._room.unpark_all()  # their sends now flush inline
            # A frame queued just before we were cancelled must not wait for the next send:
            # write what the socket takes right now, without waiting.
            if not self._closed:
                try:
                    self._write_available()
                except ChannelClosed:
                    pass

    async def flush(self) -> None:
        """Wait until everything queued has been written (or the channel broke)."""
        if self._unsent:
            await self._flush()

    @property
    def _unsent(self) -> int:
        return len(self._outbox) - self._out_pos + self._batch_bytes

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._sent_since_yield = 0
            while not self._write_available():
                await self._wait(trio.lowlevel.wait_writable)

    def _write_available(self) -> bool:
        """Write as much of the queue as the socket takes without blocking; True if all."""
        self._seal()
        while self._unsent:
            if self._closed:
                raise ChannelClosed("channel is closed")
            try:
                with memoryview(self._outbox) as whole, whole[self._out_pos :] as tail:
                    sent = self._sock.send(tail)
            except BlockingIOError:
                return False
            except OSError as exc:
                self._close_socket()
                raise ChannelClosed(f"peer went away: {exc}") from exc
            self._out_pos += sent
            if self._out_pos == len(self._outbox):
                self._outbox.clear()
                self._out_pos = 0
            elif self._out_pos >= _COMPACT_AT:
                del self._outbox[: self._out_pos]
                self._out_pos = 0
            self._room.unpark_all()
        return True

    # -- receiving -----------------------------------------------------------------------------

    async def receive(self) -> Any:
        """The next message; :class:`ChannelClosed` at end of stream."""
        if not self._decoded:
            self._decoded.extend(await self.receive_many())
            self._drained = False  # receive_many must hand these out first
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        return self._decoded.popleft()

    async def receive_many(self) -> list[Any]:
        """Every message that has fully arrived, at least one (waits for one if need be).

        Decoding them all in one go saves a coroutine round per message on a busy stream.
        """
        if not self._drained:
            # Messages may be here already: handed out by receive() and not taken yet, or
            # in the socket (the last read filled its buffer), or a bad header to report.
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._decoded:
                ready = list(self._decoded)
                self._decoded.clear()
                return ready
            messages = self.read_ready()
            if messages:
                # Still let others run once per read, or a peer that floods us would starve
                # every other task of this thread.
                await trio.lowlevel.checkpoint()
                return messages
        while True:
            # The last read emptied the socket: wait first (reading now would only raise
            # BlockingIOError).  The wait is this call's checkpoint.
            if self._closed:
                raise ChannelClosed("channel is closed")
            try:
                await trio.lowlevel.wait_readable(self._sock)
            except trio.ClosedResourceError as exc:
                raise ChannelClosed("channel is closed") from exc
            messages = self.read_ready()
            if messages:
                return messages

    async def wait_readable(self) -> None:
        """Until :meth:`read_ready` has something to read (a checkpoint either way).

        Split from the read so that a reader can check, between the wake-up and the read,
        that the socket is still its to read (the parent's link hands reading to a caller).
        """
        if self._closed:
            raise ChannelClosed("channel is closed")
        if self._bad_header:
            await trio.lowlevel.checkpoint()
            return
        try:
            await trio.lowlevel.wait_readable(self._sock)
        except trio.ClosedResourceError as exc:
            raise ChannelClosed("channel is closed") from exc

    def read_ready(self) -> list[Any]:
        """Read once what the socket has, without waiting; every message now whole ([] if
        none yet).  :class:`ChannelClosed` at end of stream, :class:`ProtocolError` (and the
        channel closed) for a frame over the limit or one that does not decode.

        Sets ``_drained`` when the socket is empty and nothing whole is buffered: the next
        receive waits before it reads.
        """
        if self._closed:
            raise ChannelClosed("channel is closed")
        if self._inbox:
            return self._read_more()
        # Nothing pending (the usual case: a call, an answer): read, and if that is exactly
        # one frame, decode it in place.
        try:
            chunk = self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            self._drained = True
            return []
        except OSError as exc:
            raise ChannelClosed(f"peer went away: {exc}") from exc
        size = len(chunk)
        self._drained = size < _READ_SIZE  # a short read emptied the socket
        if size > _HEADER.size:
            (length,) = _unpack_header(chunk)
            if length == size - _HEADER.size and length <= self.max_frame:
                try:
                    return [self._loads(memoryview(chunk)[_HEADER.size :])]
                except Exception as exc:
                    raise self._undecodable(exc) from exc
        elif not size:
            raise ChannelClosed("peer closed the channel")
        self._inbox += chunk
        return self._decode_inbox()

    def _read_more(self) -> list[Any]:
        """read_ready with bytes pending: a partial frame, or a bad header to report."""
        inbox, pos = self._inbox, self._in_pos
        if not self._bad_header:  # (a bad header is reported before reading on)
            if pos and (pos >= _COMPACT_AT or pos * 2 >= len(inbox)):
                del inbox[:pos]
                self._in_pos = pos = 0
            want = _READ_SIZE
            if len(inbox) - pos >= _HEADER.size:  # a big frame comes in as few reads as it can
                (length,) = _HEADER.unpack_from(inbox, pos)
                want = max(want, _HEADER.size + length - (len(inbox) - pos))
            try:
                chunk = self._sock.recv(want)
            except BlockingIOError:
                self._drained = True
                return []  # and nothing whole is buffered: every whole frame was decoded
            except OSError as exc:
                raise ChannelClosed(f"peer went away: {exc}") from exc
            if not chunk:
                raise ChannelClosed("peer closed the channel")
            self._drained = len(chunk) < want
            inbox += chunk
        return self._decode_inbox()

    def _decode_inbox(self) -> list[Any]:
        """Decode every whole frame buffered; leave a partial one."""
        messages: list[Any] = []
        inbox, pos, end = self._inbox, self._in_pos, len(self._inbox)
        loads, unpack_from, header, limit = (
            self._loads,
            _HEADER.unpack_from,
            _HEADER.size,
            self.max_frame,
        )
        with memoryview(inbox) as view:
            while end - pos >= header:
                (length,) = unpack_from(inbox, pos)
                if length > limit:
                    if messages:
                        # Deliver what came before the bad frame; the next read reports it.
                        self._bad_header = True
                        self._drained = False
                        break
                    self._close_socket()
                    raise ProtocolError(f"peer announced a {length}-byte frame (limit {limit})")
                start = pos + header
                if end - start < length:
                    break
                try:
                    messages.append(loads(view[start : start + length]))
                except Exception as exc:
                    raise self._undecodable(exc) from exc
                pos = start + length
        if pos == end:
            inbox.clear()
            pos = 0
        self._in_pos = pos
        return messages

    def _undecodable(self, exc: Exception) -> ProtocolError:
        self._close_socket()  # the next frame boundary cannot be found again
        return ProtocolError(f"undecodable {self.codec.name} frame from peer: {exc}")

    async def _wait(self, waiter: Any) -> None:
        try:
            await waiter(self._sock)
        except trio.ClosedResourceError as exc:
            raise ChannelClosed("channel is closed") from exc

    # -- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close now; queued bytes are dropped (call :meth:`flush` first to keep them)."""
        self._close_socket()
        await trio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """Synchronous close for ``finally`` paths that must not checkpoint."""
        self._close_socket()

    def _close_socket(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            trio.lowlevel.notify_closing(self._sock)  # wakes our waiting reader and writer
        except RuntimeError:
            pass  # not inside a trio run (a finalizer): nobody can be waiting
        self._sock.close()
        self._batch = []
        self._batch_bytes = 0
        self._writer_wakeup.unpark_all()
        self._room.unpark_all()


def channel_from_fd(
    fd: int, codec: Codec, *, dup: bool, max_frame: int = DEFAULT_MAX_FRAME
) -> Channel:
    """A channel on a connected AF_UNIX stream socket given by fd.

    ``dup=True`` works on a duplicate, leaving ``fd`` to its owner: a subinterpreter shares the
    process's fd table with its parent, and each side must close exactly its own descriptor.
    """
    if dup:
        sock = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    return Channel(sock, codec, max_frame=max_frame)
