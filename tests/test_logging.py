"""Actors log through the parent's ``logging``, with the actor's name on every record."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.lowlevel

from . import log_samples
from .helpers import BOUND, open_test_nursery


def _from_actors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "actor")]


async def _wait_for_records(
    caplog: pytest.LogCaptureFixture, count: int
) -> list[logging.LogRecord]:
    """Records are sent before the call's answer on the same channel, so they have been
    re-emitted by the time the call returns; this only waits out the hop of a record logged
    by another thread of the actor (it goes through the actor's trio loop)."""
    while len(_from_actors(caplog)) < count:
        await trio.lowlevel.checkpoint()
    return _from_actors(caplog)


async def log_in_actor(
    spawn_backend: str,
    subint_config: str,
    caplog: pytest.LogCaptureFixture,
    fn: Any,
    name: str,
    **kwargs: Any,
) -> list[logging.LogRecord]:
    """Run ``fn(**kwargs)`` in a fresh actor called ``name``; the actor records the parent got."""
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor(name, enable_modules=["tests.log_samples"])
            await portal.run(fn, **kwargs)
            records = await _wait_for_records(caplog, 1)
            await portal.cancel_actor()
    return records


async def test_a_warning_in_an_actor_reaches_the_parents_logger_with_the_actor_name(
    spawn_backend: str, subint_config: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [record] = await log_in_actor(
        spawn_backend, subint_config, caplog, log_samples.warn, "worker", text="disk almost full"
    )
    assert record.name == "tests.log_samples"
    assert record.levelno == logging.WARNING
    assert record.actor == "worker"  # type: ignore[attr-defined]
    assert record.getMessage() == "[worker] careful: disk almost full"


async def test_a_logged_exception_keeps_its_traceback(
    spawn_backend: str, subint_config: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [record] = await log_in_actor(
        spawn_backend, subint_config, caplog, log_samples.fail_and_log, "worker"
    )
    assert record.levelno == logging.ERROR
    assert "KeyError: 'missing'" in (record.exc_text or "")
    assert "fail_and_log" in (record.exc_text or "")
    assert "KeyError: 'missing'" in caplog.text


async def test_records_from_other_threads_of_the_actor_arrive_too(
    spawn_backend: str, subint_config: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [record] = await log_in_actor(
        spawn_backend, subint_config, caplog, log_samples.warn_from_a_thread, "worker", text="hello"
    )
    assert record.getMessage() == "[worker] from a thread: hello"


async def test_a_grandchilds_record_names_each_hop(
    spawn_backend: str, subint_config: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    [record] = await log_in_actor(
        spawn_backend, subint_config, caplog, log_samples.mid_with_logging_leaf, "mid", text="deep"
    )
    assert record.actor == "mid -> leaf"  # type: ignore[attr-defined]
    assert record.getMessage() == "[mid -> leaf] careful: deep"


async def test_the_parents_level_decides_what_actors_send(
    spawn_backend: str, subint_config: str, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(BOUND):
        caplog.set_level(logging.WARNING)
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("quiet", enable_modules=["tests.log_samples"])
            await portal.run(log_samples.info, text="not shown")
            await portal.cancel_actor()
        assert _from_actors(caplog) == []
        caplog.set_level(logging.INFO)
        async with open_test_nursery(spawn_backend, subint_config) as an:
            portal = await an.start_actor("chatty", enable_modules=["tests.log_samples"])
            await portal.run(log_samples.info, text="shown")
            records = _from_actors(caplog)
            await portal.cancel_actor()
    assert [r.getMessage() for r in records] == ["[chatty] fyi: shown"]
