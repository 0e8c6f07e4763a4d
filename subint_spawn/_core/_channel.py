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

**Writes are coalesced.**  ``send`` appends the whole frame to an outgoing buffer and returns
without a syscall; a writer task (:meth:`Channel.run_writer`) flushes everything queued in
one ``send()``.  A producer that sends many small messages between two scheduler passes so
costs one syscall for all of them, not one each -- this is what makes streams fast.  The
bytes leave in order, and since only whole frames are ever queued and the unsent tail stays
in the channel when a flush is cancelled, cancellation can delay bytes but never tear a
frame.  Without a writer task (before it starts, after it was cancelled) ``send`` flushes
inline, so the channel works either way.

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

__all__ = ["DEFAULT_MAX_FRAME", "Channel", "channel_from_fd"]

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_READ_SIZE = 256 * 1024
#: Senders wait (cancellably, nothing queued) while this much is waiting to be written.
HIGH_WATER = 1024 * 1024
#: Sends closer together than this (seconds) are a burst, and ``batch`` frames in it queue.
BURST_WINDOW = 100e-6
#: A sender that never waits still lets other tasks run this often.
_YIELD_EVERY = 64
# Compact a buffer when this many consumed bytes sit at its head.
_COMPACT_AT = 1024 * 1024


class Channel:
    def __init__(self, sock: socket.socket, codec: Codec, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        sock.setblocking(False)
        self._sock = sock
        self.codec = codec
        self.max_frame = max_frame
        self._closed = False
        self._inbox = bytearray()
        self._in_pos = 0
        self._decoded: deque[Any] = deque()  # decoded by receive_many, not yet received
        self._outbox = bytearray()
        self._out_pos = 0
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

    async def send_frame(self, frame: bytes, *, batch: bool = False) -> None:
        """Send one whole frame: written right away, or queued when ``batch`` allows it.

        A frame is written through at once (as much as the socket takes, the writer does the
        rest) unless the caller marks it ``batch`` *and* it follows another send within
        ``BURST_WINDOW`` -- a burst, such as a stream producer in a loop.  Then it is queued
        and leaves with the rest of the burst in one syscall when this thread's trio loop next
        runs the writer.  So a lone message, and every control message, is on the wire when
        ``send`` returns, as if unbuffered; only the tail of a burst can wait for the sender's
        next checkpoint.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while self._unsent >= HIGH_WATER and self._writer_attached and not self._closed:
            await self._room.park()  # cancellable, and nothing of ours is queued yet
        if self._closed:
            raise ChannelClosed("channel is closed")
        self._outbox += frame
        if not self._writer_attached:
            await self._flush()
            return
        if batch:
            now = time.perf_counter()
            in_burst = now - self._last_send < BURST_WINDOW
            self._last_send = now
        else:
            in_burst = False
        if not in_burst and self._write_available():
            return
        if self._writer_parked:
            self._writer_wakeup.unpark()
        self._sent_since_yield += 1
        if self._sent_since_yield >= _YIELD_EVERY:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, frame: bytes) -> bool:
        """Queue a frame from synchronous code (a logging handler) without ever waiting.

        False, and nothing queued, if the channel is closed or its queue is at the high-water
        mark: the caller decides what dropping means.
        """
        if self._closed or self._unsent >= HIGH_WATER:
            return False
        self._outbox += frame
        try:
            if self._write_available():
                return True
        except ChannelClosed:
            return False
        if self._writer_parked:
            self._writer_wakeup.unpark()
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
        return len(self._outbox) - self._out_pos

    async def _flush(self) -> None:
        async with self._flush_lock:
            self._sent_since_yield = 0
            while not self._write_available():
                await self._wait(trio.lowlevel.wait_writable)

    def _write_available(self) -> bool:
        """Write as much of the queue as the socket takes without blocking; True if all."""
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
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        return self._decoded.popleft()

    async def receive_many(self) -> list[Any]:
        """Every message that has fully arrived, at least one (waits for one if need be).

        Decoding them all in one go saves a coroutine round per message on a busy stream.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._decoded:
            ready = list(self._decoded)
            self._decoded.clear()
            return ready
        if self._closed:
            raise ChannelClosed("channel is closed")
        await self._buffer_at_least(_HEADER.size)
        (length,) = _HEADER.unpack_from(self._inbox, self._in_pos)
        await self._check_length(length)
        await self._buffer_at_least(_HEADER.size + length)
        messages = []
        inbox, pos, end, loads = self._inbox, self._in_pos, len(self._inbox), self.codec.loads
        while end - pos >= _HEADER.size:
            (length,) = _HEADER.unpack_from(inbox, pos)
            if length > self.max_frame and messages:
                break  # deliver what came before the bad frame; the next call reports it
            await self._check_length(length)
            start = pos + _HEADER.size
            if end - start < length:
                break
            try:
                messages.append(loads(bytes(inbox[start : start + length])))
            except Exception as exc:
                await self.aclose()
                raise ProtocolError(f"undecodable {self.codec.name} frame from peer: {exc}") from exc
            pos = start + length
        if pos == end:
            inbox.clear()
            pos = 0
        self._in_pos = pos
        return messages

    async def _check_length(self, length: int) -> None:
        if length > self.max_frame:
            await self.aclose()
            raise ProtocolError(f"peer announced a {length}-byte frame (limit {self.max_frame})")

    async def _buffer_at_least(self, count: int) -> None:
        waited = False
        while len(self._inbox) - self._in_pos < count:
            if self._closed:
                raise ChannelClosed("channel is closed")
            if self._in_pos >= _COMPACT_AT or (self._in_pos and self._in_pos * 2 >= len(self._inbox)):
                del self._inbox[: self._in_pos]
                self._in_pos = 0
            try:
                chunk = self._sock.recv(max(_READ_SIZE, count - len(self._inbox)))
            except BlockingIOError:
                await self._wait(trio.lowlevel.wait_readable)
                waited = True
                continue
            except OSError as exc:
                raise ChannelClosed(f"peer went away: {exc}") from exc
            if not chunk:
                raise ChannelClosed("peer closed the channel")
            self._inbox += chunk
            if not waited:
                # Data was there without waiting: still let others run once per chunk, or a
                # peer that floods us would starve every other task of this thread.  (After
                # a wait we just came back from the scheduler: a second pass would only add
                # latency to every round trip.)
                await trio.lowlevel.checkpoint()
            waited = False

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
        self._writer_wakeup.unpark_all()
        self._room.unpark_all()


def channel_from_fd(fd: int, codec: Codec, *, dup: bool, max_frame: int = DEFAULT_MAX_FRAME) -> Channel:
    """A channel on a connected AF_UNIX stream socket given by fd.

    ``dup=True`` works on a duplicate, leaving ``fd`` to its owner: a subinterpreter shares the
    process's fd table with its parent, and each side must close exactly its own descriptor.
    """
    if dup:
        sock = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    return Channel(sock, codec, max_frame=max_frame)
