"""A plain guest function that starts trio itself, marked for the driver's cooperative cancel.

Apart from samples.py, which the warm-pool test probes for the modules an actor loads: this
one imports the public driver module.
"""

from __future__ import annotations

import trio

from subint_spawn.driver import runs_trio

from .samples import sleep_forever


@runs_trio
def sync_entry_running_trio(ready_fd: int) -> str:
    """As tractor's child entry point does: a plain function whose body is ``trio.run``."""
    trio.run(sleep_forever, ready_fd)
    return "trio.run returned"
