"""Calls ``os._exit`` at import: ends a process actor; refused in a subinterpreter actor."""

import os

os._exit(5)
