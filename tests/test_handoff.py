"""A dedicated thread's end is awaited with a signal its ``on_done`` sets; inside a guest being
killed, an injected exception can cut that callback off.  The next KILL's wake-up repairs it
(ai/kill-lands-once.md)."""

from __future__ import annotations

import threading

import trio
import trio.testing

from subint_spawn._core._guest_hooks import run_kill_wake_hooks
from subint_spawn._core._handoff import DedicatedThread


async def test_a_lost_signal_is_set_by_the_next_kill_wake_up() -> None:
    signal = trio.Event()
    release = threading.Event()
    # on_done does nothing: the signal a killed loop never delivered.
    thread = DedicatedThread(
        release.wait, name="lost-signal", on_done=lambda: None, orphaned=lambda: None
    )
    with trio.fail_after(10):
        thread.start()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(thread.wait_done, signal)
            run_kill_wake_hooks()  # still running: nothing to repair yet
            await trio.testing.wait_all_tasks_blocked()
            assert not signal.is_set()
            release.set()
            await trio.to_thread.run_sync(thread.join, None)
            assert thread.finished and not signal.is_set()  # the signal was lost
            run_kill_wake_hooks()  # what each KILL's wake-up of the guest's loop runs
        assert signal.is_set()
