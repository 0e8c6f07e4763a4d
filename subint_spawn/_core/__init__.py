"""Private mechanics: the subinterpreter driver, the IPC channel and the actor runtime."""
