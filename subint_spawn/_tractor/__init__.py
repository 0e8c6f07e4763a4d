"""tractor's ``subint`` spawn method, run by the driver (the public door is ``subint_spawn.tractor``)."""
