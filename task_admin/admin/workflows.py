"""Workflows in the admin: the composer, the preview with its problems, run now.

The composer (``composer.py``, ``static/task_admin/composer.js``) posts the whole tree as one
document with the workflow's fields; the save stores it in the admin's transaction. A tree can
only be checked as a whole, so an invalid tree is **kept as a draft**: the page lists each
problem next to its node and in the messages, and ``services.run_workflow`` refuses to run it
until the problems are fixed. Only what the database cannot hold (a task node without its
invocation, an unknown invocation or workflow, a malformed document) stops the save, with the
error next to the node.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import quote_etag
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

import task_admin
from task_admin import composer, services
from task_admin.admin.alerts import WorkflowAlertRuleInline
from task_admin.admin.catalogue import JavaScriptCatalogueMixin
from task_admin.admin.code import WorkflowCodeMixin
from task_admin.admin.files import FilesMixin
from task_admin.admin.operations import warn_unconsumed_queues, workflow_queues
from task_admin.forms.runs import RunOverridesForm
from task_admin.forms.task_picker import ArgumentsMedia, task_parameters
from task_admin.forms.workflows import WorkflowForm
from task_admin.links import admin_url
from task_admin.models import (
    RunStatus,
    TaskInvocation,
    Workflow,
    WorkflowNode,
    WorkflowRun,
    WorkflowSchedule,
)
from task_admin.permissions import has_model_perm
from task_admin.presenters.preview import (
    composer_preview,
    invocation_choices,
    preview,
    saved_tree,
)
from task_admin.resources import WorkflowResource

# More problems than this are summarised in the messages (the preview lists them all).
MAX_PROBLEM_MESSAGES = 10


def run_change_url(run: WorkflowRun, current_app: str = "admin") -> str | None:
    return admin_url("task_admin_workflowrun_change", run.pk, current_app=current_app)


# -- the workflow admin ------------------------------------------------------------------------


@admin.register(Workflow)
class WorkflowAdmin(JavaScriptCatalogueMixin, WorkflowCodeMixin, FilesMixin, admin.ModelAdmin):
    empty_value_display = "—"  # as everywhere else in the app, not Django's "-"
    resource_classes = [WorkflowResource]
    list_display = ("name", "enabled", "node_count", "last_run", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "description")
    form = WorkflowForm
    fields = ("name", "description", "enabled")
    inlines = [WorkflowAlertRuleInline]
    actions = ["run_workflow_now", "duplicate_workflows", "enable_workflows",
               "disable_workflows"]
    change_form_template = "admin/task_admin/workflow/change_form.html"
    run_template = "admin/task_admin/workflow/run_confirmation.html"

    class Media:
        css = {"all": ("task_admin/task_admin.css", "task_admin/workflow_admin.css")}

    # -- list ---------------------------------------------------------------------------------

    def get_queryset(self, request):
        nodes = (
            WorkflowNode.objects.filter(workflow=OuterRef("pk"))
            .order_by()
            .values("workflow")
            .annotate(count=Count("pk"))
            .values("count")
        )
        runs = WorkflowRun.objects.filter(workflow=OuterRef("pk")).order_by("-created_at", "-pk")
        return super().get_queryset(request).annotate(
            node_count=Coalesce(Subquery(nodes), 0),
            last_run_id=Subquery(runs.values("pk")[:1]),
            last_run_status=Subquery(runs.values("status")[:1]),
        )

    @admin.display(description=_("nodes"), ordering="node_count")
    def node_count(self, obj):
        return obj.node_count

    @admin.display(description=_("last run"), ordering="last_run_id")
    def last_run(self, obj):
        if not obj.last_run_id:
            return "—"
        status = obj.last_run_status
        badge = format_html(
            '<span class="ta-state ta-state-{}">{}</span>', status, RunStatus(status).label
        )
        url = run_change_url(WorkflowRun(pk=obj.last_run_id), self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, badge) if url else badge

    # -- permissions ------------------------------------------------------------------------

    def has_run_permission(self, request, obj=None):
        return has_model_perm(request.user, "run", Workflow)

    def schedule_url(self, request, workflow: Workflow) -> str | None:
        """The add-schedule page with this workflow chosen, for those who may schedule."""
        schedule_admin = self.admin_site._registry.get(WorkflowSchedule)
        if schedule_admin is None or not schedule_admin.has_add_permission(request):
            return None
        url = reverse("admin:task_admin_workflowschedule_add", current_app=self.admin_site.name)
        return f"{url}?workflow={workflow.pk}"

    # -- change form ---------------------------------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        form = context["adminform"].form
        context["composer"] = self.composer_context(request, form, obj)
        context["media"] = (
            context["media"]
            # The app's JavaScript catalogue, then arguments.js: the composer's task nodes use
            # its typed fields.
            + self.catalogue_media(*ArgumentsMedia.js, "task_admin/composer.js")
            + forms.Media(css={"all": ["task_admin/arguments.css", "task_admin/composer.css"]})
        )
        if obj is not None and obj.pk is not None:
            context["workflow_preview"] = shown = preview(obj)
            context["workflow_warnings"] = shown.warnings
            context["has_run_permission"] = self.has_run_permission(request, obj)
            context["run_url"] = self.run_url(obj)
            context["schedule_url"] = self.schedule_url(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def composer_context(self, request, form, obj) -> dict:
        """What the composer's script needs: the choices (once for the page), the preview URL
        and the errors of a refused save, by node path."""
        editable = (
            self.has_change_permission(request, obj) if obj is not None
            else self.has_add_permission(request)
        )
        # Only the invocations the tree names: the composer fetches the whole list (which
        # grows with every distinct call typed in) from ``invocations_view`` once the page is
        # open, so the page's size and time do not depend on the site's invocations.
        invocations = invocation_choices(_invocation_ids(form["tree"].value(), obj))
        workflows = [
            {"id": pk, "name": name}
            for pk, name in Workflow.objects.order_by("name").values_list("pk", "name")
            if obj is None or pk != obj.pk
        ]
        tasks = task_parameters()
        return {
            "editable": editable,
            "invocations": invocations,
            "tasks": [{"name": name, "call": info["call"]} for name, info in tasks.items()],
            "workflows": workflows,
            "data": {
                "previewUrl": reverse("admin:task_admin_workflow_preview",
                                      current_app=self.admin_site.name),
                "workflow": obj.pk if obj is not None else None,
                "editable": editable,
                "bound": form.is_bound,
                "invocations": {str(i["id"]): i for i in invocations},
                "invocationsUrl": reverse("admin:task_admin_workflow_invocations",
                                          current_app=self.admin_site.name),
                "workflows": {str(w["id"]): w["name"] for w in workflows},
                "addInvocationUrl": self._add_url(request, TaskInvocation),
                "canAddInvocations": self.can_add_invocations(request),
                "tasks": tasks,
                "errors": [{"path": p.path, "message": p.message, "level": "error"}
                           for p in getattr(form, "tree_errors", [])],
            },
        }

    def can_add_invocations(self, request) -> bool:
        """Whether a task node's inline call may create an invocation on save."""
        invocation_admin = self.admin_site._registry.get(TaskInvocation)
        return invocation_admin is not None and invocation_admin.has_add_permission(request)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {
            "can_add_invocations": self.can_add_invocations(request),
        })

    def _add_url(self, request, model) -> str | None:
        model_admin = self.admin_site._registry.get(model)
        if model_admin is None or not model_admin.has_add_permission(request):
            return None
        return reverse(f"admin:task_admin_{model._meta.model_name}_add",
                       current_app=self.admin_site.name)

    def save_related(self, request, form, formsets, change):
        if form.composition is not None:
            composer.save(form.instance, form.composition)
            made = form.composition.new_invocations
            if made:
                LogEntry.objects.log_actions(
                    request.user.pk, made, ADDITION,
                    change_message=gettext("Added by the composer for workflow “%(name)s”.")
                    % {"name": form.instance.name},
                    single_object=len(made) == 1,
                )
        super().save_related(request, form, formsets, change)
        saved = saved_tree(form.instance, form.composition)  # compiled and checked once
        for warning in saved.warnings:
            self.message_user(
                request, gettext("Warning: %(warning)s") % {"warning": str(warning)},
                messages.WARNING,
            )
        self.report_problems(request, form.instance, saved.problems)
        warn_unconsumed_queues(self, request, workflow_queues(form.instance, saved.spec))

    def report_problems(self, request, workflow: Workflow, problems: list) -> None:
        if not problems:
            return
        count = len(problems)
        self.message_user(
            request,
            ngettext(
                "“%(name)s” is saved as a draft with %(count)d problem: it cannot run until "
                "it is fixed.",
                "“%(name)s” is saved as a draft with %(count)d problems: it cannot run until "
                "they are fixed.",
                count,
            ) % {"name": workflow.name, "count": count},
            messages.WARNING,
        )
        for problem in problems[:MAX_PROBLEM_MESSAGES]:
            self.message_user(request, str(problem), messages.ERROR)
        if count > MAX_PROBLEM_MESSAGES:
            more = count - MAX_PROBLEM_MESSAGES
            self.message_user(
                request,
                ngettext("…and %(count)d more problem, listed under the tree.",
                         "…and %(count)d more problems, listed under the tree.", more)
                % {"count": more},
                messages.ERROR,
            )

    # -- actions ------------------------------------------------------------------------------

    @admin.action(description=_("Run the selected workflow…"), permissions=["run"])
    def run_workflow_now(self, request, queryset):
        pks = list(queryset.values_list("pk", flat=True)[:2])
        if len(pks) != 1:
            self.message_user(
                request,
                gettext("Select one workflow to run: each run is confirmed on its own page."),
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(self.run_url(Workflow(pk=pks[0])))

    @admin.action(description=_("Duplicate selected workflows"), permissions=["add"])
    def duplicate_workflows(self, request, queryset):
        originals = list(Workflow.objects.filter(pk__in=list(queryset.values_list("pk",
                                                                                   flat=True))))
        for original in originals:
            copy = services.copy_workflow(original)
            self.log_addition(
                request, copy, gettext("Copied from “%(name)s”.") % {"name": original.name}
            )
        count = len(originals)
        self.message_user(
            request,
            ngettext("%(count)d workflow was copied.", "%(count)d workflows were copied.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Enable selected workflows"), permissions=["change"])
    def enable_workflows(self, request, queryset):
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(description=_("Disable selected workflows"), permissions=["change"])
    def disable_workflows(self, request, queryset):
        self._set_enabled(request, queryset, enabled=False)

    def _set_enabled(self, request, queryset, *, enabled: bool) -> None:
        pks = list(queryset.values_list("pk", flat=True))
        targets = list(Workflow.objects.filter(pk__in=pks).exclude(enabled=enabled))
        Workflow.objects.filter(pk__in=[wf.pk for wf in targets]).update(
            enabled=enabled, updated_at=timezone.now()
        )
        if targets:
            label = str(Workflow._meta.get_field("enabled").verbose_name)
            LogEntry.objects.log_actions(
                request.user.pk, targets, CHANGE,
                change_message=[{"changed": {"fields": [label]}}],
            )
        count = len(targets)
        if enabled:
            message = ngettext("%(count)d workflow was enabled.",
                               "%(count)d workflows were enabled.", count)
        else:
            message = ngettext("%(count)d workflow was disabled.",
                               "%(count)d workflows were disabled.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)

    # -- run now ------------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "composer/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="{}_{}_preview".format(*info),
            ),
            path(
                "composer/invocations/",
                # Cacheable: admin_view would add no-store, and the browser would never ask
                # with its ETag (login, staff and CSRF stay as for every admin view).
                self.admin_site.admin_view(self.invocations_view, cacheable=True),
                name="{}_{}_invocations".format(*info),
            ),
            path(
                "<path:object_id>/run/",
                self.admin_site.admin_view(self.run_view),
                name="{}_{}_run".format(*info),
            ),
            *super().get_urls(),
        ]

    @method_decorator(require_safe)
    def invocations_view(self, request):
        """Every invocation, as the composer offers them to pick by name (JSON). The list
        changes only when an invocation is added, changed or deleted: its ETag says so, and
        a browser that has it gets a 304 without the list being read."""
        # Whoever may open a workflow's page, the add page included.
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        # The app's version too: an upgrade may write the calls or the JSON otherwise.
        etag = quote_etag("-".join(str(value) for value in (
            task_admin.__version__, *TaskInvocation.objects.aggregate(
                count=Count("pk"), last=Max("pk"), changed=Max("updated_at")).values())))
        unchanged = get_conditional_response(request, etag=etag)
        if unchanged is not None:
            return unchanged
        response = JsonResponse({"invocations": invocation_choices()})
        response["ETag"] = etag
        # Kept by the browser, asked again each time the page opens (the ETag answers).
        patch_cache_control(response, private=True, no_cache=True)
        return response

    @method_decorator(require_POST)
    def preview_view(self, request):
        """The composer's live preview: the posted tree checked as a save would check it, the
        graph and the canvas. Changes nothing (POST only because a tree may be large)."""
        workflow = None
        pk = request.POST.get("workflow") or ""
        if pk:
            workflow = self.get_object(request, unquote(pk))
            if workflow is None:
                raise Http404
            allowed = self.has_change_permission(request, workflow)
        else:
            allowed = self.has_add_permission(request)
        if not allowed:
            raise PermissionDenied
        name = request.POST.get("name") or (workflow.name if workflow else "")
        try:
            composition = composer.parse(request.POST.get("tree") or "", workflow,
                                         can_add_invocations=self.can_add_invocations(request))
        except composer.DocumentError as exc:
            return JsonResponse(composer_preview(None, name, exc.problems))
        return JsonResponse(composer_preview(composition, name))

    def run_url(self, workflow: Workflow) -> str:
        return reverse(
            "admin:task_admin_workflow_run", args=[workflow.pk], current_app=self.admin_site.name
        )

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def run_view(self, request, object_id):
        workflow = self.get_object(request, unquote(object_id))
        if workflow is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not (
            self.has_view_or_change_permission(request, workflow)
            and self.has_run_permission(request, workflow)
        ):
            raise PermissionDenied
        posted = request.method == "POST"
        # A POST compiles the tree once, here, and checks it once, in services.prepare_run
        # (the form's clean); the page lists the problems again only when nothing started.
        shown = preview(workflow, check=not posted)
        form = None
        if shown.spec is not None:
            form = RunOverridesForm(request.POST if posted else None, workflow=workflow,
                                    spec=shown.spec)
        if posted:
            if form is not None and form.is_valid():
                response = self._run_prepared(request, workflow, form.prepared)
                if response is not None:
                    return response
            shown = preview(workflow)
            if not shown.can_run:
                self.message_user(
                    request,
                    gettext("“%(name)s” cannot run until its problems are fixed.")
                    % {"name": workflow.name},
                    messages.ERROR,
                )
        change_url = reverse(
            "admin:task_admin_workflow_change", args=[workflow.pk],
            current_app=self.admin_site.name,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Run “%(name)s”") % {"name": workflow.name},
            "subtitle": None,
            "opts": self.opts,
            "original": workflow,
            "object": workflow,
            "object_url": change_url,
            "workflow_preview": shown,
            "form": form,
            "media": (
                self.media + self.catalogue_media(*ArgumentsMedia.js) + form.media
                if form else self.media
            ),
            "change_url": change_url,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.run_template, context)

    def _run_prepared(self, request, workflow: Workflow, prepared: services.PreparedRun):
        try:
            run = services.run_prepared(prepared, user=request.user)
        except services.CannotRun as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        overridden = len(prepared.overrides)
        if overridden:
            note = ngettext(
                "Ran “%(name)s” with one-off arguments for %(count)d task.",
                "Ran “%(name)s” with one-off arguments for %(count)d tasks.",
                overridden,
            ) % {"name": workflow.name, "count": overridden}
        else:
            note = gettext("Ran “%(name)s”.") % {"name": workflow.name}
        self.log_addition(request, run, note)
        run.refresh_from_db(fields=["status", "error"])
        if run.status == RunStatus.DISPATCH_FAILED:
            self.message_user(
                request,
                gettext("Run #%(run)s of “%(name)s” could not be sent: %(error)s")
                % {"run": run.pk, "name": workflow.name, "error": run.error},
                messages.ERROR,
            )
        else:
            self.message_user(
                request,
                gettext("Run #%(run)s of “%(name)s” was started.")
                % {"run": run.pk, "name": workflow.name},
                messages.SUCCESS,
            )
        url = run_change_url(run, self.admin_site.name) or reverse(
            "admin:task_admin_workflow_change", args=[workflow.pk],
            current_app=self.admin_site.name,
        )
        return HttpResponseRedirect(url)



def _invocation_ids(document, workflow) -> set[int]:
    """The invocations a composer document names (the posted tree of a refused save, or the
    stored one); the stored tree's when the document cannot be read."""
    try:
        return composer.invocation_ids(document or "{}")
    except composer.DocumentError:
        if workflow is None:
            return set()
        return set(WorkflowNode.objects.filter(workflow=workflow, invocation__isnull=False)
                   .values_list("invocation_id", flat=True))
