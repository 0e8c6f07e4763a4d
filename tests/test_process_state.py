"""Process-global state is sacred: an actor cannot change the parent's cwd, environment, signal
handling, stdio or process title, and every refusal says why (``_core/_guards.py``).

Backend notes: on ``subint`` every actor shares this process, so the guards are what protects
the parent.  On ``trio`` an actor is a child process and could not hurt the parent anyway; the
same guards are installed there too, so code behaves the same on both backends -- except the
environment guard: a process actor's environment is its own (see ai/process-guards.md).
Tests named ``..._subint_only`` are about hazards that exist only inside a shared process.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio

import subint_spawn
from subint_spawn import RemoteActorError

from . import state_samples as s
from .helpers import BOUND, open_test_nursery

PARENT_VAR = "SUBINT_SPAWN_TEST_PARENT_VAR"


@dataclass(frozen=True)
class ProcessState:
    cwd: str
    environ: tuple[tuple[str, str], ...]
    c_getenv: bytes | None
    handlers: tuple[tuple[int, object], ...]
    stdio: tuple[tuple[int, int, int, bool] | None, ...]
    comm: str
    cmdline: bytes


def _c_getenv(name: str) -> bytes | None:
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    value: bytes | None = libc.getenv(name.encode())
    return value


def _stdio(fd: int) -> tuple[int, int, int, bool] | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return (fd, info.st_dev, info.st_ino, os.get_blocking(fd))


def process_state() -> ProcessState:
    """What an actor must never change, read in the parent (the C environment included: the
    parent's ``os.environ`` dict would not notice an actor's ``putenv``)."""
    handlers = []
    for sig in sorted(signal.valid_signals()):
        try:
            handlers.append((int(sig), signal.getsignal(sig)))
        except OSError, ValueError:
            continue
    return ProcessState(
        cwd=os.getcwd(),
        environ=tuple(sorted((k, v) for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST")),
        c_getenv=_c_getenv(s.ENV_NAME),
        handlers=tuple(handlers),
        stdio=tuple(_stdio(fd) for fd in (0, 1, 2)),
        comm=Path("/proc/self/comm").read_text(),
        cmdline=Path("/proc/self/cmdline").read_bytes(),
    )


def without_sigint(state: ProcessState) -> ProcessState:
    """While an actor nursery is open in the main thread it handles Ctrl-C itself."""
    return replace(state, handlers=tuple(h for h in state.handlers if h[0] != signal.SIGINT))


@pytest.fixture
def restore_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undoes what a broken guard let through, so one failure does not poison the tests after
    it.  (The state is read inside each test: trio's own SIGINT handler is in place there.)"""
    monkeypatch.setenv(PARENT_VAR, "from-the-parent")
    monkeypatch.chdir(os.getcwd())
    yield
    os.unsetenv(s.ENV_NAME)
    if os.environ.get(PARENT_VAR) is None:
        os.environ[PARENT_VAR] = "from-the-parent"  # monkeypatch then restores the original


#: Writes to a variable the parent set: refused in a subinterpreter (they would change what the
#: parent already sees), the actor's own business in a process actor.
CHANGES_TO_THE_PARENTS_VARIABLE = (
    s.try_environ_change,
    s.try_putenv_change,
    s.try_environ_delete,
    s.try_unsetenv,
)


def refused_calls(tmp_path: Path, spawn_backend: str) -> list[tuple[Any, dict[str, Any], str, str]]:
    """(function, kwargs, error class, what the message must mention)."""
    where = str(tmp_path)
    env: list[tuple[Any, dict[str, Any], str, str]] = []
    if spawn_backend == "subint":
        env = [
            (fn, {"name": PARENT_VAR}, "ProcessStateError", "env=")
            for fn in CHANGES_TO_THE_PARENTS_VARIABLE
        ]
    return env + [
        (s.try_chdir, {"path": where}, "ProcessStateError", "absolute paths"),
        (s.try_fchdir, {"path": where}, "ProcessStateError", "absolute paths"),
        (s.try_posix_chdir, {"path": where}, "ProcessStateError", "absolute paths"),
        (s.try_fork, {}, "ProcessStateError", "subprocess"),
        (s.try_posix_fork, {}, "ProcessStateError", "subprocess"),
        (s.try_forkpty, {}, "ProcessStateError", "subprocess"),
        (s.try_signal_handler, {}, "SignalStateError", "cancellation"),
        (s.try_set_wakeup_fd, {}, "SignalStateError", "cancellation"),
        (s.try_alarm, {}, "SignalStateError", "trio.sleep"),
        (s.try_close_stdout, {}, "ProcessStateError", "sys.stdout"),
        (s.try_closerange_stdio, {}, "ProcessStateError", "sys.stdout"),
        (s.try_dup2_onto_stderr, {}, "ProcessStateError", "sys.stdout"),
        (s.try_set_stdout_nonblocking, {}, "ProcessStateError", "sys.stdout"),
    ]


async def require_guards(portal: subint_spawn.Portal, spawn_backend: str) -> None:
    del spawn_backend  # both backends install them
    installed = await portal.run(s.guards_installed)
    assert installed == portal.actor_name


async def test_guarded_operations_raise_a_clear_error(
    spawn_backend: str, subint_config: str, restore_state: None, tmp_path: Path
) -> None:
    problems: list[str] = []
    before = process_state()
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("meddler", enable_modules=["tests.state_samples"])
            await require_guards(portal, spawn_backend)
            for fn, kwargs, error, hint in refused_calls(tmp_path, spawn_backend):
                try:
                    result = await portal.run(fn, **kwargs)
                except RemoteActorError as exc:
                    if exc.remote_type != f"subint_spawn.{error}":
                        problems.append(
                            f"{fn.__name__}: raised {exc.remote_type}: {exc.remote_message}"
                        )
                    elif "'meddler'" not in exc.remote_message or hint not in exc.remote_message:
                        problems.append(f"{fn.__name__}: unclear message: {exc.remote_message}")
                else:
                    problems.append(f"{fn.__name__}: went through ({result!r})")
            # A refused write leaves the actor's os.environ as it was, agreeing with C.
            assert await portal.run(s.both_views, name=PARENT_VAR) == ["from-the-parent"] * 2
    assert problems == []
    assert process_state() == before


async def test_the_parent_process_state_is_unchanged(
    spawn_backend: str, subint_config: str, restore_state: None, tmp_path: Path
) -> None:
    # Whatever each attempt does (refused, or kept inside a child process), the parent sees
    # nothing of it; renaming the actor's own thread included.
    before = process_state()
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("meddler", enable_modules=["tests.state_samples"])
            for fn, kwargs, _, _ in refused_calls(tmp_path, "subint"):
                try:
                    await portal.run(fn, **kwargs)
                except RemoteActorError:
                    pass
            assert await portal.run(s.rename_own_thread, name="renamed-actor") == "renamed-actor"
            assert without_sigint(process_state()) == without_sigint(before)  # actor still running
    assert process_state() == before


async def test_environment_reads_work(
    spawn_backend: str, subint_config: str, restore_state: None
) -> None:
    before = process_state()
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("reader", enable_modules=["tests.state_samples"])
            assert await portal.run(s.read_environ, name=PARENT_VAR) == "from-the-parent"
            assert await portal.run(s.allowed_fd_work) == "ok"
    assert process_state() == before


async def test_an_actor_may_add_change_and_remove_its_own_variables(
    spawn_backend: str, subint_config: str, restore_state: None
) -> None:
    # What numpy's import does (os.putenv of a variable nobody has, os.unsetenv of it after):
    # nobody else has seen such a variable, so no view of the environment is contradicted.
    # os.environ and the C environment agree after every step; whatever the actor added goes
    # when the actor goes, as it would with a process actor.
    before = process_state()
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("adder", enable_modules=["tests.state_samples"])
            assert await portal.run(s.own_variable_round_trip, name=s.ENV_NAME) == [
                [None, None],
                ["added", "added"],
                ["changed", "changed"],
                [None, None],
                [None, "put"],
                [None, None],
            ]
            assert await portal.run(s.add_variable, name=s.ENV_NAME) == [
                "left-behind",
                "left-behind",
            ]
            # In a subinterpreter the C environment is the process's: C code sees the addition
            # while the actor lives (the parent's os.environ dict does not).
            shared = spawn_backend == "subint"
            assert _c_getenv(s.ENV_NAME) == (b"left-behind" if shared else None)
            assert s.ENV_NAME not in os.environ
    assert process_state() == before


async def test_writing_the_value_a_variable_already_has_is_allowed(
    spawn_backend: str, subint_config: str, restore_state: None
) -> None:
    before = process_state()
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("rewriter", enable_modules=["tests.state_samples"])
            await require_guards(portal, spawn_backend)
            got = await portal.run(s.rewrite_same_value, name=PARENT_VAR, value="from-the-parent")
            assert got == ["from-the-parent", "from-the-parent"]
            # ... and still refused with another value (subint), or the actor's own (trio).
            if spawn_backend == "subint":
                with pytest.raises(RemoteActorError) as caught:
                    await portal.run(s.try_environ_change, name=PARENT_VAR)
                assert caught.value.remote_type == "subint_spawn.ProcessStateError"
                assert PARENT_VAR in caught.value.remote_message
    assert process_state() == before


async def test_a_process_actors_environment_is_its_own_trio_only(restore_state: None) -> None:
    # No environment guard in a process actor: nothing it writes reaches the parent, and a
    # message saying the environment is "shared by the parent" would be false.
    before = process_state()
    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery(backend="trio") as an:
            portal = await an.start_actor("owner", enable_modules=["tests.state_samples"])
            await require_guards(portal, "trio")
            for fn in CHANGES_TO_THE_PARENTS_VARIABLE:
                await portal.run(fn, name=PARENT_VAR)
                assert without_sigint(process_state()) == without_sigint(before)
            await portal.run(s.try_environ_change, name=PARENT_VAR)
            assert await portal.run(s.both_views, name=PARENT_VAR) == ["changed-by-the-actor"] * 2
    assert process_state() == before


async def test_refusing_signal_handlers_stays_a_value_error(
    spawn_backend: str, subint_config: str
) -> None:
    # CPython raises ValueError for signal.signal outside the main interpreter, and trio's
    # main-thread probe catches exactly that; the guard's clearer error must keep the type.
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("prober", enable_modules=["tests.state_samples"])
            await require_guards(portal, spawn_backend)
            assert await portal.run(s.signal_refusal_is_value_error) is True


async def test_process_title_modules_are_refused(spawn_backend: str, subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("titler", enable_modules=["tests.state_samples"])
            await require_guards(portal, spawn_backend)
            with pytest.raises(RemoteActorError) as caught:
                await portal.run(s.try_import_setproctitle)
    assert caught.value.remote_type == "ImportError"
    assert "renames the process" in caught.value.remote_message


async def test_fork_is_refused_in_both_configs_subint_only(
    subint_config: str, restore_state: None
) -> None:
    # isolated interpreters refuse fork by config (allow_fork=False); legacy ones allow it, and
    # the forked child dies in a fatal error.  The guard refuses it the same way in both.
    before = process_state()
    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            portal = await an.start_actor("forker", enable_modules=["tests.state_samples"])
            for fn in (s.try_fork, s.try_posix_fork, s.try_forkpty):
                with pytest.raises(RemoteActorError) as caught:
                    await portal.run(fn)
                assert caught.value.remote_type == "subint_spawn.ProcessStateError"
                assert isinstance(caught.value.__cause__, subint_spawn.ProcessStateError)
    assert process_state() == before


async def test_ending_the_process_is_refused_subint_only(subint_config: str) -> None:
    # Without the guard, this test run would end right here.
    with trio.fail_after(BOUND):
        async with subint_spawn.open_nursery(config=subint_config) as an:  # type: ignore[arg-type]
            portal = await an.start_actor("quitter", enable_modules=["tests.state_samples"])
            for fn in (s.try_exit_process, s.try_abort_process):
                with pytest.raises(RemoteActorError) as caught:
                    await portal.run(fn)
                assert caught.value.remote_type == "subint_spawn.ProcessStateError"
                assert "end the process" in caught.value.remote_message
