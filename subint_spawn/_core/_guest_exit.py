"""What runs in an interpreter once its guest function is over, however it ended.

A leaf module: the guest runs the hooks (:mod:`._guest`), and the modules that register them
(the driver's orphan reaper, the process guards' environment cleanup) import only this.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["at_guest_exit", "run_guest_exit_hooks"]

#: Run, in order, once the guest's function is over and its watchdog is gone.
_EXIT_HOOKS: list[Callable[[], object]] = []


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
