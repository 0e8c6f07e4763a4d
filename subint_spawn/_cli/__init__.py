"""The ``python -m subint_spawn`` command line: ``demo``, ``bench`` and ``soak``.

Kept out of the library proper: nothing in ``subint_spawn`` imports this package.
"""
