"""Save-time checks: a task invocation or workflow that passes them can be sent to Celery."""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import replace

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from task_admin import arguments, canvas, registry
from task_admin.canvas.text import Text
from task_admin.canvas.validate import UNKNOWN_TASK
from task_admin.canvas.validate import warnings as canvas_warnings
from task_admin.compile import InvalidWorkflow, load_nodes, workflow_to_spec, workflows_using
from task_admin.conf import get_config
from task_admin.i18n import translated, translated_problems


def check_spec(
    spec: canvas.Node,
    *,
    tasks: Mapping[str, inspect.Signature | None] | None = None,
    extra_tasks: Mapping[str, inspect.Signature | None] | None = None,
    root_receives_parent: bool = False,
) -> list[canvas.Problem]:
    """The canvas's problems with ``spec``, in the active language.

    A task that may not run gets the reason from the registry, which names the setting that
    refuses it (the canvas only knows it is not among ``tasks``).
    """
    config = get_config()
    known = registry.signatures() if tasks is None else tasks
    if extra_tasks:
        known = {**known, **extra_tasks}
    problems = canvas.validate(
        spec,
        tasks=known,
        max_depth=config["MAX_DEPTH"],
        max_nodes=config["MAX_NODES"],
        max_value_bytes=config["MAX_VALUE_BYTES"],
        root_receives_parent=root_receives_parent,
        # Read from Celery's configuration (slow to read) only for a spec that waits: a start
        # is on the caller's path.
        max_delay=max_delay() if waits(spec) else None,
        now=timezone.now(),
    )
    if not problems:
        return problems
    leaves = dict(canvas.leaves(spec))
    return [_explained(leaves, problem) for problem in problems]


def waits(spec: canvas.Node) -> bool:
    """Whether a task of ``spec`` waits (a countdown or an eta): its check depends on the
    broker's bound and on the time."""
    return any(task.options.countdown is not None or task.options.eta is not None
               for _path, task in canvas.leaves(spec))


def _explained(leaves: Mapping[str, canvas.Task], problem: canvas.Problem) -> canvas.Problem:
    message = problem.message
    task = leaves.get(problem.path)
    if isinstance(message, Text) and message.template == UNKNOWN_TASK and task is not None:
        try:
            return replace(problem, message=registry.refusal(str(task.task)))
        except registry.NoCeleryApp:
            pass
    return replace(problem, message=translated(message))


# Brokers that give a message back to the queue when it is not acknowledged in time; a task
# waiting for its countdown or eta inside a worker is not acknowledged, so a longer wait runs it
# twice (Celery's "visibility timeout" caveat).
VISIBILITY_TRANSPORTS = ("redis", "rediss", "sentinel", "sqs")
DEFAULT_VISIBILITY_TIMEOUT = 3600
# RabbitMQ closes a channel whose delivery is not acknowledged within consumer_timeout (30 min by
# default, a server setting we cannot read from here).
AMQP_TRANSPORTS = ("amqp", "amqps", "pyamqp", "librabbitmq")
RABBITMQ_CONSUMER_TIMEOUT = 1800


def max_delay() -> float | None:
    """The longest countdown or eta (seconds) the broker carries safely; None for no bound.

    ``TASK_ADMIN["MAX_DELAY"]`` when set, else what the Celery app's broker allows.
    """
    configured = get_config()["MAX_DELAY"]
    if configured is not None:
        return configured
    try:
        app = registry.get_app()
    except registry.NoCeleryApp:
        return None
    url = app.conf.broker_url or ""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme in VISIBILITY_TRANSPORTS:
        options = app.conf.broker_transport_options or {}
        return float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT))
    if scheme in AMQP_TRANSPORTS:
        return RABBITMQ_CONSUMER_TIMEOUT
    return None


def workflow_problems(workflow, nodes=None, *, tasks=None) -> list[canvas.Problem]:
    """Structural and signature problems of a stored workflow, each with its node path."""
    try:
        spec = workflow_to_spec(workflow, nodes)
    except InvalidWorkflow as exc:
        return exc.problems
    return check_spec(spec, tasks=tasks)


def spec_warnings(
    spec: canvas.Node | None, *, tasks: Mapping[str, inspect.Signature | None] | None = None
) -> list[canvas.Problem]:
    """Likely mistakes that do not keep a tree from running (``canvas.validate.warnings``)."""
    if spec is None:
        return []
    found = canvas_warnings(spec, tasks=registry.signatures() if tasks is None else tasks)
    return translated_problems(found)


def brought_problems(
    before: list[canvas.Problem], after: list[canvas.Problem]
) -> list[canvas.Problem]:
    """The problems of ``after`` that ``before`` did not have: what an edit brings."""
    known = {(p.path, p.message) for p in before}
    return [p for p in after if (p.path, p.message) not in known]


def validate_invocation(invocation) -> None:
    """Raise ``ValidationError`` (by field) unless the invocation can be sent as it stands."""
    tasks = registry.allowed_tasks()
    info = tasks.get(invocation.task)
    if info is None:
        raise ValidationError({"task": registry.refusal(invocation.task)})
    errors: dict[str, list[str]] = {}
    if not isinstance(invocation.args, list):
        errors.setdefault("args", []).append(_("Enter a JSON list, e.g. [2, 2]."))
    if not isinstance(invocation.kwargs, dict):
        errors.setdefault("kwargs", []).append(_("Enter a JSON object, e.g. {\"b\": 2}."))
    if errors:
        raise ValidationError(errors)
    spec = invocation.to_spec()
    signatures = {name: i.signature for name, i in tasks.items()}
    problems = check_spec(spec, tasks=signatures)
    # Alone it may not bind, yet be meant as a chain step or chord body that receives the
    # previous result first: accept that; the workflow check sees the real position.
    if (
        problems
        and not invocation.immutable
        and not check_spec(spec, tasks=signatures, root_receives_parent=True)
    ):
        problems = []
    if problems:
        raise ValidationError(_by_field([problem.message for problem in problems]))
    _check_workflows_using(invocation, signatures)


def receives_parent(signature, args, kwargs, immutable: bool) -> bool:
    """Whether the arguments only fit with the previous result prepended (a chain step or
    chord body), as ``validate_invocation`` reads them."""
    if signature is None or immutable:
        return False
    try:
        signature.bind(*args, **kwargs)
        return False
    except TypeError:
        pass
    try:
        signature.bind(None, *args, **kwargs)
        return True
    except TypeError:
        return False


TYPE_WORDS = {
    "int": gettext_lazy("an integer"), "float": gettext_lazy("a number"),
    "bool": gettext_lazy("true or false"), "str": gettext_lazy("text"),
    "date": gettext_lazy("a date (YYYY-MM-DD)"),
    "datetime": gettext_lazy("a date and time (ISO 8601)"), "list": gettext_lazy("a list"),
    "dict": gettext_lazy("an object"),
}


def argument_type_messages(task: str, args: list, kwargs: dict,
                           immutable: bool) -> dict[str, list[str]]:
    """``{"args" | "kwargs": [messages]}`` for values that do not fit their parameter's
    annotated type (the invocation form and the composer's task nodes both say these)."""
    try:
        described = registry.parameters().get(task)
    except registry.NoCeleryApp:
        return {}
    if not described or not described["known"]:
        return {}
    signature = registry.signatures().get(task)
    out: dict[str, list[str]] = {}
    parent = receives_parent(signature, args, kwargs, immutable)
    for name, kind, value, choices in arguments.value_problems(described, args, kwargs, parent):
        expected = (
            _("one of %(choices)s") % {"choices": ", ".join(json.dumps(c) for c in choices)}
            if kind == "choice" else str(TYPE_WORDS[kind])
        )
        field = "kwargs" if name in kwargs else "args"
        out.setdefault(field, []).append(
            _("“%(name)s” takes %(expected)s, not %(value)s")
            % {"name": name, "expected": expected, "value": json.dumps(value)}
        )
    return out


# Option problems start with the option's name: shown next to the field that holds it.
OPTION_FIELDS = ("countdown", "eta", "expires", "priority", "queue")


def _by_field(messages: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for message in messages:
        field = next((f for f in OPTION_FIELDS if message.startswith(f + " ")), "__all__")
        out.setdefault(field, []).append(message)
    return out


def _check_workflows_using(invocation, signatures) -> None:
    """Refuse an edit that would break a workflow that uses this invocation.

    Only problems the edit brings count: a draft that was already broken elsewhere does not
    freeze every invocation it uses.
    """
    if invocation.pk is None:
        return
    broken = []
    for workflow in workflows_using(invocation.pk).order_by("name"):
        nodes = load_nodes(workflow.pk)
        before = workflow_problems(workflow, nodes, tasks=signatures)
        for node in nodes:
            if node.invocation_id == invocation.pk:
                node.invocation = invocation  # the edited, unsaved values
        broken += [
            _("workflow “%(workflow)s” at %(path)s: %(message)s")
            % {"workflow": workflow.name, "path": p.path, "message": p.message}
            for p in brought_problems(before, workflow_problems(workflow, nodes, tasks=signatures))
        ]
    if broken:
        raise ValidationError(
            [_("This change would break a workflow that uses this invocation."), *broken]
        )
