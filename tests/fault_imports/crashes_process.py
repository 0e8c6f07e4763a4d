"""Dereferences NULL at import: a segfault.  Only ever listed for process (trio) actors -- in a
subinterpreter it would take the whole test process down."""

import ctypes

ctypes.string_at(0)
