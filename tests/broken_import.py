"""A module whose import fails inside the actor."""

raise ImportError("this module fails to import on purpose")
