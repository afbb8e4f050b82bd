"""Operations pages: the live workers, the broker's queues and any task by id.

The models behind them have no table (``models/operations.py``); they give each page an entry in
the admin index and permissions of their own. Every page reads through ``task_admin.operations``
(short timeouts, a cached snapshot); every control is a POST from a confirmation page, checked
against its own permission, and written to the admin log.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.http import HttpRequest
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_safe

from task_admin import operations
from task_admin.links import admin_url as _url
from task_admin.models import CeleryTask, Queue, TaskRun, Worker, WorkflowNode, WorkflowRun
from task_admin.permissions import has_app_perm, has_model_perm

# A queue, task or worker name typed by a person: printable, no spaces.
NAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f]{1,255}$")
# What Celery's rate_limit accepts: "0" (no limit), "10", "10/s", "2.5/m", "100/h".
RATE_RE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")


def _regex_validator(pattern) -> RegexValidator:
    return RegexValidator(pattern, gettext_lazy("Use printable characters and no spaces."))


def _name_field(label, **kwargs) -> forms.CharField:
    return forms.CharField(
        label=label, max_length=255, strip=True, validators=[_regex_validator(NAME_RE)], **kwargs
    )


class PoolForm(forms.Form):
    action = forms.ChoiceField(
        label=gettext_lazy("Change"),
        choices=[("grow", gettext_lazy("grow the pool by")),
                 ("shrink", gettext_lazy("shrink the pool by"))],
        widget=forms.RadioSelect,
    )
    n = forms.IntegerField(label=gettext_lazy("processes"), min_value=1, max_value=100, initial=1)


class ConsumerForm(forms.Form):
    action = forms.ChoiceField(
        label=gettext_lazy("Change"),
        choices=[("add", gettext_lazy("start consuming")),
                 ("cancel", gettext_lazy("stop consuming"))],
        widget=forms.RadioSelect,
    )
    queue = _name_field(gettext_lazy("queue"))


class RateLimitForm(forms.Form):
    task = _name_field(gettext_lazy("task"),
                       widget=forms.TextInput(attrs={"list": "ta-task-names", "size": 50}))
    rate = forms.CharField(
        label=gettext_lazy("rate limit"), max_length=32, strip=True,
        help_text=gettext_lazy(
            "Tasks per second, minute or hour, such as 10/s, 100/m or 1000/h; 0 removes the "
            "limit."
        ),
        validators=[_regex_validator(RATE_RE)],
    )


class LookupForm(forms.Form):
    task_id = _name_field(
        gettext_lazy("task id"),
        help_text=gettext_lazy("From a log line, Flower, a user report or a run page."),
    )


def warn_unconsumed_queues(model_admin, request, queues: set[str]) -> None:
    """After a save: say which of ``queues`` no live worker consumes. A warning, not a refusal:
    workers may be down or not started yet."""
    try:
        missing = operations.unconsumed({q for q in queues if q})
    except operations.BROKER_ERRORS:
        return
    url = _url("task_admin_queue_changelist", current_app=model_admin.admin_site.name)
    for queue in sorted(missing):
        message = _(
            "No live worker consumes the queue “%(queue)s”: tasks sent there wait until a "
            "worker consumes it (start one with -Q %(queue)s, or add a consumer)."
        ) % {"queue": queue}
        if url:
            message = format_html('{} <a href="{}?queue={}">{}</a>', message, url, queue,
                                  _("See the queues."))
        model_admin.message_user(request, message, messages.WARNING)


def workflow_queues(workflow, spec=None) -> set[str]:
    """The queues a workflow's tasks name: those of its spec (reused workflows included) when
    it compiles, else its own nodes' (a draft)."""
    if spec is not None:
        return operations.spec_queues(spec)
    return set(
        WorkflowNode.objects.filter(workflow=workflow).exclude(invocation__queue="")
        .exclude(invocation__isnull=True).values_list("invocation__queue", flat=True)
    )


class OperationsAdmin(admin.ModelAdmin):
    """A page, not a table: only its own URLs, nothing to add, change or delete."""
    empty_value_display = "—"  # as everywhere else in the app, not Django's "-"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _perm(self, request, codename: str) -> bool:
        return has_app_perm(request.user, codename, self.opts.app_label)

    def _require(self, request, allowed: bool) -> None:
        if not allowed:
            raise PermissionDenied

    def _context(self, request, title: str, **context) -> dict[str, Any]:
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": True,
            "ops_links": self._ops_links(request),
            **context,
        }

    def _ops_links(self, request) -> list[tuple[str, str, bool]]:
        out = []
        for model in (Worker, Queue, CeleryTask):
            model_admin = self.admin_site._registry.get(model)
            if model_admin is not None and model_admin.has_view_permission(request):
                url = _url(f"task_admin_{model._meta.model_name}_changelist",
                           current_app=self.admin_site.name)
                out.append((url, model._meta.verbose_name_plural, model is self.model))
        return out

    def _render(self, request, template: str, context) -> TemplateResponse:
        opts = self.opts
        return TemplateResponse(
            request, [f"admin/{opts.app_label}/{opts.model_name}/{template}"], context
        )

    def task_links(self, request, task_ids) -> dict[str, dict[str, Any]]:
        """``{task_id: {run, run_url, node, node_url}}`` for ids that belong to a run (one
        query), plus the lookup page of every id when the user may see it."""
        site = self.admin_site.name
        ids = {t for t in task_ids if t}
        out: dict[str, dict[str, Any]] = {}
        lookup_admin = self.admin_site._registry.get(CeleryTask)
        can_lookup = lookup_admin is not None and lookup_admin.has_view_permission(request)
        can_revoke = lookup_admin is not None and lookup_admin.has_revoke_permission(request)
        for task_id in ids:
            out[task_id] = {
                "lookup_url": _url("task_admin_celerytask_change", quote(task_id),
                                   current_app=site) if can_lookup else None,
                "revoke_url": _url("task_admin_celerytask_revoke", quote(task_id),
                                   current_app=site) if can_revoke else None,
            }
        run_admin = self.admin_site._registry.get(WorkflowRun)
        node_admin = self.admin_site._registry.get(TaskRun)
        can_runs = run_admin is not None and run_admin.has_view_permission(request)
        can_nodes = node_admin is not None and node_admin.has_view_permission(request)
        if ids and (can_runs or can_nodes):
            rows = TaskRun.objects.filter(task_id__in=ids).values(
                "task_id", "pk", "run_id", "path", "label", "task_name", "run__workflow_name"
            )
            for row in rows:
                out[row["task_id"]].update(
                    run=f"{row['run__workflow_name']} #{row['run_id']}",
                    run_url=_url("task_admin_workflowrun_change", row["run_id"],
                                 current_app=site) if can_runs else None,
                    node=row["label"] or row["path"],
                    node_path=row["path"],
                    node_url=_url("task_admin_taskrun_change", row["pk"],
                                  current_app=site) if can_nodes else None,
                )
        return out


# -- workers -------------------------------------------------------------------------------


@admin.register(Worker)
class WorkerAdmin(OperationsAdmin):
    controls = {
        # url verb: (permission codename, form, page title)
        "shutdown": ("shutdown_worker", None, gettext_lazy("Shut this worker down?")),
        "pool": ("resize_pool", PoolForm, gettext_lazy("Grow or shrink the pool")),
        "consumers": ("manage_consumers", ConsumerForm,
                      gettext_lazy("Add or cancel a queue consumer")),
        "ratelimit": ("set_rate_limit", RateLimitForm, gettext_lazy("Set a task's rate limit")),
    }

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        urls = [
            path("", wrap(self.workers_view), name=f"{prefix}_changelist"),
            path("<path:object_id>/change/", wrap(self.workers_view), name=f"{prefix}_change"),
        ]
        for verb in self.controls:
            urls.append(path(
                f"<path:object_id>/{verb}/",
                wrap(self.control_view), {"verb": verb}, name=f"{prefix}_{verb}",
            ))
        return urls

    def permitted_controls(self, request) -> list[str]:
        return [verb for verb, (perm, *_r) in self.controls.items() if self._perm(request, perm)]

    @method_decorator(require_safe)
    def workers_view(self, request: HttpRequest, object_id: str | None = None):
        self._require(request, self.has_view_permission(request))
        hostname = unquote(object_id) if object_id else None
        # The list is where staff look for a worker they just started.
        current = operations.snapshot(discover=hostname is None)
        workers = current.workers
        if hostname is not None:
            workers = [w for w in workers if w.hostname == hostname]
        links = self.task_links(request, (t.id for w in workers for t in w.tasks))
        controls = self.permitted_controls(request)
        site = self.admin_site.name
        rows = []
        for worker in workers:
            rows.append({
                "worker": worker,
                "url": _url("task_admin_worker_change", quote(worker.hostname), current_app=site),
                "tasks": [(task, links.get(task.id, {})) for task in worker.tasks],
                "controls": [
                    (verb, _url(f"task_admin_worker_{verb}", quote(worker.hostname),
                                current_app=site))
                    for verb in controls
                ] if worker.answered else [],
            })
        queues_admin = self.admin_site._registry.get(Queue)
        context = self._context(
            request,
            _("Worker") if hostname else _("Workers"),
            subtitle=hostname,
            snapshot=current,
            rows=rows,
            hostname=hostname,
            cache_seconds=operations.get_config()["INSPECT_CACHE"],
            queues_url=_url("task_admin_queue_changelist", current_app=site)
            if queues_admin and queues_admin.has_view_permission(request) else None,
        )
        return self._render(request, "workers.html", context)

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def control_view(self, request: HttpRequest, object_id: str, verb: str):
        permission, form_class, title = self.controls[verb]
        self._require(request, self._perm(request, permission))
        hostname = unquote(object_id)
        current = operations.snapshot()
        worker = current.worker(hostname)
        form = None
        if form_class is not None:
            initial = {"action": "grow" if verb == "pool" else "add"}
            form = form_class(request.POST if request.method == "POST" else None,
                              initial=initial)
        if (
            request.method == "POST"
            and (form is None or form.is_valid())
            and self._control(request, verb, hostname, form.cleaned_data if form else {})
        ):
            return redirect(_url("task_admin_worker_changelist",
                                     current_app=self.admin_site.name))
        context = self._context(
            request, title,
            subtitle=hostname,
            object=Worker(hostname=hostname),
            object_url=_url("task_admin_worker_change", quote(hostname),
                            current_app=self.admin_site.name),
            worker=worker,
            snapshot_error=current.error,
            verb=verb,
            form=form,
            task_names=operations.task_names() if verb == "ratelimit" else [],
        )
        return self._render(request, "control.html", context)

    def _control(self, request, verb: str, hostname: str, data: dict) -> bool:
        """Send the command, say what the worker answered, log it; False when it failed."""
        args = {"worker": hostname}
        try:
            if verb == "shutdown":
                operations.shutdown(hostname)
                message = _("Sent a warm shutdown to %(worker)s: it finishes its running tasks, "
                            "then exits.") % args
            elif verb == "pool":
                args["n"] = data["n"]
                if data["action"] == "grow":
                    operations.pool_grow(hostname, data["n"])
                    message = _("Grew the pool of %(worker)s by %(n)s.") % args
                else:
                    operations.pool_shrink(hostname, data["n"])
                    message = _("Shrank the pool of %(worker)s by %(n)s.") % args
            elif verb == "consumers":
                args["queue"] = data["queue"]
                if data["action"] == "add":
                    operations.add_consumer(hostname, data["queue"])
                    message = _("%(worker)s now consumes the queue “%(queue)s”.") % args
                else:
                    operations.cancel_consumer(hostname, data["queue"])
                    message = _("%(worker)s no longer consumes the queue “%(queue)s”.") % args
            else:
                args.update(task=data["task"], rate=data["rate"])
                operations.rate_limit(hostname, data["task"], data["rate"])
                message = _("Rate limit of %(task)s on %(worker)s set to %(rate)s.") % args
        except operations.NoReply:
            self.message_user(request, _(
                "%(worker)s did not confirm the command in time: it may be gone or busy. "
                "Nothing was changed that we know of.") % args, messages.ERROR)
            return False
        except operations.Refused as exc:
            args["error"] = str(exc)
            self.message_user(request, _("%(worker)s refused: %(error)s") % args,
                              messages.ERROR)
            return False
        except operations.BROKER_ERRORS as exc:
            args["error"] = str(exc)
            self.message_user(request, _(
                "The broker could not be reached (%(error)s); nothing was sent.") % args,
                messages.ERROR)
            return False
        self.log_change(request, Worker(hostname=hostname), message)
        self.message_user(request, message, messages.SUCCESS)
        return True


# -- queues ----------------------------------------------------------------------------------


@admin.register(Queue)
class QueueAdmin(OperationsAdmin):
    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", self.admin_site.admin_view(self.queues_view), name=f"{prefix}_changelist"),
        ]

    @method_decorator(require_safe)
    def queues_view(self, request: HttpRequest):
        self._require(request, self.has_view_permission(request))
        asked = (request.GET.get("queue") or "").strip()
        extra = (asked,) if asked and NAME_RE.match(asked) else ()
        rows, current, error = operations.queues(extra=extra)
        site = self.admin_site.name
        worker_admin = self.admin_site._registry.get(Worker)
        can_workers = worker_admin is not None and worker_admin.has_view_permission(request)
        for row in rows:
            row.consumer_links = [
                (h, _url("task_admin_worker_change", quote(h), current_app=site)
                 if can_workers else None)
                for h in row.consumers
            ]
        context = self._context(
            request, _("Queues"),
            rows=rows,
            snapshot=current,
            broker_error=error,
            asked=asked,
            asked_invalid=bool(asked) and not extra,
            flagged=[row for row in rows if row.needs_attention],
            cache_seconds=operations.get_config()["INSPECT_CACHE"],
        )
        return self._render(request, "queues.html", context)


# -- any task by id ----------------------------------------------------------------------------


@admin.register(CeleryTask)
class CeleryTaskAdmin(OperationsAdmin):
    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.lookup_view), name=f"{prefix}_changelist"),
            path("<path:object_id>/change/", wrap(self.task_view), name=f"{prefix}_change"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name=f"{prefix}_revoke"),
        ]

    def has_revoke_permission(self, request) -> bool:
        return has_model_perm(request.user, "revoke", WorkflowRun)

    @method_decorator(require_safe)
    def lookup_view(self, request: HttpRequest):
        self._require(request, self.has_view_permission(request))
        form = LookupForm(request.GET if "task_id" in request.GET else None)
        if form.is_valid():
            return redirect(_url("task_admin_celerytask_change", quote(form.cleaned_data[
                "task_id"]), current_app=self.admin_site.name))
        return self._render(request, "lookup.html", self._context(
            request, _("Find a task by id"), form=form, found=None))

    @method_decorator(require_safe)
    def task_view(self, request: HttpRequest, object_id: str):
        self._require(request, self.has_view_permission(request))
        task_id = unquote(object_id)
        form = LookupForm({"task_id": task_id})
        if not form.is_valid():
            return self._render(request, "lookup.html", self._context(
                request, _("Find a task by id"), form=form, found=None))
        found = operations.lookup_task(task_id)
        return self._render(request, "lookup.html", self._context(
            request, _("Celery task"),
            subtitle=task_id,
            form=LookupForm(initial={"task_id": task_id}),
            found=found,
            links=self.task_links(request, [task_id]).get(task_id, {}),
            live_worker_url=_url("task_admin_worker_change", quote(found.live.worker),
                                 current_app=self.admin_site.name) if found.live else None,
            can_revoke=self.has_revoke_permission(request) and not found.ready,
            result_text=operations.result_text(found.result),
        ))

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def revoke_view(self, request: HttpRequest, object_id: str):
        self._require(request, self.has_revoke_permission(request))
        task_id = unquote(object_id)
        if not LookupForm({"task_id": task_id}).is_valid():
            raise PermissionDenied
        task_url = _url("task_admin_celerytask_change", quote(task_id),
                        current_app=self.admin_site.name)
        if request.method == "POST":
            terminate = request.POST.get("terminate") == "on"
            try:
                operations.revoke_task(task_id, terminate=terminate)
            except operations.BROKER_ERRORS as exc:
                self.message_user(request, _(
                    "Task %(task)s was not revoked: the broker could not be reached "
                    "(%(error)s).") % {"task": task_id, "error": exc}, messages.ERROR)
            else:
                if terminate:
                    message = _("Revoked task %(task)s and terminated it if it was running.")
                else:
                    message = _("Revoked task %(task)s: workers discard it if it has not "
                                "started; a running task runs to its end.")
                message %= {"task": task_id}
                self.log_change(request, CeleryTask(task_id=task_id), message)
                self.message_user(request, message, messages.SUCCESS)
                return redirect(task_url)
        return self._render(request, "revoke_confirmation.html", self._context(
            request, _("Revoke this task?"),
            subtitle=task_id,
            object=CeleryTask(task_id=task_id),
            object_url=task_url,
            links=self.task_links(request, [task_id]).get(task_id, {}),
        ))
