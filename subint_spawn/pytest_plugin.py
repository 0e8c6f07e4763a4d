"""pytest plugin (entry point ``pytest11``): backend selection, a leak check, hang dumps.

Options:

``--spawn-backend=subint|trio``  backend(s) for tests that take the ``spawn_backend`` fixture;
    a comma list (``subint,trio``) runs such tests once per backend.  Default ``subint``.
    It is also the spawn default while each test runs: ``open_nursery()`` without
    ``backend=`` uses the test's own ``spawn_backend`` parameter, or in a test without one,
    the first backend listed.
``--subint-config=isolated|legacy``  interpreter config(s) for the ``subint_config`` fixture,
    comma lists likewise, and the default config while each test runs, the same way.
    Default ``isolated``.
``--subint-leak-check``  (or ini ``subint_leak_check = true``) fail any test after which OS
    threads, subinterpreters or fds are not back to what they were before it.
``--subint-hang-dir=DIR``  (ini ``subint_hang_dir``; default ``.pytest-hangs``) where stacks
    are written when a test runs past 90% of its pytest-timeout (pytest-timeout is in the
    ``pytest`` extra; without it a ``timeout`` marker still arms the dump, and one warning
    says that nothing stops the test): ``<test id>.txt`` has every
    thread of the test process (faulthandler, written even if the process is wedged), and
    ``<test id>.actors.txt`` every live actor's threads by actor name, nested actors included
    (collected from a helper thread, so a stuck trio loop does not stop it).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._core._defaults import spawn_defaults
from ._core._hangs import dump_on_hang
from ._core._leaks import leaks_since, snapshot
from ._core._names import BACKENDS, CONFIGS


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("subint_spawn")
    group.addoption("--spawn-backend", default=None, help="subint, trio or a comma list (default: subint)")
    group.addoption("--subint-config", default=None, help="isolated, legacy or a comma list (default: isolated)")
    group.addoption("--subint-leak-check", action="store_true", default=None, help="fail tests that leak")
    group.addoption("--subint-hang-dir", default=None, help="where to write stack dumps of hung tests")
    parser.addini("spawn_backend", "default for --spawn-backend", default="subint")
    parser.addini("subint_config", "default for --subint-config", default="isolated")
    parser.addini("subint_leak_check", "fail tests that leak threads, interpreters or fds", type="bool", default=False)
    parser.addini("subint_hang_dir", "directory for stack dumps of hung tests", default=".pytest-hangs")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_leak_check: skip subint_spawn's leak check for this test")
    _check_choices(config)
    if not _has_pytest_timeout(config):
        # Known, so that using it is no PytestUnknownMarkWarning (or --strict-markers error);
        # what it does without pytest-timeout is said once, in _warn_timeout_is_inert.
        config.addinivalue_line(
            "markers", "timeout(seconds): pytest-timeout's marker (not installed: only the hang dump uses it)"
        )


def _check_choices(config: pytest.Config) -> None:
    """An unknown backend or config is a usage error before collection, not an error in
    every test module that parametrizes over it."""
    _choices(config, "spawn_backend", "spawn_backend", BACKENDS)
    _choices(config, "subint_config", "subint_config", CONFIGS)


def _has_pytest_timeout(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("timeout")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _warn_timeout_is_inert(session)


def _warn_timeout_is_inert(session: pytest.Session) -> None:
    """Without pytest-timeout a ``timeout`` marker stops nothing: say so once, with the fix."""
    if _has_pytest_timeout(session.config):
        return
    marked = sum(1 for item in session.items if item.get_closest_marker("timeout") is not None)
    if marked:
        warnings.warn(
            pytest.PytestConfigWarning(
                f"subint_spawn: {marked} test(s) use @pytest.mark.timeout, but pytest-timeout is "
                "not installed, so no timeout stops them: a hung test hangs the run (the hang "
                "dumps are still written at 90% of each timeout). Install it: "
                "pip install pytest-timeout, or pip install 'subint-spawn[pytest]'."
            ),
            stacklevel=1,
        )


def _choices(config: pytest.Config, option: str, ini: str, allowed: tuple[str, ...]) -> list[str]:
    raw = config.getoption(option) or config.getini(ini)
    chosen = [part.strip() for part in str(raw).split(",") if part.strip()]
    for name in chosen:
        if name not in allowed:
            raise pytest.UsageError(f"--{option.replace('_', '-')}: {name!r} is not one of {', '.join(allowed)}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    wants_backend = "spawn_backend" in metafunc.fixturenames
    wants_config = "subint_config" in metafunc.fixturenames
    if not (wants_backend or wants_config):
        return
    backends = _choices(metafunc.config, "spawn_backend", "spawn_backend", BACKENDS) if wants_backend else ["subint"]
    configs = _choices(metafunc.config, "subint_config", "subint_config", CONFIGS)
    combos: list[tuple[str, str]] = []
    for backend in backends:
        # The config only means something to subinterpreters; the trio backend runs once.
        for config in configs if backend == "subint" else configs[:1]:
            combos.append((backend, config))
    if wants_backend and wants_config:
        ids = [f"{b}-{c}" if b == "subint" else b for b, c in combos]
        metafunc.parametrize(("spawn_backend", "subint_config"), combos, ids=ids)
    elif wants_backend:
        metafunc.parametrize("spawn_backend", backends)
    else:
        metafunc.parametrize("subint_config", configs)


@pytest.fixture(autouse=True)
def _subint_spawn_defaults(request: pytest.FixtureRequest) -> Iterator[None]:
    """What a test is labelled with is what it spawns: its ``spawn_backend``/``subint_config``
    parameters (else the first listed in the options) are the spawn defaults while it runs.

    Set in the test's context before pytest-trio starts the test's ``trio.run``, which runs in
    a copy of it; restored afterwards, so nothing leaks into the next test.
    """
    params = request.node.callspec.params if hasattr(request.node, "callspec") else {}
    config = request.config
    backend = params.get("spawn_backend") or _choices(config, "spawn_backend", "spawn_backend", BACKENDS)[0]
    interpreter = params.get("subint_config") or _choices(config, "subint_config", "subint_config", CONFIGS)[0]
    with spawn_defaults(backend=backend, config=interpreter):
        yield


def _leak_check_enabled(config: pytest.Config) -> bool:
    option = config.getoption("subint_leak_check")
    return bool(option) if option is not None else bool(config.getini("subint_leak_check"))


@pytest.fixture(autouse=True)
def _subint_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _leak_check_enabled(request.config) or request.node.get_closest_marker("no_leak_check"):
        yield
        return
    before = snapshot()
    yield
    problems = leaks_since(before)
    if problems:
        pytest.fail("leak check: " + "; ".join(problems), pytrace=False)


def _timeout_of(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    try:
        from_command_line = item.config.getoption("timeout")
    except ValueError:
        from_command_line = None
    if from_command_line:
        return float(from_command_line)
    try:
        value = item.config.getini("timeout")
    except ValueError:  # pytest-timeout not installed
        return None
    return float(value) if value else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    timeout = _timeout_of(item)
    if not timeout:
        return (yield)
    directory = Path(item.config.getoption("subint_hang_dir") or item.config.getini("subint_hang_dir"))
    if not directory.is_absolute():
        directory = item.config.rootpath / directory
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[:180]
    with dump_on_hang(timeout * 0.9, directory / f"{safe_name}.txt"):
        return (yield)
