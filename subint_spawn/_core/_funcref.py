"""Functions cross interpreter and process boundaries by name: module plus qualified name.

Anything that cannot be found again by name on the other side (a lambda, a function defined
inside another function, a ``__main__`` that is neither a script nor an importable module) is
refused here, before anything starts, with an error that says how to fix it.

Functions of the program's main module travel too, as with multiprocessing's ``spawn``:

* run as ``python -m pkg.app``, the main module is importable by its real name
  (``__main__.__spec__.name``), and the actor imports ``pkg.app``;
* run as ``python app.py``, the actor loads the parent's script from its path under the name
  ``__mp_main__``.  Either way the module's ``__name__`` in the actor is not ``"__main__"``, so
  its ``if __name__ == "__main__":`` block does not run there.

The parent never imports its main module a second time to check such a function: it looks it
up in the ``__main__`` it runs.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "SCRIPT_MODULE",
    "FunctionRef",
    "is_async_function",
    "is_async_generator_function",
    "load_module",
    "main_module_ref",
    "ref_of",
    "resolve",
]

FunctionRef = tuple[str, str]
"""``(module, qualname)`` of a module-level function.  ``module`` is a module name, or
``SCRIPT_PREFIX`` followed by the absolute path of the parent's main script."""

#: The name a parent's main script is loaded under in an actor (multiprocessing's choice).
SCRIPT_MODULE = "__mp_main__"
#: ``module`` of a function defined in the parent's main script: this, then the script's path.
#: (``@`` cannot occur in a module name, so a ref cannot be mistaken for one.)
SCRIPT_PREFIX = "__main__@"

_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200


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
            f"cannot send a lambda ({qualname}, in {_file_of(module)}) to an actor: define it "
            "with `def` at module level"
        )
    if "<locals>" in qualname:
        raise TypeError(
            f"cannot send {qualname!r} to an actor: it is defined inside another function; "
            f"define it at module level in {_file_of(module)}"
        )
    try:
        if module == "__main__":
            ref_module = main_module_ref()
            found = _walk(sys.modules["__main__"], qualname)
        elif module == SCRIPT_MODULE and hasattr(sys.modules.get(module), "__file__"):
            # This actor loaded its parent's script; its own children load the same file.
            ref_module = SCRIPT_PREFIX + sys.modules[module].__file__
            found = _walk(sys.modules[module], qualname)
        else:
            ref_module = module
            found = resolve((module, qualname))
    except (ImportError, AttributeError) as exc:
        raise TypeError(f"{module}.{qualname} cannot be found by name again ({exc})") from None
    if found is not fn and getattr(found, "__wrapped__", None) is not fn:
        raise TypeError(
            f"{module}.{qualname} names a different object than the one given; pass the "
            "module-level function itself"
        )
    return ref_module, qualname


def main_module_ref() -> str:
    """How an actor finds the parent's ``__main__``: its real module name, or its script."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name != "__main__":
        return str(spec.name)  # python -m pkg.app
    path = getattr(main, "__file__", None)
    if isinstance(path, str) and path.endswith(".py"):
        return SCRIPT_PREFIX + os.path.abspath(path)  # python app.py (or a directory's __main__)
    raise TypeError(
        "cannot send a function defined in this __main__ to an actor: it is not a script file "
        "or an importable module (an interactive session or `python -c`); define the function "
        "in a module and import it"
    )


def resolve(ref: FunctionRef) -> Callable[..., Any]:
    """Import ``module`` and walk ``qualname`` to the function."""
    module, qualname = ref
    return _walk(load_module(module), qualname)  # type: ignore[no-any-return]


def load_module(name: str) -> Any:
    """``importlib.import_module``, plus the parent's main script by path (see the module's
    docstring)."""
    if name.startswith(SCRIPT_PREFIX):
        return _load_script(name[len(SCRIPT_PREFIX) :])
    return importlib.import_module(name)


def _load_script(path: str) -> Any:
    loaded = sys.modules.get(SCRIPT_MODULE)
    if loaded is not None:
        if getattr(loaded, "__file__", None) != path:
            raise ImportError(
                f"this actor already loaded {loaded.__file__!r} as {SCRIPT_MODULE}; it cannot also "
                f"load {path!r}"
            )
        return loaded
    import importlib.util

    spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the parent's main script {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SCRIPT_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[SCRIPT_MODULE]
        raise
    return module


def _walk(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _file_of(module: str) -> str:
    """Where to define a function: the file of ``module`` if it has one, else its name."""
    path = getattr(sys.modules.get(module), "__file__", None)
    return os.path.basename(path) if isinstance(path, str) else repr(module)


def is_async_function(fn: Any) -> bool:
    """``inspect.iscoroutinefunction`` without importing inspect (~20 ms in a fresh interpreter).

    A callable without Python code (a builtin) is reported as not async.
    """
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def is_async_generator_function(fn: Any) -> bool:
    """``inspect.isasyncgenfunction``, likewise without inspect."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and bool(code.co_flags & _CO_ASYNC_GENERATOR)
