"""The memory probe, run in a fresh process of its own: ``python -m subint_spawn._cli._bench
memory BACKEND CONFIG N`` prints MB of RSS per idle actor."""

from __future__ import annotations

import sys

import trio

from ._samples import memory_here

if len(sys.argv) == 5 and sys.argv[1] == "memory":
    _, _, _backend, _config, _count = sys.argv
    print(trio.run(memory_here, _backend, _config, int(_count)))
else:
    sys.exit("usage: python -m subint_spawn._cli._bench memory BACKEND CONFIG N")
