"""Raises a custom ``BaseException`` subclass at import."""

from tests.fault_samples import Meltdown

raise Meltdown("raises_meltdown: a BaseException subclass at import")
