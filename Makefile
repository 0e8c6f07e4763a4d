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

# tractor, for the tractor spawn method's tests (subint_spawn itself never needs it): the pinned
# commit, from the archive beside this checkout when there is one, else from its git URL.  Its
# source tree (tractor's own tests included) is unpacked into the venv and installed from there.
TRACTOR_COMMIT  := e0d181b083929c8eb50bdf657c5f3fc8b9bd83c8
TRACTOR_GIT     := https://github.com/goodboy/tractor
TRACTOR_ARCHIVE := $(firstword $(wildcard ../shared/tractor/tractor-*.tar.gz))
TRACTOR_SRC     := $(VENV)/tractor-src
TRACTOR_STAMP   := $(VENV)/.tractor-installed

.PHONY: venv tractor lint test demo bench clean distclean

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

# The stamp depends on the project's stamp: a rebuilt venv gets tractor again.
tractor: venv
	@$(MAKE) --no-print-directory -s $(TRACTOR_STAMP)

$(TRACTOR_STAMP): $(STAMP) $(TRACTOR_ARCHIVE)
	@set -euo pipefail; \
	uv=$$($(PROVISION) --uv); \
	rm -rf $(TRACTOR_SRC); \
	if [ -n "$(TRACTOR_ARCHIVE)" ]; then \
	    echo "installing tractor from $(TRACTOR_ARCHIVE)" >&2; \
	    mkdir -p $(TRACTOR_SRC); \
	    tar -xzf "$(TRACTOR_ARCHIVE)" -C $(TRACTOR_SRC) --strip-components=1; \
	else \
	    echo "installing tractor $(TRACTOR_COMMIT) from $(TRACTOR_GIT)" >&2; \
	    git clone -q $(TRACTOR_GIT) $(TRACTOR_SRC); \
	    git -C $(TRACTOR_SRC) checkout -q $(TRACTOR_COMMIT); \
	fi; \
	VIRTUAL_ENV="$(CURDIR)/$(VENV)" "$$uv" pip install -q --compile-bytecode $(TRACTOR_SRC); \
	$(PY) -m compileall -q $(TRACTOR_SRC)/tractor $(TRACTOR_SRC)/tests >/dev/null 2>&1; \
	touch $@

# Lint and format are part of the tests: a change that breaks either fails CI like a test.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: venv tractor lint
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
