"""``python -m subint_spawn demo|bench|soak|compile``: a thin front door; the work is in :mod:`._cli`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable


def _choices(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type for a comma-separated subset of ``allowed``, checked at parse time."""

    def parse(text: str) -> tuple[str, ...]:
        picked = tuple(part.strip() for part in text.split(",") if part.strip())
        unknown = [p for p in picked if p not in allowed]
        if unknown or not picked:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(allowed)}")
        return picked

    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m subint_spawn",
        description="trio actors, each in its own CPython subinterpreter",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="a guided tour: parallelism, remote errors, killing a stuck actor")
    bench = sub.add_parser("bench", help="measure spawn, round-trip and stuck-actor reclaim costs")
    bench.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    bench.add_argument(
        "--backends",
        type=_choices(("subint", "trio")),
        default=("subint", "trio"),
        help="default: subint,trio",
    )
    bench.add_argument(
        "--configs",
        type=_choices(("isolated", "legacy")),
        default=("isolated", "legacy"),
        help="subint interpreter configs (default: isolated,legacy); the trio backend has none",
    )
    bench.add_argument(
        "--repeat", type=_positive, default=None, help="samples per spawn/reclaim metric"
    )
    bench.add_argument("--quick", action="store_true", help="few samples: a smoke run in seconds")
    soak = sub.add_parser(
        "soak", help="many spawn/run/cancel cycles; fails on leaked threads, interpreters or fds"
    )
    soak.add_argument("--cycles", type=_positive, default=1000, help="default: 1000")
    soak.add_argument(
        "--backends",
        type=_choices(("subint", "trio")),
        default=("subint",),
        help="default: subint",
    )
    soak.add_argument(
        "--configs",
        type=_choices(("isolated", "legacy")),
        default=("isolated", "legacy"),
        help="subint interpreter configs (default: isolated,legacy)",
    )
    soak.add_argument(
        "--concurrency", type=_positive, default=1, help="cycles in flight at once (default: 1)"
    )
    soak.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    compile_ = sub.add_parser(
        "compile",
        help="byte-compile subint_spawn and its dependencies once, so actors do not compile "
        "them at every spawn (for installs that wrote no .pyc files)",
    )
    compile_.add_argument(
        "--check",
        action="store_true",
        help="only report modules without a usable .pyc (exit 1 if any)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from ._cli import _demo

        return _demo.main()
    if args.command == "compile":
        from ._cli import _compile

        return _compile.main(check=args.check)
    if args.command == "soak":
        from ._cli import _soak

        soak_settings = _soak.SoakSettings(
            cycles=args.cycles,
            backends=args.backends,
            configs=args.configs,
            concurrency=args.concurrency,
        )
        return _soak.main(soak_settings, as_json=args.json)
    from ._cli import _bench

    if args.quick:
        settings = _bench.BenchSettings.quick(args.backends, args.configs)
    else:
        settings = _bench.BenchSettings(args.backends, args.configs)
    if args.repeat is not None:
        settings = dataclasses.replace(
            settings, repeat=args.repeat, batches=max(5, 2 * args.repeat)
        )
    return _bench.main(settings, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
