"""Module-level async generators and context functions that actors run in the stream tests."""

from __future__ import annotations

from typing import Any

import trio

import subint_spawn


async def count(n: int) -> Any:
    for i in range(n):
        yield i


async def count_forever() -> Any:
    i = 0
    while True:
        yield i
        i += 1


async def count_then_fail(n: int) -> Any:
    for i in range(n):
        yield i
    raise ValueError(f"generator failed after {n}")


def not_a_generator() -> int:
    return 1


async def echo_context(ctx: subint_spawn.Context, greeting: str = "hello") -> int:
    """started(greeting), then echo every item back; return how many were echoed."""
    await ctx.started(greeting)
    echoed = 0
    async with ctx.open_stream() as stream:
        async for item in stream:
            await stream.send(item)
            echoed += 1
    return echoed


async def result_context(ctx: subint_spawn.Context, value: int) -> int:
    await ctx.started(value)
    return value * 2


async def failing_context(ctx: subint_spawn.Context, before_started: bool) -> None:
    if before_started:
        raise ValueError("failed before started")
    await ctx.started()
    raise ValueError("failed after started")


async def self_cancelling_context(ctx: subint_spawn.Context) -> None:
    await ctx.started()
    await ctx.cancel()
    await trio.sleep_forever()


async def sleeping_context(ctx: subint_spawn.Context) -> None:
    await ctx.started("sleeping")
    await trio.sleep_forever()


async def flood_context(ctx: subint_spawn.Context, n: int) -> int:
    """Send n items as fast as credit allows; return how many were sent."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
    return n


async def return_without_reading(ctx: subint_spawn.Context) -> str:
    """Start, open the stream, never read it, and return."""
    await ctx.started()
    async with ctx.open_stream():
        pass
    return "done"


class _NoWire:
    """A value neither pickle nor msgpack can carry."""

    def __reduce__(self) -> object:
        raise TypeError("this object refuses to be pickled")


async def count_then_unsendable(n: int) -> Any:
    for i in range(n):
        yield i
    yield _NoWire()
