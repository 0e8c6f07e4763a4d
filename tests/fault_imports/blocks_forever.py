"""Never finishes importing: the actor never answers its parent's first message.

A Python loop of short sleeps, so the kill escalation's injected exception can land (a single
long C call would be abandoned instead, which is a different fault).
"""

import time

while True:
    time.sleep(0.01)
