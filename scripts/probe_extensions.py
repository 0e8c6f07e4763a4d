"""Which C extensions import in which kind of actor: the table in docs/c-extensions.md.

    .venv/bin/python scripts/probe_extensions.py [MODULE ...]

Prints a markdown table, one row per MODULE, one column per kind of actor.  Each module is
probed in fresh processes of its own: several extensions load in only one interpreter per
process, so one probe would spoil the next.  Name the C extension itself where a package
falls back to pure Python when its extension cannot load (``yaml._yaml``, not ``yaml``), or
the probe says "yes" about the fallback.

A cell is ``yes`` when an actor of that kind imported the module and answered a call, else
``no``, what kind of refusal it was, and ``(no hint)`` if the actor's startup error did not
name a kind of actor that works.  Exit status 0 unless a probe itself failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import subprocess
import sys

#: The packages docs/c-extensions.md lists, each by the module that holds its C code.
DEFAULT_MODULES = (
    "numpy",
    "pandas",
    "pydantic_core",
    "cryptography.hazmat.bindings._rust",
    "orjson",
    "msgspec",
    "ujson",
    "regex",
    "lxml.etree",
    "psutil",
    "_cffi_backend",
    "yaml._yaml",
    "markupsafe._speedups",
    "simplejson._speedups",
)

#: (key, header), in the order a program meets them.  "parent" runs in a process of its own
#: whose parent imports the module before it spawns anything.
COLUMNS = (
    ("trio", "trio backend"),
    ("isolated", "subint, isolated"),
    ("legacy", "subint, legacy: 1st actor"),
    ("legacy-2nd", "legacy: 2nd actor of the process"),
    ("parent", "legacy, after the parent imported it"),
)

#: What the refusals say (CPython's and the extension builders' messages) -> a short label.
REFUSALS = (
    ("does not support loading in subinterpreters", "no: not for isolated interpreters"),
    ("cannot load module more than once per process", "no: one interpreter per process"),
    ("modules do not yet support subinterpreters", "no: one interpreter per process"),
    ("can only be loaded into one interpreter per process", "no: one interpreter per process"),
    (
        "failed to import from subinterpreter due to exception",
        "no: its init fails in the main interpreter",
    ),
    # A wrapper's own message (pandas: "Unable to import required dependency numpy"), where
    # the actor found one of the above in the chain of errors and added its hint:
    ("does not support isolated subinterpreters", "no: not for isolated interpreters"),
    ("loads in only one interpreter per process", "no: one interpreter per process"),
)
CHILD_BOUND = 60  # seconds for one child process: only there to turn a hang into an error


def label(message: str) -> str:
    for marker, text in REFUSALS:
        if marker in message:
            break
    else:
        text = "no: " + message.split(":", 1)[0][:40]
    return text if "'trio' backend" in message else text + " (no hint)"


async def _try_actor(an: object, name: str, module: str) -> str:
    from subint_spawn import ActorStartupError

    try:
        portal = await an.start_actor(name, enable_modules=[module])  # type: ignore[attr-defined]
    except ActorStartupError as exc:
        return label(exc.remote_message)
    await portal.run(os.getpid)  # it imported the module and serves (a script's own
    return "yes"  # functions cannot travel to actors: this file runs as __main__)


async def _probe(module: str, parent_first: bool) -> dict[str, str]:
    import subint_spawn

    cells: dict[str, str] = {}
    if parent_first:
        importlib.import_module(module)
        async with subint_spawn.open_nursery(backend="subint", config="legacy") as an:
            cells["parent"] = await _try_actor(an, "after-parent", module)
        return cells
    async with subint_spawn.open_nursery(backend="trio") as an:
        cells["trio"] = await _try_actor(an, "process", module)
    async with subint_spawn.open_nursery(backend="subint", config="isolated") as an:
        cells["isolated"] = await _try_actor(an, "isolated", module)
    async with subint_spawn.open_nursery(backend="subint", config="legacy") as an:
        cells["legacy"] = await _try_actor(an, "first", module)  # stays up while the 2nd starts
        cells["legacy-2nd"] = await _try_actor(an, "second", module)
    return cells


def _child(module: str, parent_first: bool) -> None:
    import warnings

    import trio

    warnings.simplefilter("ignore")  # numpy warns about subinterpreters in every actor
    print(json.dumps(trio.run(_probe, module, parent_first)))


def _run_child(module: str, parent_first: bool) -> dict[str, str]:
    argv = [sys.executable, __file__, "--child", module]
    if parent_first:
        argv.append("--parent-first")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=CHILD_BOUND, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"probe of {module} hung for {CHILD_BOUND} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"probe of {module} exited {done.returncode}: {tail[0]}"}
    cells: dict[str, str] = json.loads(lines[-1])
    return cells


def distribution(module: str) -> str:
    top = module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top, [])
    if not names:
        return "?"
    return f"{names[0]} {importlib.metadata.version(names[0])}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--parent-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.parent_first)
        return 0
    print(f"Python {sys.version.split()[0]}")
    print()
    print("| module | package | " + " | ".join(header for _, header in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    failed = False
    for module in args.modules:
        cells = _run_child(module, False) | _run_child(module, True)
        if "error" in cells:
            failed = True
            print(f"| `{module}` | {distribution(module)} | {cells['error']} |", flush=True)
            continue
        row = " | ".join(cells[key] for key, _ in COLUMNS)
        print(f"| `{module}` | {distribution(module)} | {row} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
