"""Functions that log from inside actors, for the logging tests."""

from __future__ import annotations

import logging
import threading

import subint_spawn

log = logging.getLogger("tests.log_samples")


def warn(text: str) -> None:
    log.warning("careful: %s", text)


def info(text: str) -> None:
    log.info("fyi: %s", text)


def fail_and_log() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        log.exception("lookup failed")


def warn_from_a_thread(text: str) -> None:
    thread = threading.Thread(target=log.warning, args=("from a thread: %s", text))
    thread.start()
    thread.join()


async def mid_with_logging_leaf(text: str) -> None:
    async with subint_spawn.open_nursery() as an:
        leaf = await an.start_actor("leaf", enable_modules=[__name__])
        await leaf.run(warn, text=text)
        await leaf.cancel_actor()
