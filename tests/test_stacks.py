"""Stack dumps of every actor: named, nested, from any thread, with the trio loop stuck."""

from __future__ import annotations

import io
import os
import signal
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from subint_spawn import dump_stacks, install_stack_dump_signal
from subint_spawn._core._control import ControlLink, control_socketpair
from subint_spawn._core._stacks import DumpTarget, render_here
from subint_spawn.driver import open_subinterpreter

from . import stack_samples
from .helpers import BOUND, open_test_nursery

REPO = Path(__file__).resolve().parent.parent


class Gate:
    """A loopback listener: an actor connects and says ``r`` once it reached its blocking
    point; closing that connection releases it."""

    def __init__(self, listener: trio.SocketListener) -> None:
        self._listener = listener
        self.host, self.port = listener.socket.getsockname()[:2]
        self._streams: list[trio.SocketStream] = []

    async def wait_ready(self) -> None:
        stream = await self._listener.accept()
        self._streams.append(stream)
        assert await stream.receive_some(1) == b"r"

    async def release(self) -> None:
        for stream in self._streams:
            await stream.aclose()
        self._streams.clear()


@asynccontextmanager
async def open_gate() -> AsyncIterator[Gate]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    gate = Gate(listener)
    try:
        yield gate
    finally:
        await gate.release()
        await listener.aclose()


def section(text: str, actor: str) -> str:
    """The part of a dump under ``=== actor '<actor>' ...``, down to its next sibling."""
    lines = text.splitlines()
    for start, line in enumerate(lines):
        if line.lstrip().startswith(f"=== actor {actor!r} ("):
            depth = len(line) - len(line.lstrip())
            end = start + 1
            while end < len(lines):
                other = lines[end]
                if other.lstrip().startswith("===") and len(other) - len(other.lstrip()) <= depth:
                    break
                end += 1
            return "\n".join(lines[start:end])
    raise AssertionError(f"no section for actor {actor!r} in:\n{text}")


def quiet_dump() -> str:
    return dump_stacks(io.StringIO())


async def test_dump_names_each_actor_and_shows_its_blocked_frame(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_test_nursery(spawn_backend, subint_config) as an:
            reader = await an.run_in_actor(
                stack_samples.blocked_in_recv_marker,
                name="stuck-reader",
                host=gate.host,
                port=gate.port,
            )
            await gate.wait_ready()
            # Called right on the trio thread: the loop is blocked for the whole collection,
            # so this also shows that collecting never needs it.
            text = quiet_dump()
            await gate.release()
            assert await reader.wait_for_result() == "released"
    assert text.splitlines()[1].startswith("=== main interpreter (pid ")
    mine = section(text, "stuck-reader")
    assert "blocked_in_recv_marker" in mine, text
    kind = "trio backend" if spawn_backend == "trio" else "subinterpreter"
    assert kind in mine.splitlines()[0]
    # The actor's own frames are in its section, not in the parent's.
    assert "blocked_in_recv_marker" not in text.split("=== actor")[0]


async def test_a_pure_python_loop_answers_and_is_then_stopped(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_test_nursery(spawn_backend, subint_config) as an:
            await an.run_in_actor(
                stack_samples.spinning_marker, name="spinner", host=gate.host, port=gate.port
            )
            await gate.wait_ready()
            text = quiet_dump()
            an.cancel_scope.cancel()
    assert "spinning_marker" in section(text, "spinner"), text


async def test_an_actor_sleeping_in_c_still_answers(subint_config: str) -> None:
    # The runner is inside time.sleep, with this interpreter's GIL released: the watchdog
    # (and its dump helper) run meanwhile.
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_test_nursery("subint", subint_config) as an:
            sleeper = await an.run_in_actor(
                stack_samples.sleeping_in_c_marker, name="sleeper", host=gate.host, port=gate.port
            )
            await gate.wait_ready()
            started = trio.current_time()
            text = quiet_dump()
            elapsed = trio.current_time() - started
            await gate.release()
            assert await sleeper.wait_for_result() == "released"
    mine = section(text, "sleeper")
    assert "sleeping_in_c_marker" in mine and "no answer" not in mine, text
    assert "(runner)" in mine
    assert elapsed < 1.0  # answered, not timed out


async def test_nested_actors_appear_indented_under_their_parent(
    spawn_backend: str, subint_config: str
) -> None:
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_test_nursery(spawn_backend, subint_config) as an:
            middle = await an.run_in_actor(
                stack_samples.parent_of_blocked_child, name="middle", host=gate.host, port=gate.port
            )
            await gate.wait_ready()
            text = quiet_dump()
            await gate.release()
            assert await middle.wait_for_result() == "released"
    outer = section(text, "middle")
    inner = section(outer, "grandchild")
    outer_depth = len(outer) - len(outer.lstrip())
    assert inner.startswith(" " * (outer_depth + 4) + "=== actor 'grandchild' ("), text
    assert "blocked_in_recv_marker" in inner


async def test_dump_works_from_a_foreign_thread_while_the_loop_waits(subint_config: str) -> None:
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_test_nursery("subint", subint_config) as an:
            await an.run_in_actor(
                stack_samples.blocked_in_recv_marker, name="reader", host=gate.host, port=gate.port
            )
            await gate.wait_ready()
            result: list[str] = []
            helper = threading.Thread(target=lambda: result.append(quiet_dump()))
            helper.start()
            helper.join(BOUND)  # on the trio thread: the loop cannot run meanwhile
            await gate.release()
    assert "blocked_in_recv_marker" in section(result[0], "reader")


async def test_dump_while_the_kill_path_reads_the_same_control_socket(subint_config: str) -> None:
    # The kill escalation polls the guest's control socket for CLEANING_UP while a dump's
    # reply may be arriving on it. Both must get their own records: the dump completes and
    # the cleaning-up notice is still seen afterwards.
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_subinterpreter(subint_config, name="polled") as interp:
            interp.start(stack_samples.blocked_in_recv_marker, gate.host, gate.port)
            await gate.wait_ready()
            stop = threading.Event()

            def kill_path_poller() -> None:
                while not stop.is_set():
                    interp._cleaning_up()

            poller = threading.Thread(target=kill_path_poller)
            poller.start()
            try:
                texts = [quiet_dump() for _ in range(5)]
            finally:
                stop.set()
                poller.join(BOUND)
            await gate.release()
            await interp.wait_exited()
            assert interp._cleaning_up()  # sent before its thread ended; reaping closes the link
            assert await interp.wait() == "released"
    for text in texts:
        mine = section(text, "polled")
        assert "blocked_in_recv_marker" in mine and "no answer" not in mine, text


def test_link_keeps_replies_and_the_cleaning_up_notice_apart() -> None:
    parent, guest = control_socketpair()
    link = ControlLink(parent)
    try:
        from subint_spawn._core import _control

        stale = link.request_dump(1.0)
        assert stale is not None
        assert link.forget(stale) == ""
        request = link.request_dump(1.0)
        assert request is not None
        for _ in range(2):  # what the guest received: two requests
            assert _control.parse_dump_request(guest.recv(64)) is not None
        # A late reply to the forgotten request, half of the current one, the notice, the rest.
        deadline = 1e18
        assert _control.send_dump_reply(guest, stale, "old news", deadline)
        first = b"D" + _control._REPLY.pack(request, 0) + b"part one, "
        assert _control.send_record(guest, first, deadline)
        assert _control.send_record(guest, b"u", deadline)
        assert link.cleaning_up()  # reads everything that is there, replies included
        assert link.answer(request) is None  # not complete yet, and not lost either
        assert _control.send_record(
            guest, b"D" + _control._REPLY.pack(request, 1) + b"part two", deadline
        )
        assert link.answer(request) == "part one, part two"
        assert link.request_dump(1.0) is None  # its watchdog stopped: nobody would answer
    finally:
        link.close()
        guest.close()


def test_actors_that_cannot_answer_are_reported_within_the_bound() -> None:
    import time

    parent, guest = control_socketpair()
    link = ControlLink(parent)
    ending_parent, ending_guest = control_socketpair()
    ending_link = ControlLink(ending_parent)
    try:
        mute = DumpTarget("actor 'mute' (subinterpreter 98, isolated)", link)
        ending = DumpTarget("actor 'ending' (subinterpreter 99, isolated)", ending_link)
        from subint_spawn._core import _control

        def half_answer_then_end() -> None:
            request = _control.parse_dump_request(ending_guest.recv(64))
            assert request is not None
            half = b"D" + _control._REPLY.pack(request[0], 0) + b"first half"
            _control.send_record(ending_guest, half, time.monotonic() + BOUND)
            ending_guest.close()

        fake_guest = threading.Thread(target=half_answer_then_end)
        fake_guest.start()
        started = time.monotonic()
        text = render_here(5.0, targets=[ending])
        assert time.monotonic() - started < 2.0  # the EOF ended the wait, not the 5 s
        fake_guest.join(BOUND)
        text += render_here(0.3, targets=[mute])
    finally:
        link.close()
        guest.close()
        ending_link.close()
    assert "no answer within 0.30 s" in section(text, "mute")
    assert "ended before answering" in section(text, "ending")
    assert "first half" in section(text, "ending")


async def test_signal_dumps_from_a_helper_thread_while_the_loop_is_blocked(
    spawn_backend: str, subint_config: str
) -> None:
    class Sink(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.written = threading.Event()

        def flush(self) -> None:
            self.written.set()

    sink = Sink()
    with trio.fail_after(BOUND):
        async with open_gate() as gate, open_test_nursery(spawn_backend, subint_config) as an:
            with install_stack_dump_signal(signal.SIGUSR1, file=sink) as trigger:
                await an.run_in_actor(
                    stack_samples.blocked_in_recv_marker,
                    name="signalled",
                    host=gate.host,
                    port=gate.port,
                )
                await gate.wait_ready()
                os.kill(os.getpid(), signal.SIGUSR1)
                # Block the trio thread itself until the dump is written: the loop is stuck.
                assert sink.written.wait(BOUND)
                assert trigger.dumps == 1
            await gate.release()
    text = sink.getvalue()
    assert "blocked_in_recv_marker" in section(text, "signalled"), text
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the previous handling is back


async def test_signal_trigger_refuses_other_threads() -> None:
    with pytest.raises(RuntimeError, match="main thread of the main interpreter"):
        await trio.to_thread.run_sync(install_stack_dump_signal)
    with (
        install_stack_dump_signal(signal.SIGUSR2),
        pytest.raises(RuntimeError, match="already installed"),
    ):
        install_stack_dump_signal(signal.SIGUSR2)


@pytest.mark.timeout(120)
async def test_pytest_plugin_hang_dump_includes_actor_stacks(
    spawn_backend: str, tmp_path: Path
) -> None:
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(
            f"""\
            [pytest]
            trio_mode = true
            timeout = 8
            timeout_method = thread
            spawn_backend = {spawn_backend}
            subint_hang_dir = hangs
            """
        )
    )
    (tmp_path / "test_hangs_forever.py").write_text(
        textwrap.dedent(
            """\
            import trio
            import subint_spawn
            from tests import stack_samples

            async def test_hangs(spawn_backend):
                async with subint_spawn.open_nursery(backend=spawn_backend) as an:
                    await an.run_in_actor(stack_samples.blocked_forever_marker, name="hung-actor")
                    await trio.sleep_forever()
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with trio.fail_after(90):
        done = await trio.run_process(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "test_hangs_forever.py",
            ],
            cwd=tmp_path,
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode != 0  # pytest-timeout ended it
    dumps = sorted(p.name for p in (tmp_path / "hangs").iterdir())
    assert any(name.endswith(".actors.txt") for name in dumps), (dumps, done.stdout[-2000:])
    actors_file = next(p for p in (tmp_path / "hangs").iterdir() if p.name.endswith(".actors.txt"))
    plain_file = actors_file.with_name(actors_file.name.replace(".actors.txt", ".txt"))
    assert "File " in plain_file.read_text()  # faulthandler's dump of the test process
    assert "blocked_forever_marker" in section(actors_file.read_text(), "hung-actor")
