"""Imported during a boot's warm-up: records what ``ctypes.util.find_library`` answered then."""

import ctypes.util

PTHREAD_AT_IMPORT = ctypes.util.find_library("pthread")


def find_library_now() -> tuple[str | None, str | None, str]:
    """(answer at import, answer now, the function's module): after the boot, the real one."""
    return (
        PTHREAD_AT_IMPORT,
        ctypes.util.find_library("pthread"),
        ctypes.util.find_library.__module__,
    )
