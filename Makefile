# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-postgres lint bench screenshots clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m project.launch

test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# The same suite on PostgreSQL (127.0.0.1:5432 by default).
test-postgres: $(VENV)/.installed
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/task_admin} $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: $(VENV)/.installed
	$(PY) -m bench

# The README's pictures, taken by the browser tests (headless Chromium, a real worker).
screenshots: $(VENV)/.installed
	TASK_ADMIN_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/browser \
		-k "nested_chord or typed_override or compose_and_run"

clean:
	rm -rf $(VENV) build dist *.egg-info
