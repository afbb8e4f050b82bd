"""``bench/workflow_pages.py`` measures the same when it runs again on the same database.

``make bench`` keeps its PostgreSQL database between runs. The pages' typed calls used to stay
behind: the next run found its "new" calls saved already (it reported "0 calls typed in") and
opened pages that listed thousands more invocations each time.
"""

import importlib
import os

import pytest

from task_admin.models import TaskInvocation, Workflow
from tests.support.factories import SUMA


@pytest.fixture
def pages(monkeypatch):
    # Importing the module sets DATABASE_URL when it is missing (its own SQLite file, for a run
    # from the command line): kept from the workers this test run starts later.
    if "DATABASE_URL" not in os.environ:
        monkeypatch.setenv("DATABASE_URL", "sqlite:///unused-by-this-test")
    module = importlib.import_module("bench.workflow_pages")
    monkeypatch.setattr(module, "SIZES", (40,))
    monkeypatch.setattr(module, "ROUNDS", 1)
    monkeypatch.setattr(module, "TASK", SUMA)  # the same function, as the test project's task
    return module


@pytest.mark.django_db
def test_a_second_run_measures_the_same_cases(pages):
    first = [case for case, _seconds, _queries in pages.rows()]
    invocations = TaskInvocation.objects.count()
    second = [case for case, _seconds, _queries in pages.rows()]
    assert second == first
    assert "preview 40 nodes, 38 calls typed in" in second
    # What a run made besides its own shared invocations is gone with its workflow.
    assert TaskInvocation.objects.count() == invocations == pages.INVOCATIONS
    assert not Workflow.objects.filter(name__startswith="bench ").exists()
