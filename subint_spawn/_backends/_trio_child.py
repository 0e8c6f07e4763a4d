"""``python -m subint_spawn._backends._trio_child FD NAME MODULES_JSON``: a process actor."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    fd, name, modules = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    path = os.environ.pop("SUBINT_SPAWN_SYS_PATH", None)
    if path:
        sys.path[:] = json.loads(path)
    import trio

    from .._core._actor import actor_main

    trio.run(actor_main, fd, name, modules, "msgpack", False)


if __name__ == "__main__":
    main()
