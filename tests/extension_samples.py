"""Actor-side functions for tests/test_c_extensions.py: use a C extension for real.

The extension is imported inside the call, so an actor can start without it and the import
then fails (or not) in a call.
"""

from __future__ import annotations

import importlib


def use(module: str) -> str:
    """Import ``module``, do a little work with it, and return ``"ok"``."""
    if module == "numpy":
        import numpy

        assert int(numpy.arange(4).sum()) == 6
        assert float((numpy.ones((8, 8)) @ numpy.ones((8, 8)))[0, 0]) == 8.0  # through BLAS
    elif module == "pydantic_core":
        from pydantic_core import SchemaValidator

        assert SchemaValidator({"type": "int"}).validate_python("3") == 3
    elif module == "orjson":
        import orjson

        assert orjson.loads(orjson.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    else:
        importlib.import_module(module)
    return "ok"
