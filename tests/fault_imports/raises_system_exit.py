"""Ends the interpreter's import with ``SystemExit``, as a script-style module calling
``sys.exit()`` at top level would."""

import sys

sys.exit("raises_system_exit: sys.exit() at import")
