"""A value or an error, set once, awaited by any number of tasks.

The actor's ``ready`` (who it is, or why it could not start) and a ``run_in_actor`` function's
outcome are both this: the first ``set`` wins, later ones are ignored (an actor that ends after
it failed to start must not overwrite the reason).
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["Once"]


class Once:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.value, self.error = value, error
            self.done.set()

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value
