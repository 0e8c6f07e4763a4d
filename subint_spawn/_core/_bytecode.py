"""Byte-compiled code for what every actor imports, and a one-time word when it is missing.

Every actor is a fresh interpreter (or process) that imports trio and this package.  With
``.pyc`` files next to the sources that costs a read and an unmarshal; without them every actor
compiles trio from source again, which doubles spawn -> result -> teardown (measured in
ai/bytecode-for-installed-wheels.md).  ``make venv`` and ``pip install`` compile at install
time; ``uv pip install`` does not unless asked (``--compile-bytecode``), and under
``PYTHONDONTWRITEBYTECODE=1`` (or a read-only site-packages) the import system never writes
the files itself.

We do not write into site-packages behind the user's back: :func:`compile_runtime` does it
when the user runs ``python -m subint_spawn compile``, and :func:`warn_once_if_uncompiled`
says so, once per process, at the first spawn that would be slow.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CompileReport",
    "compile_runtime",
    "runtime_distributions",
    "uncompiled",
    "warn_once_if_uncompiled",
]

#: Packages whose modules the first-spawn check looks at: the bulk of what an actor imports
#: (trio is most of its import time).  The compile command covers every dependency.
CHECKED_PACKAGES = ("trio", "subint_spawn")

_warned = False


def _usable_bytecode(source: str | os.PathLike[str]) -> bool:
    """Whether the import system would load ``source`` from its ``.pyc`` without compiling:
    the file exists, has this interpreter's magic number, and matches the source (timestamp
    mode: mtime and size; hash-based files are taken as usable, checking them costs a hash,
    not a compile)."""
    try:
        cached = importlib.util.cache_from_source(os.fspath(source))
        with open(cached, "rb") as pyc:
            header = pyc.read(16)
        stat = os.stat(source)
    except OSError, NotImplementedError, ValueError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(header[4:8], "little") & 0b1:  # hash-based
        return True
    mtime = int.from_bytes(header[8:12], "little")
    size = int.from_bytes(header[12:16], "little")
    return mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size & 0xFFFFFFFF


def _loaded_sources(packages: Iterable[str]) -> Iterator[str]:
    """Source files of the modules of ``packages`` that this interpreter has imported."""
    prefixes = tuple(packages)
    for name, module in list(sys.modules.items()):
        if name.split(".", 1)[0] not in prefixes:
            continue
        source = getattr(module, "__file__", None)
        if isinstance(source, str) and source.endswith(".py"):
            yield source


def uncompiled(packages: Iterable[str] = CHECKED_PACKAGES) -> list[str]:
    """Imported modules of ``packages`` whose source has no usable ``.pyc``."""
    return sorted(source for source in _loaded_sources(packages) if not _usable_bytecode(source))


def warn_once_if_uncompiled() -> None:
    """At the first spawn of a process: warn if every actor will compile trio from source.

    Only in the root: a nested spawn happens in an actor, whose parent already said it.  The
    check stats and reads a header of each imported module of trio and subint_spawn (a few
    milliseconds, once).  If the parent imported them without writing ``.pyc`` files, the
    actors will not write them either.
    """
    global _warned
    if _warned:
        return
    _warned = True
    from ._guards import guarded_actor

    if guarded_actor() is not None:
        return
    missing = uncompiled()
    if not missing:
        return
    from .._exceptions import BytecodeWarning

    why = (
        "PYTHONDONTWRITEBYTECODE is set"
        if sys.dont_write_bytecode
        else "Python could not write them (read-only install?)"
    )
    warnings.warn(
        BytecodeWarning(
            f"trio and subint_spawn have no usable .pyc files ({len(missing)} modules, e.g. "
            f"{missing[0]}) and {why}, so every actor compiles them from source: spawns take "
            "about twice as long. Run once: python -m subint_spawn compile (or install with "
            "pip, or uv pip install --compile-bytecode)."
        ),
        # Shown at the user's line that spawned, not inside trio or this package.
        skip_file_prefixes=_internal_dirs(),
    )


def _internal_dirs() -> tuple[str, ...]:
    import trio

    return tuple(
        str(Path(module.__file__).parent) for module in (trio, sys.modules["subint_spawn"])
    )


# -- the compile command ---------------------------------------------------------------------


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(root: str = "subint-spawn") -> list[importlib.metadata.Distribution]:
    """``root`` and every installed distribution it requires, recursively (extras left out;
    a requirement for another Python version is skipped because it is not installed)."""
    import importlib.metadata  # only here: the first-spawn check must stay cheap

    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = _canonical(pending.pop())
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found[name] = dist
        for requirement in dist.requires or ():
            if re.search(r"\bextra\s*==", requirement):
                continue
            match = _NAME.match(requirement)
            if match:
                pending.append(match.group(1))
    return list(found.values())


def _sources(dist: importlib.metadata.Distribution) -> set[Path]:
    files = {Path(dist.locate_file(f)) for f in dist.files or () if f.suffix == ".py"}
    if not files and _canonical(dist.metadata["Name"]) == "subint-spawn":
        # An editable install lists no sources: take the package where it is imported from.
        files = set(Path(__file__).resolve().parent.parent.rglob("*.py"))
    return {f for f in files if f.is_file()}


@dataclass
class CompileReport:
    distributions: list[str] = field(default_factory=list)
    compiled: int = 0
    already: int = 0
    #: (source, why): a file that could not be written (permissions), or does not compile.
    failed: list[tuple[str, str]] = field(default_factory=list)


def compile_runtime(*, check_only: bool = False) -> CompileReport:
    """Write a ``.pyc`` for every module of subint_spawn and its dependencies that lacks a
    usable one (what ``pip install`` does at install time; timestamp-checked, for this
    interpreter's optimization level).  ``check_only`` counts without writing."""
    import py_compile

    report = CompileReport()
    for dist in runtime_distributions():
        report.distributions.append(dist.metadata["Name"])
        for source in sorted(_sources(dist)):
            if _usable_bytecode(source):
                report.already += 1
                continue
            if check_only:
                report.failed.append((str(source), "no usable .pyc"))
                continue
            try:
                py_compile.compile(
                    str(source),
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
                )
            except py_compile.PyCompileError as exc:
                report.failed.append((str(source), exc.msg.strip().splitlines()[-1]))
            except OSError as exc:
                report.failed.append((str(source), f"{type(exc).__name__}: {exc.strerror}"))
            else:
                report.compiled += 1
    return report
