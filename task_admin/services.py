"""Run, revoke, re-run and reconcile workflows: the transactions and the talking to Celery.

The one door for starting work: ``prepare_run`` says whether a workflow can run with a run's
overrides (compiled once, checked once) and gives the spec, or raises ``CannotRun`` with the
problems; ``run_prepared`` records and sends it. The admin, the forms, the command line and
the schedules go through these and never compile, validate or send themselves. Whatever goes
wrong is a ``CannotRun``: its problems by path (``WorkflowProblems``), or the broker
(``BrokerUnavailable``, wrapped here once).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.states import READY_STATES
from django.db import transaction
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from task_admin import canvas, registry, spec_cache, tracking
from task_admin.canvas.build import is_tracked, to_signature
from task_admin.compile import Fingerprint, InvalidWorkflow, node_pk
from task_admin.conf import get_config
from task_admin.models import (
    NodeState,
    RunStatus,
    TaskRun,
    Trigger,
    Workflow,
    WorkflowNode,
    WorkflowRun,
)
from task_admin.models.new_runs import ConditionFailed, insert_run
from task_admin.models.runs import UNFINISHED_NODE
from task_admin.permissions import has_model_perm
from task_admin.tree import Tree
from task_admin.validation import check_spec, waits

logger = logging.getLogger(__name__)

REPLAY_TASK = "task_admin.replay"




class CannotRun(Exception):
    """The request is refused; the message says why, for the person who asked.

    The one exception every caller of this module catches: ``WorkflowProblems`` (the
    workflow's problems, by path) and ``BrokerUnavailable`` are kinds of it.
    """

    problems: list[canvas.Problem] = []


class WorkflowProblems(CannotRun, InvalidWorkflow):
    """The workflow, with these overrides, cannot be sent: ``problems`` lists why, by path.

    Also an ``InvalidWorkflow``, which ``start`` is documented to raise."""

    def __init__(self, problems: list[canvas.Problem]):
        InvalidWorkflow.__init__(self, problems)


class BrokerUnavailable(CannotRun):
    """The broker (or the Celery app itself) could not be reached; ``error`` is what failed."""

    def __init__(self, error: Exception):
        self.error = error
        super().__init__(
            _("the broker could not be reached (%(error)s)") % {"error": error}
        )


def _celery_app(app: Celery | None) -> Celery:
    try:
        return app or registry.get_app()
    except registry.NoCeleryApp as exc:
        raise BrokerUnavailable(exc) from exc


def apply_overrides(spec: canvas.Node, overrides: Mapping[str, dict]) -> canvas.Node:
    """The spec with extra kwargs merged into the leaves named by path (for one run)."""
    if not overrides:
        return spec
    leaf_paths = {path for path, _task in canvas.leaves(spec)}
    unknown = sorted(set(overrides) - leaf_paths)
    if unknown:
        raise WorkflowProblems([canvas.Problem(unknown[0], _("no task at this path"))])
    not_objects = sorted(path for path, extra in overrides.items() if not isinstance(extra, dict))
    if not_objects:
        raise WorkflowProblems([canvas.Problem(
            not_objects[0], _('overrides must be a JSON object of keyword arguments, e.g. {"b": 2}')
        )])

    def merge(path: str, task: canvas.Task) -> canvas.Task:
        extra = overrides.get(path)
        return replace(task, kwargs={**task.kwargs, **extra}) if extra else task

    return canvas.map_leaves(spec, merge)


@dataclass(frozen=True)
class PreparedRun:
    """A workflow's spec with one run's overrides merged, compiled and checked: what
    ``run_prepared`` records and sends. Made by ``prepare_run`` only."""

    workflow: Workflow
    spec: canvas.Node
    overrides: Mapping[str, dict] = field(default_factory=dict)
    # The condition under which the stored tree is still the one ``spec`` was compiled from
    # (``spec_cache``): the run is recorded only while it holds. None: read just now.
    current_if: Fingerprint | None = None


def prepare_run(
    workflow: Workflow,
    overrides: Mapping[str, dict] | None = None,
    *,
    spec: canvas.Node | None = None,
    tasks: Mapping[str, inspect.Signature | None] | None = None,
    fresh: bool = False,
) -> PreparedRun:
    """Can ``workflow`` run with ``overrides`` (extra kwargs by task path)? The spec to send,
    compiled once and checked once; ``WorkflowProblems`` (a ``CannotRun``) with every problem
    by path otherwise.

    ``spec`` is the workflow's spec when the caller compiled it already (the run page shows
    it); ``tasks`` the allowed tasks' signatures when it has read them (the form's help texts).
    Otherwise the spec comes from ``spec_cache``: kept from an earlier start while the tree is
    unchanged (``run_prepared`` makes sure of that before recording), or read now when
    ``fresh`` (a form about the tree as it is now). A refusal is always about the stored tree:
    a kept spec that fails is read again first. Whether the workflow is enabled is asked when
    it starts (``run_prepared``).
    """
    current_if, kept, compiled = None, False, None
    try:
        if spec is None:
            if fresh:
                spec_cache.forget(workflow.pk)
            compiled = spec_cache.compiled(workflow)
            spec, current_if, kept = compiled.spec, compiled.current_if, compiled.kept
    except InvalidWorkflow as exc:
        raise WorkflowProblems(exc.problems) from None
    # A kept spec that passed the check as it is, against the allowed tasks as they still are
    # (the same mapping: the registry makes a new one when the settings, the app or its tasks
    # change), passes it again: the tree is unchanged (the insert's condition), the settings
    # too (a change empties the cache). Not one that waits (countdown, eta): checked against
    # the time.
    as_is = not overrides and tasks is None and compiled is not None
    known = registry.signatures() if as_is else tasks
    if as_is and kept and compiled.passed is known:
        return PreparedRun(workflow, spec, {}, current_if)
    try:
        prepared = apply_overrides(spec, overrides or {})
        problems = check_spec(prepared, tasks=known)
        if problems:
            raise WorkflowProblems(problems)
    except WorkflowProblems:
        if not kept:
            raise
        # The tree may have changed since (fixed, a node added): judge it as stored.
        return prepare_run(workflow, overrides, tasks=tasks, fresh=True)
    if as_is and current_if is not None and not waits(spec):
        spec_cache.note_passed(workflow, spec, known)
    return PreparedRun(workflow, prepared, dict(overrides or {}), current_if)


def _refuse_disabled(workflow: Workflow | None) -> None:
    if workflow is not None and not workflow.enabled:
        raise CannotRun(_("The workflow “%(name)s” is disabled.") % {"name": workflow.name})


def run_workflow(
    workflow: Workflow, *, overrides: Mapping[str, dict] | None = None, **start: Any
) -> WorkflowRun:
    """``prepare_run`` then ``run_prepared`` (``start``: its ``user``, ``trigger``, ``detail``,
    ``schedule``, ``app``): record a run of ``workflow`` and send its canvas once the record
    is committed.

    Raises ``CannotRun``: disabled, or ``WorkflowProblems`` (nothing is saved) when the
    workflow cannot be sent as it is.
    """
    _refuse_disabled(workflow)
    return run_prepared(prepare_run(workflow, overrides), **start)


def run_prepared(
    prepared: PreparedRun,
    *,
    user=None,
    trigger: str = Trigger.MANUAL,
    detail: str = "",
    schedule=None,
    app: Celery | None = None,
) -> WorkflowRun:
    """Record the prepared run and send its canvas once the record is committed (no second
    compile or check). Raises ``CannotRun`` when the workflow is disabled, or
    ``WorkflowProblems`` when its tree changed since it was prepared and no longer runs.
    """
    _refuse_disabled(prepared.workflow)
    for _attempt in range(3):
        try:
            return _record_and_send(
                prepared.spec, workflow=prepared.workflow, overrides=prepared.overrides,
                user=user, trigger=trigger, detail=detail, schedule=schedule, app=app,
                nodes_exist=True, current_if=prepared.current_if,
            )
        except ConditionFailed:
            # The tree changed since the spec was compiled: compile and check it again.
            spec_cache.forget(prepared.workflow.pk)
            prepared = prepare_run(prepared.workflow, prepared.overrides)
    # Changed again at every try: record what was read last, as a start without the cache does.
    return _record_and_send(
        prepared.spec, workflow=prepared.workflow, overrides=prepared.overrides, user=user,
        trigger=trigger, detail=detail, schedule=schedule, app=app,
    )


def start(
    name: str,
    *,
    overrides: Mapping[str, dict] | None = None,
    user=None,
    detail: str = "",
    app: Celery | None = None,
) -> WorkflowRun:
    """Start the workflow called ``name`` from code, with the checks the admin makes.

    ``overrides`` maps a task's path (``"root.1"``) to extra keyword arguments for this run.
    With a ``user``, that user needs the ``task_admin.run_workflow`` permission, as in the
    admin, and the run is logged in the admin's history under that user. Raises ``CannotRun``
    (no such workflow, no permission, disabled) or its kind ``WorkflowProblems``, also an
    ``InvalidWorkflow`` (its problems, by path); nothing is saved then. The canvas is sent
    when the current transaction commits.
    """
    workflow = Workflow.objects.filter(name=name).first()
    if workflow is None:
        raise CannotRun(_("There is no workflow named “%(name)s”.") % {"name": name})
    if user is not None and not (user.is_active and has_model_perm(user, "run", Workflow)):
        raise CannotRun(
            _("%(user)s may not run workflows (permission “task_admin.run_workflow”).")
            % {"user": user.get_username()}
        )
    run = run_workflow(
        workflow, overrides=overrides, user=user, trigger=Trigger.API, detail=detail, app=app
    )
    if user is not None:
        _log_start(user, run, detail)
    return run


def _log_start(user, run: WorkflowRun, detail: str) -> None:
    from django.apps import apps

    if not apps.is_installed("django.contrib.admin"):
        return
    from django.contrib.admin.models import ADDITION, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(WorkflowRun),
        object_id=str(run.pk),
        object_repr=str(run)[:200],
        action_flag=ADDITION,
        change_message=_("Ran “%(name)s” from code (%(detail)s).")
        % {"name": run.workflow_name, "detail": detail or _("Python API")},
    )


def wait(
    run: WorkflowRun, *, timeout: float | None = None, interval: float = 0.5,
    app: Celery | None = None,
) -> WorkflowRun:
    """Block until ``run`` has finished (reloaded from the database) and return it.

    Raises ``TimeoutError`` after ``timeout`` seconds. Nodes whose events never arrived are
    checked in the result backend after ``RECONCILE_AFTER``, as the run page does.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if run.is_finished:
            return run
        reconcile_run(run, app=app)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(
                _("Run #%(run)s has not finished after %(seconds)s seconds.")
                % {"run": run.pk, "seconds": timeout}
            )
        time.sleep(interval)


def _record_and_send(
    spec: canvas.Node,
    *,
    workflow: Workflow | None,
    workflow_name: str = "",
    overrides: Mapping[str, Any],
    user,
    trigger: str,
    detail: str,
    app: Celery | None,
    rerun_of: WorkflowRun | None = None,
    reused: Mapping[str, TaskRun] | None = None,
    note: str = "",
    schedule=None,
    nodes_exist: bool = False,
    current_if: Fingerprint | None = None,
) -> WorkflowRun:
    """Record the run and its nodes (``models.new_runs``: one statement on PostgreSQL) and
    send the canvas once they are committed.

    ``nodes_exist``: the spec was compiled from the stored tree, so the nodes it names exist
    (no query to check them): just now, or ``current_if`` holds (else ``ConditionFailed`` and
    nothing is written). The run is stamped as dispatched in the same insert (a send that
    fails clears it), so a start costs no write after the send.
    """
    app = _celery_app(app)
    signature, task_ids = to_signature(spec, app=app)
    leaves = canvas.leaves(spec)
    reused = reused or {}
    # A re-run sends an old run's snapshot: the tree nodes it names may have been deleted or
    # replaced since (node editor, re-import). Their links stay empty; what runs is the
    # snapshot either way.
    node_ids = {pk for pk in (node_pk(task.ref) for _path, task in leaves) if pk}
    if node_ids and not nodes_exist:
        node_ids = set(WorkflowNode.objects.filter(pk__in=node_ids).values_list("pk", flat=True))
    run = WorkflowRun(
        workflow=workflow,
        workflow_name=workflow.name if workflow else workflow_name,
        spec=canvas.to_dict(spec),
        overrides=dict(overrides),
        trigger=trigger,
        triggered_by=user if user is not None and user.is_authenticated else None,
        trigger_detail=detail,
        rerun_of=rerun_of,
        schedule=schedule,
        note=note,
        total_nodes=len(leaves),
        dispatched_at=timezone.now(),
    )
    rows = []
    for position, (path, task) in enumerate(leaves):
        pk = node_pk(task.ref)
        kept = reused.get(path)
        rows.append((task_ids[path], path, position, task.task, task.label,
                     pk if pk in node_ids else None, kept.pk if kept is not None else None))
    # One statement on PostgreSQL (atomic by itself); the alert settings in force now go with
    # it: a run without them costs alerting nothing.
    insert_run(
        run, rows,
        alert_for=(workflow.pk if workflow else None, schedule.pk if schedule else None),
        async_commit=get_config()["ASYNC_START_COMMIT"],
        only_if=(current_if.sql, current_if.params) if current_if is not None else None,
    )
    # A worker must never see a task whose run is not committed yet: sent after the commit
    # (at once when the insert was its own transaction).
    transaction.on_commit(lambda: dispatch(run.pk, signature))
    return run


def dispatch(run_id: int, signature) -> None:
    """Send the canvas; a broker that cannot be reached fails the run, with the reason."""
    try:
        with _no_result_subscriptions(signature.app):
            signature.apply_async()
    except Exception as exc:  # kombu.OperationalError and friends: anything that did not send
        logger.warning("task_admin run %s was not sent: %s", run_id, exc)
        now = timezone.now()
        with transaction.atomic():
            TaskRun.objects.filter(run_id=run_id, state=NodeState.PENDING).update(
                state=NodeState.NOT_SENT, finished_at=now
            )
            updated = WorkflowRun.objects.filter(pk=run_id).unfinished().update(
                status=RunStatus.DISPATCH_FAILED,
                error=tracking.describe_exception(exc),
                finished_at=now,
                dispatched_at=None,
            )
            if updated:
                transaction.on_commit(lambda: tracking.send_finished([run_id]))


# True while task_admin sends a canvas (this thread or task): see _no_result_subscriptions.
_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("task_admin_sending",
                                                                default=False)


@contextlib.contextmanager
def _no_result_subscriptions(app: Celery):
    """Send without subscribing to the tasks' results where the result backend would.

    Celery's Redis result backend subscribes to a task's result channel in case the caller
    waits with ``result.get()``, and unsubscribes when its ``AsyncResult`` goes. It does so
    twice: at every send (``on_task_call``), and when a result registers a callback
    (``AsyncResult.then``, which calls ``add_pending_result``): a group's result does that for
    each of its tasks, to fulfil the group when they are all ready. For a 2-task group that
    is 4 SUBSCRIBE commands, with their UNSUBSCRIBE when the results go. task_admin never
    waits on what it sends (the workers' events record the results), so both are skipped
    while it sends: measured, 0.33 ms of a 2-task start's CPU for the first, 0.2 ms for the
    second. Nothing then waits on that group's result: ``dispatch`` drops it. Celery skips
    the subscriptions only for ``ignore_result``, which would also keep the workers from
    storing results (chords and the reconciler read them). The backend's two methods are
    wrapped once, and the wrappers skip only task_admin's own tasks (``ta-`` ids) while a
    context variable says task_admin is sending: another thread sharing the backend
    (``result_backend_thread_safe``), a ``get()`` after the send, and a result some other code
    waits on during the send (a ``before_task_publish`` handler, a router) subscribe as
    Celery does. Other backends (RPC declares its reply queue in these hooks) are left as
    they are.
    """
    backend = app.backend
    if not getattr(backend, "_task_admin_quiet", False) and _subscribes_at_send(backend):
        celery_hook, celery_pending = backend.on_task_call, backend.add_pending_result

        def on_task_call(producer, task_id):
            if not (_sending.get() and is_tracked(task_id)):
                celery_hook(producer, task_id)

        def add_pending_result(result, *args, **kwargs):
            if _sending.get() and is_tracked(result.id):
                return result
            return celery_pending(result, *args, **kwargs)

        backend.on_task_call = on_task_call
        backend.add_pending_result = add_pending_result
        backend._task_admin_quiet = True
    token = _sending.set(True)
    try:
        yield
    finally:
        _sending.reset(token)


def _subscribes_at_send(backend) -> bool:
    try:
        from celery.backends.redis import RedisBackend
    except ImportError:  # no redis client installed: no Redis backend either
        return False
    return isinstance(backend, RedisBackend)


def revoke_run(run: WorkflowRun, *, terminate: bool = False, app: Celery | None = None) -> int:
    """Revoke the run's unfinished tasks; returns how many are marked revoked now.

    Without ``terminate`` Celery lets a task that has already started run to its end, so its
    node keeps its state and reports the outcome itself; with it, the worker kills the task.
    """
    if run.is_finished:
        raise CannotRun(_("The run has already finished."))
    app = _celery_app(app)
    task_ids = list(run.nodes.unfinished().values_list("task_id", flat=True))
    if task_ids:
        try:
            app.control.revoke(task_ids, terminate=terminate)
        except registry.BROKER_ERRORS as exc:
            logger.warning("task_admin: revoking run %s failed: %s", run.pk, exc)
            raise BrokerUnavailable(exc) from exc
    stopped = [s for s in UNFINISHED_NODE if terminate or s != NodeState.STARTED]
    with transaction.atomic():
        revoked = TaskRun.objects.filter(task_id__in=task_ids, state__in=stopped).update(
            state=NodeState.REVOKED,
            finished_at=timezone.now(),
            exception=_("revoked from the admin"),
        )
        # Counted from the nodes (never incremented): the worker's batches recount too.
        tracking.refresh_runs([run.pk], failed=[run.pk] if revoked else [])
    return revoked


def replay_signature(app: Celery | None = None) -> dict[str, inspect.Signature | None]:
    # Read from the Celery registry: ``task_admin.tasks`` (an entry point above this module)
    # is imported by ``TaskAdminConfig.ready``, which registers the shared task.
    return {REPLAY_TASK: registry.task_signature(REPLAY_TASK, app)}


def rerun_from_failure(
    run: WorkflowRun, *, user=None, app: Celery | None = None
) -> WorkflowRun:
    """Run again the nodes that failed or never ran, keeping the results that succeeded."""
    if not run.is_finished:
        raise CannotRun(_("The run has not finished yet."))
    if run.status == RunStatus.SUCCEEDED:
        raise CannotRun(_("Every task of this run succeeded: there is nothing to re-run."))
    _refuse_disabled(run.workflow)
    app = _celery_app(app)
    spec = canvas.from_dict(run.spec)
    # A result stored as a stand-in cannot be handed on: that task runs again.
    kept = {
        task_run.path: task_run
        for task_run in run.nodes.filter(state=NodeState.SUCCESS, result_complete=True)
    }
    rerun_spec = canvas.replace_succeeded(
        spec, {path: task_run.result for path, task_run in kept.items()}, replay_task=REPLAY_TASK
    )
    problems = check_spec(rerun_spec, extra_tasks=replay_signature(app))
    if problems:
        raise WorkflowProblems(problems)
    total = canvas.count_leaves(spec)
    note = ngettext(
        "Re-run of #%(run)s: %(again)d of %(total)d task runs again; results kept: %(kept)d.",
        "Re-run of #%(run)s: %(again)d of %(total)d tasks run again; results kept: %(kept)d.",
        total,
    ) % {"run": run.pk, "again": total - len(kept), "total": total, "kept": len(kept)}
    with transaction.atomic():
        # Locked, so that two submits of the same re-run cannot both start one.
        WorkflowRun.objects.select_for_update().filter(pk=run.pk).first()
        pending = run.reruns.unfinished().order_by("pk").first()
        if pending is not None:
            raise CannotRun(
                _("Run #%(id)s, a re-run of this run, has not finished yet.") % {"id": pending.pk}
            )
        return _record_and_send(
            rerun_spec,
            workflow=run.workflow,
            workflow_name=run.workflow_name,
            overrides=run.overrides,
            user=user,
            trigger=Trigger.RERUN,
            detail=f"#{run.pk}",
            app=app,
            rerun_of=run,
            reused=kept,
            note=note,
        )


# -- copying a workflow --------------------------------------------------------------------------


def copy_name(name: str) -> str:
    """“Copy of <name>”, numbered when taken."""
    base = Truncator(_("Copy of %(name)s") % {"name": name}).chars(190)
    taken = set(Workflow.objects.filter(name__startswith=base).values_list("name", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base} ({number})" in taken:
        number += 1
    return f"{base} ({number})"


@transaction.atomic
def copy_workflow(workflow: Workflow) -> Workflow:
    """A deep copy of the workflow's tree with new node keys (invocations and reused workflows
    are shared, not copied), written as the composer and an import write theirs."""
    copy = Workflow.objects.create(
        name=copy_name(workflow.name), description=workflow.description, enabled=workflow.enabled
    )
    tree = Tree(WorkflowNode.objects.filter(workflow=workflow))
    clones: dict[int, WorkflowNode] = {}
    for level in tree.levels(workflow.pk):  # parents before children
        for node in level:
            clones[node.pk] = node.clone(workflow=copy, parent=clones.get(node.parent_id))
    WorkflowNode.objects.insert_tree(clones.values())
    return copy


# -- catching up with the result backend ---------------------------------------------------------


def reconcile_run(run: WorkflowRun, *, app: Celery | None = None) -> int:
    """Bring unfinished nodes up to date from the result backend; returns how many changed.

    Handlers in a worker that was killed never run; the result backend may still know how the
    task ended (a lost pool child is stored as a failure by its parent process).
    """
    if run.is_finished:
        return 0
    app = app or registry.get_app()
    since = timezone.now() - timedelta(seconds=get_config()["RECONCILE_AFTER"])
    stale = list(
        run.nodes.unfinished().filter(run__created_at__lte=since)
        .values_list("task_id", flat=True)
    )
    changed = 0
    for task_id in _maybe_finished(app, stale):
        result = app.AsyncResult(task_id)
        state = result.state
        if state == "SUCCESS":
            tracking.succeeded(task_id, result.result, None)
        elif state == "FAILURE":
            exc = result.result
            message = (
                tracking.describe_exception(exc) if isinstance(exc, BaseException) else str(exc)
            )
            tracking.failed(task_id, message, result.traceback or "")
        elif state == "REVOKED":
            tracking.revoked(task_id, "revoked")
        else:
            continue
        changed += 1
    return changed


def _maybe_finished(app: Celery, task_ids: list[str]) -> list[str]:
    """The task ids worth asking the result backend about, one by one.

    With django-celery-results one query says which have a final state, so a page showing a
    big pending run does not ask once per task; other backends are asked for each.
    """
    if not task_ids or not _uses_django_db_backend(app):
        return task_ids
    from django_celery_results.models import TaskResult

    return list(
        TaskResult.objects.filter(task_id__in=task_ids, status__in=READY_STATES)
        .values_list("task_id", flat=True)
    )


def _uses_django_db_backend(app: Celery) -> bool:
    # django-celery-results is optional: without it no backend can be its DatabaseBackend.
    from django.apps import apps

    if not apps.is_installed("django_celery_results"):
        return False
    from django_celery_results.backends.database import DatabaseBackend

    return isinstance(app.backend, DatabaseBackend)
