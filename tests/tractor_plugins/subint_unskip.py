"""pytest plugin for running tractor's own tests on subint_spawn's method: keep the tests that
tractor skips with ``@skipon_spawn_backend('subint', ...)`` (they hang on *its* subint method).

Load it with ``-p subint_unskip`` and this folder on ``PYTHONPATH`` (not the checkout's root:
its ``tests`` package would shadow tractor's).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    count_before = {id(item): len(item.own_markers) for item in items}
    result = yield
    for item in items:
        if item.get_closest_marker("skipon_spawn_backend") is None:
            continue
        keep = count_before.get(id(item), len(item.own_markers))
        added = item.own_markers[keep:]
        item.own_markers[keep:] = [marker for marker in added if marker.name != "skip"]
    return result
