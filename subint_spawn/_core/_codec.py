"""How messages become bytes, chosen per channel.

* ``pickle`` -- only for in-process channels (a socket pair between two interpreters of this
  process, which no other process can reach).  It carries any picklable value and lets remote
  exceptions be rebuilt.  Isolated interpreters need it: msgspec 0.22 refuses to load there.
* ``msgpack`` (msgspec) -- for channels to other processes: never unpickle bytes another
  process wrote.  Carries msgpack data: None, bool, int, float, str, bytes, list, dict (tuples
  arrive as lists).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, Protocol

__all__ = ["Codec", "CodecName", "get_codec"]

CodecName = Literal["pickle", "msgpack"]


class Codec(Protocol):
    name: CodecName
    #: What to tell a user whose value could not be encoded.
    accepts: str

    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes | bytearray | memoryview], Any]


class PickleCodec:
    name: CodecName = "pickle"
    accepts = "picklable values"

    def __init__(self) -> None:
        # The C functions themselves, not methods around them: a stream encodes and decodes
        # once per item, and a Python frame there is a measurable share of the item's cost.
        # Even a partial's keyword argument is (~100 of 260 ns for a small int), so the plain
        # function wherever its default protocol is already the highest (3.14 and later).
        self.dumps: Callable[[Any], bytes]
        if pickle.DEFAULT_PROTOCOL == pickle.HIGHEST_PROTOCOL:
            self.dumps = pickle.dumps
        else:
            self.dumps = partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)
        self.loads = pickle.loads


class MsgpackCodec:
    name: CodecName = "msgpack"
    accepts = "msgpack data (None, bool, int, float, str, bytes, list, dict)"

    def __init__(self) -> None:
        import msgspec

        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        self.dumps = self._encoder.encode
        self.loads = self._decoder.decode


def get_codec(name: CodecName) -> Codec:
    if name == "pickle":
        return PickleCodec()
    if name == "msgpack":
        return MsgpackCodec()
    raise ValueError(f"unknown codec {name!r}")
