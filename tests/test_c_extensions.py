"""C extensions in actors: numpy and friends import wherever the interpreter allows them, and
where it does not, the error names the backend or config that works (docs/c-extensions.md).

What the expectations rest on (measured on CPython 3.14, see the doc's table):

* an isolated interpreter refuses every extension that has not declared support for it
  (numpy, pydantic-core and orjson all refuse);
* numpy and PyO3 extensions (pydantic-core) load in only *one* interpreter per process, for
  good: the first legacy actor to import them, or the parent, keeps them, and every later
  interpreter is refused; orjson loads in any number of legacy interpreters.

Which interpreter of this test process got numpy first depends on which tests ran before, so
the in-process test only checks what holds whatever happened before it; the "first legacy
actor of a process has it" half is checked in fresh processes, by the probe script that
measures the doc's table.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from subint_spawn import ActorStartupError, RemoteActorError

from . import extension_samples as es
from .helpers import BOUND, open_test_nursery

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "c-extensions.md"
PROBE = REPO / "scripts" / "probe_extensions.py"

#: module -> whether it loads in any number of legacy interpreters of one process.
EXTENSIONS = {"numpy": False, "pydantic_core": False, "orjson": True}
ISOLATED_HINT = ("config='legacy'", "'trio' backend")
ONCE_HINT = ("only one interpreter per process", "'trio' backend")


@pytest.fixture(autouse=True)
def one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """numpy's OpenBLAS starts a pool of worker threads when the library loads, even when an
    isolated interpreter then refuses numpy, and they live as long as the process: the leak
    check would rightly see them.  One BLAS thread means no pool (docs/c-extensions.md)."""
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    yield


def names_all(message: str, needles: tuple[str, ...]) -> bool:
    return all(needle in message for needle in needles)


@pytest.mark.parametrize("module", sorted(EXTENSIONS))
async def test_c_extension_imports_wherever_the_interpreter_allows_it(
    module: str, spawn_backend: str, subint_config: str
) -> None:
    outcomes: list[str] = []
    with trio.fail_after(BOUND):
        async with open_test_nursery(spawn_backend, subint_config) as an:
            for name in ("first", "second"):  # the first one stays up while the second starts
                try:
                    portal = await an.start_actor(
                        name, enable_modules=["tests.extension_samples", module]
                    )
                except ActorStartupError as exc:
                    outcomes.append(exc.remote_message)
                else:
                    outcomes.append(await portal.run(es.use, module=module))
            if spawn_backend == "subint" and subint_config == "isolated":
                # Imported in a call rather than at startup: the same hint.
                portal = await an.start_actor("caller", enable_modules=["tests.extension_samples"])
                with pytest.raises(RemoteActorError) as caught:
                    await portal.run(es.use, module=module)
                outcomes.append(caught.value.remote_message)
    if spawn_backend == "trio":
        assert outcomes == ["ok", "ok"]
    elif subint_config == "isolated":
        assert len(outcomes) == 3
        assert all(names_all(message, ISOLATED_HINT) for message in outcomes), outcomes
    elif EXTENSIONS[module]:
        assert outcomes == ["ok", "ok"]
    else:
        # Once per process: the second actor is refused whoever had it first, the first
        # actor too if this process loaded it before this test.
        assert names_all(outcomes[1], ONCE_HINT), outcomes
        assert outcomes[0] == "ok" or names_all(outcomes[0], ONCE_HINT), outcomes


def doc_rows() -> dict[str, list[str]]:
    """docs/c-extensions.md's table: module -> cells after the package column."""
    rows = {}
    for line in DOC.read_text().splitlines():
        found = re.match(r"\|\s*`([\w.]+)`\s*\|", line)
        if found:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[found.group(1)] = cells[2:]
    return rows


@pytest.mark.timeout(150)
@pytest.mark.parametrize("module", sorted(EXTENSIONS))
async def test_the_docs_table_is_what_the_probe_measures(module: str) -> None:
    # Fresh processes: the first legacy actor of a process imports numpy and the second one is
    # refused with a hint, deterministically; and the doc says what this machine measures.
    # The probe bounds each of its two children itself (CHILD_BOUND, 60 s), so it ends first.
    with trio.fail_after(140):
        done = await trio.run_process(
            [sys.executable, str(PROBE), module],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode()[-2000:])
    measured = [line for line in out.splitlines() if line.startswith(f"| `{module}` |")]
    assert len(measured) == 1, out
    cells = [cell.strip() for cell in measured[0].strip().strip("|").split("|")][2:]
    assert cells == doc_rows()[module]
    assert all("(no hint)" not in cell for cell in cells)
    if not EXTENSIONS[module]:
        assert cells[2:4] == ["yes", "no: one interpreter per process"]
