# Webrana: the two commands are `make run` and `make test`. Needs only Python >= 3.11, pip and a C compiler.
#
#   make run     create .venv with what running needs, start embedded PostgreSQL + Redis (unless DATABASE_URL /
#                REDIS_URL are set), migrate, create the dev admin, start webrana-proxy and webrana-dashboard
#                talking to the real providers; Ctrl-C stops all
#   make demo    the same, offline: answers come from local fake providers (tests/fakes), the console says so
#   make test    the test and dev tools too, the same services, then the whole test suite (PYTEST_ARGS="-k foo -x")
#   make lint    ruff + mypy
#   make bench   the gateway overhead benchmark
#   make prices  regenerate the vendored price data from genai-prices and report what is stale
#   make clean   remove .venv and .webrana (the embedded databases and the dev secrets)
#
# `run`/`demo` install the project with its `local` extra (embedded PostgreSQL and Redis); `test`/`lint`/`bench`
# add the `test` and `dev` extras. VENV=/path/to/venv uses an existing, already-installed virtualenv as is (no pip
# install), e.g. in tests.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

ifeq ($(VENV),.venv)
LOCAL_READY := .venv/.installed-local
TEST_READY := .venv/.installed-test
else
LOCAL_READY :=
TEST_READY :=
endif

.PHONY: run demo test lint bench clean venv .venv prices prices-check

run: $(LOCAL_READY)
	$(PY) devstack.py run

demo: $(LOCAL_READY)
	$(PY) devstack.py demo

test: $(TEST_READY)
	$(PY) devstack.py test $(PYTEST_ARGS)

lint: $(TEST_READY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy devstack.py

bench: $(TEST_READY)
	$(PY) -m bench

venv .venv: $(TEST_READY)

.venv/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Webrana needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv .venv
	.venv/bin/python -m pip install --quiet --upgrade pip

# Each re-installs whenever pyproject.toml changes; a stamp is written only after a successful install.
.venv/.installed-local: pyproject.toml | .venv/bin/python
	.venv/bin/python -m pip install -e '.[local]'
	touch $@

# Everything `local` has and more, so it stands for that stamp too.
.venv/.installed-test: pyproject.toml | .venv/bin/python
	.venv/bin/python -m pip install -e '.[local,test,dev]'
	touch $@ .venv/.installed-local

clean:
	rm -rf .venv .webrana .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Regenerate the vendored price data from pydantic's genai-prices (installed here for this step only: it is not
# a runtime dependency) and report staleness: data older than 45 days, listed models past their retires_on.
# `make prices-check` only reports. See webrana_proxy/providers/pricedata/.
GENAI_PRICES ?= genai-prices==0.2.5
prices: $(TEST_READY)
	$(VENV)/bin/python -m pip install --quiet '$(GENAI_PRICES)'
	$(PY) prices/generate.py

prices-check:
	$(PY) prices/generate.py --check
