"""Two requests at once: the row locks keep one re-run and one scheduled run per decision.

On SQLite the IMMEDIATE transactions already serialise writers; on PostgreSQL (CI's second
pass) it is ``select_for_update`` that does.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from task_admin import scheduling, services
from task_admin.compile import workflow_to_spec
from task_admin.models import NodeState, Overlap, RunStatus, WorkflowRun
from tests.support.factories import SUMA, invocation, schedule, workflow

pytestmark = pytest.mark.django_db(transaction=True)


def at_once(function, count=2):
    """Call ``function`` from ``count`` threads together; its results or exceptions."""
    outcomes = []
    barrier = threading.Barrier(count)

    def call():
        barrier.wait()
        try:
            outcomes.append(function())
        except Exception as exc:  # the refusals are what we look at
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.fixture
def slow_start(monkeypatch):
    """Hold each run's transaction open a while, so that two decisions overlap; send nothing."""
    start = services._record_and_send

    def held(*args, **kwargs):
        run = start(*args, **kwargs)
        time.sleep(0.5)
        return run

    monkeypatch.setattr(services, "_record_and_send", held)
    monkeypatch.setattr(services, "dispatch", lambda run_id, signature: None)


def test_two_reruns_at_once_start_one(slow_start):
    wf = workflow("half", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    run = services._record_and_send(
        workflow_to_spec(wf), workflow=wf, overrides={}, user=None, trigger="manual",
        detail="", app=None,
    )
    run.nodes.update(state=NodeState.FAILURE)
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_nodes=2)
    run.refresh_from_db()
    outcomes = at_once(lambda: services.rerun_from_failure(run))
    assert WorkflowRun.objects.filter(rerun_of=run).count() == 1, outcomes
    assert sum(isinstance(o, services.CannotRun) for o in outcomes) == 1


def test_two_firings_at_once_of_a_skip_schedule_start_one(slow_start):
    wf = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    sched = schedule(wf, overlap=Overlap.SKIP)
    outcomes = at_once(lambda: scheduling.fire(sched.pk))
    assert WorkflowRun.objects.filter(schedule=sched).count() == 1, outcomes
    assert sum(o.startswith("started run") for o in outcomes) == 1, outcomes


def test_two_beats_sending_one_due_time_at_once_start_one_run(slow_start):
    # "allow" would start a run per message: only the claim on the due time stops the second.
    wf = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    sched = schedule(wf, overlap=Overlap.ALLOW)
    outcomes = at_once(lambda: scheduling.fire(sched.pk))
    assert WorkflowRun.objects.filter(schedule=sched).count() == 1, outcomes
    assert sorted(outcomes)[0] == "already fired for this due time", outcomes
    assert sched.firings.get().run == WorkflowRun.objects.get(schedule=sched)
