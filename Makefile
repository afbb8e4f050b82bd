# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-postgres test-rabbitmq matrix lint bench clean messages screenshots

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

# The integration tests (tests/integration) with RabbitMQ as the broker (a vhost of the run's
# own; see tests/support/rabbitmq_plugin.py), at TASK_ADMIN_RABBITMQ_URL (default
# amqp://guest:guest@127.0.0.1:5672/). tests/reliability stays on Redis: it breaks Redis on purpose.
test-rabbitmq: $(VENV)/.installed
	TASK_ADMIN_TEST_BROKER=rabbitmq $(PY) -m pytest tests/integration -m "not newuser" $(PYTEST_ARGS)

# The supported-versions matrix (noxfile.py); its virtualenvs are kept in NOX_ENVDIR between runs.
NOX_ENVDIR ?= $(HOME)/.cache/task_admin/nox
matrix: $(VENV)/.installed
	$(VENV)/bin/nox --envdir $(NOX_ENVDIR) $(NOX_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# Update the catalogues from the code (then translate what is new or fuzzy in
# task_admin/locale/es/LC_MESSAGES/django.po and djangojs.po) and compile them; the .mo files
# are committed. djangojs holds the strings of the app's scripts (static/task_admin/*.js),
# served by its JavaScript catalogue (task_admin/admin/catalogue.py).
messages: $(VENV)/.installed
	cd task_admin && ../$(VENV)/bin/django-admin makemessages -l es -l en --no-obsolete --no-location
	cd task_admin && ../$(VENV)/bin/django-admin makemessages -d djangojs -l es -l en --no-obsolete --no-location
	cd task_admin && ../$(VENV)/bin/django-admin compilemessages

bench: $(VENV)/.installed
	$(PY) -m bench

# The pictures of the README and of docs/, taken by the browser tests (headless Chromium,
# Debian's chromium and chromium-driver, a real worker): the README's, and docs/screenshots/
# (every admin page of the app, with the demo workflows and real runs).
screenshots: $(VENV)/.installed
	TASK_ADMIN_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/browser \
		-k "nested_chord or typed_override or compose_and_run or screenshot_every_admin_page \
		or workers_queues_and_a_task_by_id or tutorial_group_chain_and_chord \
		or run_page_updates_live or typed_fields_in_a_task_node"

clean:
	rm -rf $(VENV) build dist *.egg-info
