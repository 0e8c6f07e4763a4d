"""The ``python -m subint_spawn`` command line: ``demo`` and ``bench``.

Kept out of the library proper: nothing in ``subint_spawn`` imports this package.
"""
