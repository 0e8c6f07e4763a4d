"""A message channel over one connected socket: length-prefixed frames, one codec.

Frame = 4-byte big-endian length + that many bytes of codec output.  Errors are split by whose
fault they are:

* a value the codec cannot encode is the *sender's* mistake: ``TypeError`` in the sender,
  nothing written, the channel stays usable;
* a payload over ``max_frame`` likewise (``ValueError``), before anything is written;
* a frame that announces more than ``max_frame`` or does not decode is the *peer's* fault or
  corruption: :class:`ProtocolError`, and the channel is closed -- there is no way to find the
  next frame boundary again;
* end of stream: :class:`ChannelClosed`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import trio

from .._exceptions import ChannelClosed, ProtocolError
from ._codec import Codec

__all__ = ["DEFAULT_MAX_FRAME", "Channel", "channel_from_fd"]

DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_READ_SIZE = 16 * 1024


class Channel:
    def __init__(self, stream: trio.SocketStream, codec: Codec, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._stream = stream
        self.codec = codec
        self.max_frame = max_frame
        self._send_lock = trio.Lock()
        self._buffer = bytearray()
        self._closed = False

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
                "send it in pieces (a stream) or raise max_frame"
            )
        return _HEADER.pack(len(payload)) + payload

    async def send(self, message: Any) -> None:
        await self.send_frame(self.encode(message))

    async def send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise ChannelClosed("channel is closed")
        async with self._send_lock:
            try:
                await self._stream.send_all(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ChannelClosed(f"peer went away: {exc}") from exc

    async def receive(self) -> Any:
        """The next message; :class:`ChannelClosed` at end of stream."""
        header = await self._read_exactly(_HEADER.size)
        (length,) = _HEADER.unpack(header)
        if length > self.max_frame:
            await self.aclose()
            raise ProtocolError(f"peer announced a {length}-byte frame (limit {self.max_frame})")
        payload = await self._read_exactly(length)
        try:
            return self.codec.loads(payload)
        except Exception as exc:
            await self.aclose()
            raise ProtocolError(f"undecodable {self.codec.name} frame from peer: {exc}") from exc

    async def _read_exactly(self, count: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < count:
            if self._closed:
                raise ChannelClosed("channel is closed")
            try:
                chunk = await self._stream.receive_some(max(_READ_SIZE, count - len(buffer)))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ChannelClosed(f"peer went away: {exc}") from exc
            if not chunk:
                raise ChannelClosed("peer closed the channel")
            buffer += chunk
        data = bytes(buffer[:count])
        del buffer[:count]
        return data

    async def aclose(self) -> None:
        self._closed = True
        await self._stream.aclose()

    def close_now(self) -> None:
        """Synchronous close for ``finally`` paths that must not checkpoint."""
        self._closed = True
        self._stream.socket.close()


def channel_from_fd(fd: int, codec: Codec, *, dup: bool, max_frame: int = DEFAULT_MAX_FRAME) -> Channel:
    """A channel on a connected AF_UNIX stream socket given by fd.

    ``dup=True`` works on a duplicate, leaving ``fd`` to its owner: a subinterpreter shares the
    process's fd table with its parent, and each side must close exactly its own descriptor.
    """
    if dup:
        sock = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    return Channel(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), codec, max_frame=max_frame)
