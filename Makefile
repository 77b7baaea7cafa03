# Webrana: the two commands are `make run` and `make test`. Needs only Python >= 3.11, pip and a C compiler.
#
#   make run     create .venv, start embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are set),
#                migrate, create the dev admin, start webrana-proxy and webrana-dashboard; Ctrl-C stops all
#   make test    the same services, then the whole test suite (PYTEST_ARGS="-k foo -x" to narrow it)
#   make lint    ruff + mypy
#   make bench   the gateway overhead benchmark
#   make clean   remove .venv and .webrana (the embedded databases and the dev secrets)
#
# VENV=/path/to/venv uses an existing, already-installed virtualenv as is (no pip install), e.g. in tests.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

ifeq ($(VENV),.venv)
VENV_READY := .venv/.installed
else
VENV_READY :=
endif

.PHONY: run test lint bench clean venv .venv

run: $(VENV_READY)
	$(PY) devstack.py run

test: $(VENV_READY)
	$(PY) devstack.py test $(PYTEST_ARGS)

lint: $(VENV_READY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy devstack.py

bench: $(VENV_READY)
	$(PY) -m bench

venv .venv: $(VENV_READY)

# Re-installs whenever pyproject.toml changes; the stamp is written only after a successful install.
.venv/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Webrana needs Python >= 3.11; set PYTHON=python3.11")'
	test -x .venv/bin/python || $(PYTHON) -m venv .venv
	.venv/bin/python -m pip install --quiet --upgrade pip
	.venv/bin/python -m pip install -e '.[test,dev]'
	touch $@

clean:
	rm -rf .venv .webrana .pytest_cache .mypy_cache .ruff_cache .hypothesis
