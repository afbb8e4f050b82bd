"""``task_admin.services``: preparing, starting, revoking, re-running and reconciling runs,
copying workflows.

The canvas is not sent here unless a test says so (on_commit callbacks are captured, not run);
runs carried through by a real worker are in tests/integration/test_runs.py.
"""

from unittest import mock

import pytest
from django.urls import reverse

from task_admin import canvas, compile, registry, services, tracking
from task_admin.canvas.build import to_python
from task_admin.compile import InvalidWorkflow, workflow_to_spec
from task_admin.models import NodeState, RunStatus, Trigger, Workflow, WorkflowNode, WorkflowRun
from tests.support.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def adds():
    return workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))


def test_invalid_workflow_is_not_saved_as_a_run_nor_sent():
    two, four = invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4], name="ff")
    wf = workflow("bad-chain", ("chain", [two, four]))
    with pytest.raises(InvalidWorkflow, match=r"root\.1"):
        services.run_workflow(wf)
    assert not WorkflowRun.objects.exists()


def test_overrides_must_be_objects_of_kwargs(adds):
    for bad in (5, "x", [], None):
        with pytest.raises(InvalidWorkflow, match=r"root\.0: overrides must be a JSON object"):
            services.apply_overrides(workflow_to_spec(adds), {"root.0": bad})


def sent_run(capture, wf, **kwargs) -> tuple[WorkflowRun, list]:
    with capture(execute=False) as callbacks:
        run = services.run_workflow(wf, **kwargs)
    return run, callbacks


def test_a_run_is_recorded_with_its_nodes_and_sent_only_after_commit(
        django_capture_on_commit_callbacks):
    adds = workflow("adds", ("chain", [invocation(SUMA, [2], {"b": 2}), invocation(SUMA, [4])]))
    run, callbacks = sent_run(django_capture_on_commit_callbacks, adds,
                              overrides={"root.0": {"b": 5}})
    # One callback, the dispatch: a worker never sees a task whose run is not committed.
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert (run.status, run.trigger, run.total_nodes, run.workflow_name) == (
        RunStatus.PENDING, Trigger.MANUAL, 2, "adds")
    assert run.overrides == {"root.0": {"b": 5}}
    assert run.spec["root"]["tasks"][0]["kwargs"] == {"b": 5}
    nodes = list(run.nodes.order_by("position"))
    assert [(n.path, n.task_name, n.state) for n in nodes] == [
        ("root.0", SUMA, NodeState.PENDING), ("root.1", SUMA, NodeState.PENDING)]
    assert [n.node for n in nodes] == list(adds.nodes.filter(kind="task").order_by("position"))
    assert len({n.task_id for n in nodes}) == 2


def test_overrides_merge_into_the_named_leaf_only(adds):
    spec = workflow_to_spec(adds)
    assert services.apply_overrides(spec, {}) is spec
    merged = services.apply_overrides(spec, {"root.0": {"b": 3}})
    assert [t.kwargs for t in merged.tasks] == [{"b": 3}, {}]
    with pytest.raises(InvalidWorkflow, match=r"root\.7: no task at this path"):
        services.apply_overrides(spec, {"root.7": {"b": 3}})


def test_a_disabled_workflow_is_refused_and_nothing_is_saved(adds):
    adds.enabled = False
    adds.save()
    with pytest.raises(services.CannotRun, match="“adds” is disabled"):
        services.run_workflow(adds)
    assert not WorkflowRun.objects.exists()


def test_start_from_code_checks_the_name_and_the_permission_and_logs(
        adds, django_user_model, django_capture_on_commit_callbacks):
    from django.contrib.admin.models import LogEntry
    from django.contrib.auth.models import Permission

    with pytest.raises(services.CannotRun, match="no workflow named “nope”"):
        services.start("nope")
    clerk = django_user_model.objects.create_user("clerk")
    with pytest.raises(services.CannotRun, match="clerk may not run workflows"):
        services.start("adds", user=clerk)
    assert not WorkflowRun.objects.exists()
    clerk.user_permissions.add(Permission.objects.get(codename="run_workflow"))
    clerk = django_user_model.objects.get(pk=clerk.pk)  # permissions are cached per instance
    with django_capture_on_commit_callbacks(execute=False):
        run = services.start("adds", user=clerk, detail="nightly script")
    assert (run.trigger, run.triggered_by, run.trigger_detail) == (
        Trigger.API, clerk, "nightly script")
    [entry] = LogEntry.objects.filter(object_id=str(run.pk))
    assert entry.user == clerk and "from code (nightly script)" in entry.change_message


def test_revoking_marks_waiting_nodes_and_leaves_a_started_one_to_report(
        adds, django_capture_on_commit_callbacks):
    run, _callbacks = sent_run(django_capture_on_commit_callbacks, adds)
    first, second = run.nodes.order_by("position")
    tracking.started(first.task_id, "w1", 1)
    assert services.revoke_run(run) == 1  # without terminate, a started task runs to its end
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (NodeState.STARTED, NodeState.REVOKED)
    assert second.exception == "revoked from the admin"
    assert services.revoke_run(run, terminate=True) == 1
    run.refresh_from_db()
    assert run.is_finished and run.status == RunStatus.REVOKED
    with pytest.raises(services.CannotRun, match="already finished"):
        services.revoke_run(run)


def test_rerun_refuses_unfinished_succeeded_and_disabled_runs(
        adds, django_capture_on_commit_callbacks):
    run, _callbacks = sent_run(django_capture_on_commit_callbacks, adds)
    with pytest.raises(services.CannotRun, match="has not finished yet"):
        services.rerun_from_failure(run)
    for node in run.nodes.order_by("position"):
        tracking.succeeded(node.task_id, 4, 0.01)
    run.refresh_from_db()
    with pytest.raises(services.CannotRun, match="nothing to re-run"):
        services.rerun_from_failure(run)
    run.status = RunStatus.FAILED
    run.save()
    adds.enabled = False
    adds.save()
    with pytest.raises(services.CannotRun, match="is disabled"):
        services.rerun_from_failure(run)
    assert not WorkflowRun.objects.filter(rerun_of=run).exists()


def test_rerun_keeps_what_succeeded_and_runs_the_rest_again(
        adds, django_capture_on_commit_callbacks):
    run, _callbacks = sent_run(django_capture_on_commit_callbacks, adds)
    first, second = run.nodes.order_by("position")
    tracking.succeeded(first.task_id, 4, 0.01)
    tracking.failed(second.task_id, "ValueError: no", "Traceback ...")
    run.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = services.rerun_from_failure(run)
    assert len(callbacks) == 1
    kept, redone = again.nodes.order_by("position")
    assert (kept.task_name, kept.reused_from) == (services.REPLAY_TASK, first)
    assert (redone.task_name, redone.reused_from) == (SUMA, None)
    assert (again.trigger, again.trigger_detail, again.rerun_of) == (
        Trigger.RERUN, f"#{run.pk}", run)
    assert again.note == (
        f"Re-run of #{run.pk}: 1 of 2 tasks run again; results kept: 1.")


def test_reconcile_settles_nodes_from_the_result_backend(
        adds, settings, django_capture_on_commit_callbacks):
    from django_celery_results.models import TaskResult

    run, _callbacks = sent_run(django_capture_on_commit_callbacks, adds)
    first, second = run.nodes.order_by("position")
    # Events not yet overdue: the result backend is not asked.
    TaskResult.objects.create(task_id=first.task_id, status="SUCCESS", result="4",
                              content_type="application/json", content_encoding="utf-8")
    assert services.reconcile_run(run) == 0
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RECONCILE_AFTER": 0}
    assert services.reconcile_run(run) == 1  # the second node is unknown to the backend
    first.refresh_from_db()
    assert (first.state, first.result) == (NodeState.SUCCESS, 4)
    TaskResult.objects.create(task_id=second.task_id, status="SUCCESS", result="8",
                              content_type="application/json", content_encoding="utf-8")
    finished = services.wait(run, timeout=5, interval=0.01)
    assert finished.status == RunStatus.SUCCEEDED
    assert services.reconcile_run(finished) == 0


def test_wait_gives_up_after_its_timeout(adds, django_capture_on_commit_callbacks):
    run, _callbacks = sent_run(django_capture_on_commit_callbacks, adds)
    with pytest.raises(TimeoutError, match=f"Run #{run.pk} has not finished after 0 seconds"):
        services.wait(run, timeout=0, interval=0.01)


# -- the one door: prepare_run, run_prepared ---------------------------------------------------


def test_one_post_to_run_compiles_checks_and_reads_the_allowed_tasks_once(
    admin_client, django_capture_on_commit_callbacks
):
    # Issue 9: one POST compiled the tree 3 times, validated it 3 times and read the allowed
    # tasks 4 times (the page's preview, the overrides form, then run_workflow).
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    with (
        mock.patch("task_admin.compile._Builder", wraps=compile._Builder) as compiles,
        mock.patch("task_admin.canvas.validate", wraps=canvas.validate) as checks,
        mock.patch.object(registry, "signatures", wraps=registry.signatures) as reads,
        django_capture_on_commit_callbacks(execute=False),
    ):
        response = admin_client.post(
            reverse("admin:task_admin_workflow_run", args=[wf.pk]),
            {"root.0": "{}", "root.1": '{"b": 1}'},
        )
    assert response.status_code == 302
    run = WorkflowRun.objects.get(workflow=wf)
    assert run.overrides == {"root.1": {"b": 1}}
    assert (compiles.call_count, checks.call_count, reads.call_count) == (1, 1, 1)


def test_a_refused_post_lists_the_problems_and_starts_nothing(
    admin_client, django_capture_on_commit_callbacks
):
    wf = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            reverse("admin:task_admin_workflow_run", args=[wf.pk]),
            {"root.0": "{}", "root.1": '{"zzz": 1}'},
        )
    assert response.status_code == 200
    assert response.context["form"].errors["root.1"]
    assert not WorkflowRun.objects.exists()


def test_prepare_run_gives_the_spec_or_one_exception_with_every_problem():
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [1])]))
    prepared = services.prepare_run(wf, {"root.1": {"b": 3}})
    assert [task.kwargs for _path, task in canvas.leaves(prepared.spec)] == [{}, {"b": 3}]
    with pytest.raises(services.CannotRun) as refused:
        services.prepare_run(wf, {"root.0": {"zzz": 1}, "root.1": {"yyy": 2}})
    assert isinstance(refused.value, services.WorkflowProblems)
    assert isinstance(refused.value, InvalidWorkflow)  # what ``start`` is documented to raise
    assert [p.path for p in refused.value.problems] == ["root.0", "root.1"]
    with pytest.raises(services.WorkflowProblems, match=r"root\.5: no task at this path"):
        services.prepare_run(wf, {"root.5": {}})


def test_a_disabled_workflow_is_refused_when_it_starts():
    # A tree may be checked while disabled (a schedule form does); it cannot start so.
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]), enabled=False)
    prepared = services.prepare_run(wf)
    with pytest.raises(services.CannotRun, match="disabled"):
        services.run_prepared(prepared)
    assert not WorkflowRun.objects.exists()


def test_copy_workflow_writes_one_insert_per_level(django_assert_max_num_queries):
    wf = workflow("deep", ("chain", [
        invocation(SUMA, [1, 1]),
        ("group", [invocation(SUMA, [2, 2]), ("chain", [invocation(SUMA, [3, 3])])]),
        ("chord", [invocation(SUMA, [4, 4])], invocation("tests.testapp.tasks.sum_list")),
    ]))
    # A transaction, the name, the workflow, the rows, then one INSERT per level (4 levels).
    with django_assert_max_num_queries(10):
        copy = services.copy_workflow(wf)
    assert copy.name == "Copy of deep"
    original = compile.workflow_to_spec(wf)
    copied = compile.workflow_to_spec(copy)
    assert to_python(copied) == to_python(original)
    assert WorkflowNode.objects.filter(workflow=copy).count() == wf.nodes.count()
    assert not set(copy.nodes.values_list("key", flat=True)) & set(
        wf.nodes.values_list("key", flat=True)
    )


def test_insert_tree_refuses_a_parent_cycle():
    wf = Workflow.objects.create(name="loop")
    first = WorkflowNode(workflow=wf, kind="group")
    second = WorkflowNode(workflow=wf, kind="group", parent=first)
    first.parent = second
    with pytest.raises(ValueError, match="cycle"):
        WorkflowNode.objects.insert_tree([first, second])


def test_a_broker_error_is_wrapped_once_as_a_cannot_run(adds, django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_workflow(adds)
    with (
        mock.patch.object(registry.get_app().control, "revoke",
                          side_effect=OperationalError("Connection refused")),
        pytest.raises(services.CannotRun) as refused,
    ):
        services.revoke_run(run)
    assert isinstance(refused.value, services.BrokerUnavailable)
    assert "Connection refused" in str(refused.value)
    assert not run.nodes.filter(state=NodeState.REVOKED).exists()  # nothing marked revoked


@pytest.fixture
def redis_results_app(settings):
    """A Celery app of the test project with the Redis result backend, sending to a queue of
    its own that nobody consumes (emptied afterwards)."""
    import uuid

    from celery import Celery

    app = Celery("results", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.result_backend = settings.REDIS_URL
    app.conf.task_default_queue = f"unconsumed-{uuid.uuid4().hex}"
    yield app
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)
    app.close()


def test_a_run_is_sent_without_subscribing_to_its_tasks_results(
        adds, redis_results_app, django_capture_on_commit_callbacks):
    """task_admin never waits on the results of what it sends (the workers' events record
    them): its sends do not subscribe to them, as Celery's would for a caller that might."""
    from celery import chain

    app = redis_results_app
    consumer = app.backend.result_consumer
    with mock.patch.object(consumer, "consume_from", wraps=consumer.consume_from) as subscribe:
        with django_capture_on_commit_callbacks(execute=True):
            services.run_workflow(adds, app=app)  # a chain of two tasks: its first is sent
        assert app.backend.client.llen(app.conf.task_default_queue) == 1
        assert subscribe.call_count == 0
        # Celery's own send of the same canvas subscribes, as before task_admin sent it.
        chain(app.signature(SUMA, args=(1, 1)), app.signature(SUMA, args=(2,)),
              app=app).apply_async()
        assert subscribe.call_count == 1


def test_a_group_is_sent_without_subscribing_to_its_tasks_results(
        redis_results_app, django_capture_on_commit_callbacks):
    """A group's result registers a callback on each task's result (``AsyncResult.then``),
    which subscribes to each again: not when task_admin sends it. A result made after the send
    (a caller's own ``get()``) still subscribes."""
    from celery import group
    from celery.result import AsyncResult

    app = redis_results_app
    pair = workflow("pair", ("group", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])]))
    consumer = app.backend.result_consumer
    with mock.patch.object(consumer, "consume_from") as subscribe:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.run_workflow(pair, app=app)
        assert app.backend.client.llen(app.conf.task_default_queue) == 2
        assert subscribe.call_count == 0
        # Celery's own send of the same group subscribes at the send and for the group's
        # result: twice per task.
        group(app.signature(SUMA, args=(1, 1)), app.signature(SUMA, args=(2, 2)),
              app=app).apply_async()
        assert subscribe.call_count == 4
        task_id = run.nodes.values_list("task_id", flat=True).first()
        AsyncResult(task_id, app=app).then(lambda result: None)
        assert subscribe.call_args_list[-1] == mock.call(task_id)


def test_chord_starts_leave_no_results_waiting_in_the_process(
        redis_results_app, django_capture_on_commit_callbacks):
    """A chord's header results registered callbacks (its group's barrier), each held by the
    backend and subscribed to until someone waits on it: in a web or beat process nobody does,
    so every chord started there stayed in memory with its subscriptions (measured: 150 held
    results and subscriptions after 50 chords of 3)."""
    from tests.testapp.tasks import sum_list

    app = redis_results_app
    fan_in = workflow("fan in", ("chord", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])],
                                 invocation(sum_list.name)))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            services.run_workflow(fan_in, app=app)
    held, weakly_held = app.backend._pending_results
    assert not held and not weakly_held
    assert not app.backend.result_consumer.subscribed_to


def test_a_result_other_code_waits_on_during_the_send_still_subscribes(redis_results_app):
    """Code that runs inside the send (a ``before_task_publish`` handler, a router) and waits
    on a result of its own still subscribes to it: else its ``get()`` would never hear of the
    result (review). Only task_admin's own tasks are skipped."""
    from celery.result import AsyncResult

    from task_admin.canvas.build import new_task_id

    app = redis_results_app
    consumer = app.backend.result_consumer
    ours = new_task_id()
    with (mock.patch.object(consumer, "consume_from") as subscribe,
          services._no_result_subscriptions(app)):
        AsyncResult("someone-elses", app=app).then(lambda result: None)
        app.backend.on_task_call(None, "someone-elses-too")
        AsyncResult(ours, app=app).then(lambda result: None)
        app.backend.on_task_call(None, ours)
    assert subscribe.call_args_list == [mock.call("someone-elses"),
                                        mock.call("someone-elses-too")]


def test_another_thread_sharing_the_backend_still_subscribes(
        adds, redis_results_app, django_capture_on_commit_callbacks):
    """With ``result_backend_thread_safe`` the threads share one backend: only task_admin's
    own sends skip the subscription, whichever thread sends while it does."""
    import threading

    from celery import chain

    app = redis_results_app
    app.conf.result_backend_thread_safe = True
    with django_capture_on_commit_callbacks(execute=True):
        services.run_workflow(adds, app=app)  # the backend's hook is wrapped now
    consumer = app.backend.result_consumer
    seen = []
    with mock.patch.object(consumer, "consume_from",
                           side_effect=lambda task_id: seen.append(task_id)):
        thread = threading.Thread(target=lambda: chain(
            app.signature(SUMA, args=(1, 1)), app.signature(SUMA, args=(2,)), app=app,
        ).apply_async(), name="other")
        with services._no_result_subscriptions(app):
            thread.start()  # a new thread starts with the context's defaults: not sending
            thread.join()
    assert len(seen) == 1
