"""What other modules ask the guest to run: at its exit, and in its trio loop on each kill.

A leaf module: the guest runs the hooks (:mod:`._guest`), and the modules that register them
(the driver's orphan reaper, the process guards' environment cleanup, the thread hand-off's
signal repair) import only this.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["at_guest_exit", "on_kill_wake", "run_guest_exit_hooks", "run_kill_wake_hooks"]

#: Run, in order, once the guest's function is over and its watchdog is gone.
_EXIT_HOOKS: list[Callable[[], object]] = []
#: Run in the guest's trio loop each time a KILL wakes it.
_KILL_WAKE_HOOKS: list[Callable[[], object]] = []


def at_guest_exit(hook: Callable[[], object]) -> None:
    """Run ``hook()`` in this interpreter after its guest function ends, however it ends.

    The driver registers its orphan reaper here when it is imported in an interpreter: an
    actor's children must not outlive it, even when its own trio loop was torn down by a kill.
    """
    if hook not in _EXIT_HOOKS:
        _EXIT_HOOKS.append(hook)


def run_guest_exit_hooks() -> None:
    for hook in _EXIT_HOOKS:
        hook()


def on_kill_wake(hook: Callable[[], object]) -> None:
    """Run ``hook()`` in this interpreter's trio loop whenever a KILL wakes it (the guest
    wakes an announced loop on every KILL, so that the injected exception lands).

    For repairs only: an injected exception can cut off whatever the loop was running, and
    the next wake-up is the moment to put right what that left undone.
    """
    if hook not in _KILL_WAKE_HOOKS:
        _KILL_WAKE_HOOKS.append(hook)


def run_kill_wake_hooks() -> None:
    for hook in _KILL_WAKE_HOOKS:
        hook()
