# Project environment: .venv with Python >= 3.14, the package installed
# editable with its dev extra.  `make test` on a fresh clone needs nothing
# else: scripts/provision_python.sh finds or provisions the interpreter.

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.subint-spawn-installed
PROVISION  := scripts/provision_python.sh
PYTEST_ARGS ?=
# uv warns when its cache and .venv are on different filesystems.
export UV_LINK_MODE ?= copy

.PHONY: venv test demo bench clean distclean

# Always checks (cheaply) that the venv's interpreter still works, e.g. after
# its base interpreter's cache was wiped; if not, forces a rebuild.
venv:
	@$(PY) -c 'import sys; assert sys.version_info >= (3, 14)' >/dev/null 2>&1 || rm -f $(STAMP)
	@$(MAKE) --no-print-directory -s $(STAMP)
	@# Editable code gets no .pyc under PYTHONDONTWRITEBYTECODE, and every new interpreter
	@# would compile it again; stale .pyc files are ignored by mtime, so this is always safe.
	@$(PY) -m compileall -q subint_spawn tests >/dev/null

$(STAMP): pyproject.toml $(PROVISION)
	@set -euo pipefail; \
	uv=$$($(PROVISION) --uv); \
	if ! $(PY) -c 'import sys; assert sys.version_info >= (3, 14)' >/dev/null 2>&1; then \
	    python=$$($(PROVISION)); \
	    echo "creating $(VENV) with $$python" >&2; \
	    rm -rf $(VENV); \
	    "$$uv" venv -q --python "$$python" $(VENV); \
	fi; \
	VIRTUAL_ENV="$(CURDIR)/$(VENV)" "$$uv" pip install -q --compile-bytecode -e '.[dev]'; \
	touch $@

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(PY) -m subint_spawn demo

bench: venv
	$(PY) -m subint_spawn bench

clean:
	rm -rf .pytest_cache .ruff_cache build dist
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

# Also drops the venv (the provisioned interpreter cache is left alone).
distclean: clean
	rm -rf $(VENV)
