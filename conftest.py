"""Suite-wide settings live in pyproject.toml; the subint_spawn pytest plugin (installed with
the package) supplies the backend/config parametrization, the leak check and hang dumps."""
