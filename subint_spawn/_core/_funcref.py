"""Functions cross interpreter and process boundaries by name: module plus qualified name.

Anything else (a lambda, a closure, a function defined in ``__main__`` or inside another
function) cannot be found again on the other side, so it is refused here, before anything
starts, with an error that says how to fix it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["FunctionRef", "is_async_function", "ref_of", "resolve"]

FunctionRef = tuple[str, str]
"""``(module, qualname)`` of a module-level function."""


def ref_of(fn: Callable[..., Any]) -> FunctionRef:
    """The importable name of ``fn``; ``TypeError`` naming the fix when it has none."""
    if not callable(fn):
        raise TypeError(f"expected a module-level function, got {fn!r}")
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(f"{fn!r} has no importable name: pass a function defined at module level")
    if "<lambda>" in qualname:
        raise TypeError(
            f"cannot send a lambda ({module}.{qualname}) to an actor: define it with `def` at "
            "module level in an importable module"
        )
    if "<locals>" in qualname:
        raise TypeError(
            f"cannot send {qualname!r} to an actor: it is defined inside another function; move "
            f"it to module level in {module!r}"
        )
    if module == "__main__":
        raise TypeError(
            f"cannot send {qualname!r} to an actor: it is defined in __main__, which actors do "
            "not share; move it to an importable module and import it from your script"
        )
    try:
        found = resolve((module, qualname))
    except (ImportError, AttributeError) as exc:
        raise TypeError(f"{module}.{qualname} cannot be found by name again ({exc})") from None
    if found is not fn and getattr(found, "__wrapped__", None) is not fn:
        raise TypeError(
            f"{module}.{qualname} names a different object than the one given; pass the "
            "module-level function itself"
        )
    return module, qualname


def resolve(ref: FunctionRef) -> Callable[..., Any]:
    """Import ``module`` and walk ``qualname`` to the function."""
    module_name, qualname = ref
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def is_async_function(fn: Any) -> bool:
    """``inspect.iscoroutinefunction`` without importing inspect (~20 ms in a fresh interpreter).

    A callable without Python code (a builtin) is reported as not async.
    """
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and bool(code.co_flags & 0x80)  # CO_COROUTINE
