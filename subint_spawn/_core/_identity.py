"""Who is this actor: :func:`current_actor`, and the identity an actor reports to its parent.

Every actor makes up its own identity when it starts (:func:`become`) and sends it with
``ready``, so its parent's portal knows whom it talks to (``portal.channel.peer``).  The id is
random, not a counter, because actors of one tree start in different interpreters and
processes that share no counter.  The code that was not started as an actor -- the program's
own main interpreter -- is the *root*.

A leaf module (no imports from the runtime): every actor imports it, and so can anything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["ActorInfo", "become", "current_actor"]

#: The root's name, as tractor names it.
ROOT_NAME = "root"


@dataclass(frozen=True)
class ActorInfo:
    """An actor's identity.

    ``uid`` is unique among all actors of every tree (128 random bits, as hex); ``is_root`` is
    true for the program that was not started as an actor.  ``pid`` and ``interpreter_id``
    say where it runs: the process, and the subinterpreter in it (``0`` for a process's main
    interpreter, as on the ``trio`` backend and in the root).
    """

    name: str
    uid: str
    is_root: bool
    pid: int
    interpreter_id: int


_current: ActorInfo | None = None


def become(name: str) -> ActorInfo:
    """Make this interpreter the actor ``name`` (called once, by the actor runtime)."""
    global _current
    _current = ActorInfo(name, os.urandom(16).hex(), False, os.getpid(), _interpreter_id())
    return _current


def current_actor() -> ActorInfo:
    """The actor this code runs in: its name, unique id, and whether it is the root.

    In the program's main interpreter (code not started as an actor) this is the root, named
    ``"root"``.  In a subinterpreter that was not started as an actor -- a bare
    ``subint_spawn.driver`` interpreter -- there is no actor: ``RuntimeError``.
    """
    global _current
    if _current is None:
        interpreter_id = _interpreter_id()
        if interpreter_id != 0:
            raise RuntimeError(
                f"current_actor(): subinterpreter {interpreter_id} runs no actor (it was "
                "started by subint_spawn.driver, not by an actor nursery)"
            )
        _current = ActorInfo(ROOT_NAME, os.urandom(16).hex(), True, os.getpid(), 0)
    return _current


def _interpreter_id() -> int:
    import _interpreters

    return int(_interpreters.get_current()[0])
