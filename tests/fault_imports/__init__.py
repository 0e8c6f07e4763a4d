"""Modules whose import is a fault: actors list them in ``enable_modules`` (tests/test_faults.py).

Never import these anywhere else -- importing one raises, exits or blocks, on purpose.
"""
