"""Give this test run a Redis database of its own, before Django reads its settings.

Loaded early with ``-p tests.support.redis_plugin`` (see setup.cfg) so REDIS_URL is set before
pytest-django imports the settings. Uses REDIS_URL (default 127.0.0.1:6379) when it answers and
claims a free database number there; otherwise starts a server and uses database 0 of it.
"""

from __future__ import annotations

import os
import secrets
import sys

import pytest

# Importing ``project`` runs project/celery.py, whose setdefault would otherwise choose the demo
# settings before pytest-django reads setup.cfg.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from project import localredis

_key = pytest.StashKey()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if os.environ.get("TASK_ADMIN_TEST_REDIS"):
        return  # a parent test process already set things up
    local = localredis.ensure(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    token = secrets.token_hex(8)
    if local.process is None:
        db = localredis.claim_database(local.url, token)
        message = f"{local.how}, database {db}"
    else:
        db = 0
        message = local.how
    url = localredis.with_db(local.url, db)
    os.environ["REDIS_URL"] = os.environ["TASK_ADMIN_TEST_REDIS"] = url
    early_config.stash[_key] = (local, url, token)
    print(f"task_admin tests: Redis: {message}", file=sys.stderr)


def pytest_unconfigure(config):
    found = config.stash.get(_key, None)
    if found is None:
        return
    local, url, token = found
    if local.process is None:
        localredis.release_database(url, token)
    local.stop()
    os.environ.pop("TASK_ADMIN_TEST_REDIS", None)
