"""Imported during a boot: blocks until a byte arrives on the fd named by the environment
(a boot that takes as long as the test wants)."""

import os

os.read(int(os.environ["SUBINT_SPAWN_TEST_RELEASE_FD"]), 1)
