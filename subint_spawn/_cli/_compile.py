"""``python -m subint_spawn compile``: byte-compile what every actor imports, once.

Writes the ``.pyc`` files that ``pip install`` writes at install time and ``uv pip install``
only with ``--compile-bytecode``, for subint_spawn and every package it depends on, into their
``__pycache__`` directories.  Run by the user, so it may write into site-packages; nothing
in subint_spawn does that on its own (see :mod:`.._core._bytecode`).
"""

from __future__ import annotations

import sys

from .._core._bytecode import compile_runtime

__all__ = ["main"]


def main(*, check: bool = False) -> int:
    """Compile (or with ``check``, only look); exit status 1 if anything is left without a
    usable ``.pyc``."""
    report = compile_runtime(check_only=check)
    packages = ", ".join(report.distributions)
    total = report.compiled + report.already + len(report.failed)
    if check:
        if report.failed:
            print(
                f"{len(report.failed)} of {total} modules of {packages} have no usable .pyc; "
                "every actor compiles them from source. Fix: python -m subint_spawn compile"
            )
            for source, _ in report.failed[:10]:
                print(f"  {source}")
            return 1
        print(f"all {total} modules of {packages} have a usable .pyc")
        return 0
    print(
        f"compiled {report.compiled} modules of {packages} "
        f"({report.already} already were); spawns no longer compile them"
    )
    if not report.failed:
        return 0
    print(f"{len(report.failed)} could not be compiled:", file=sys.stderr)
    for source, why in report.failed[:20]:
        print(f"  {source}: {why}", file=sys.stderr)
    if any("Permission" in why for _, why in report.failed):
        print(
            "Run it as the user that installed these packages (the .pyc files go next to them).",
            file=sys.stderr,
        )
    return 1
