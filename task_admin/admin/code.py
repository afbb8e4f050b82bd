"""Canvas as code in the admin: paste to create or replace a tree, copy a workflow or run as code.

One mixin for the workflow admin. Its pages only route: reading, checking and saving are
``canvas_code``'s. Pasted code is shown as a preview (tree, graph, problems and warnings)
before anything is saved; saving re-reads the posted text, so the server stays the judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.text import slugify
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_safe

from task_admin import canvas, canvas_code
from task_admin.canvas.code import short_expression
from task_admin.models import Workflow

CODE_HELP = _(
    "A Celery canvas expression, e.g. chord([suma.s(1, 1), suma.s(2, 2)], sum_list.s()), "
    "using group, chain, chord, |, .s(), .si(), signature(\"name\", args=..., kwargs=...) and "
    ".set(countdown=..., queue=...). Short task names work when only one allowed task has "
    "that name. The text is read, never run: arguments are literals only."
)


class CodeForm(forms.Form):
    # Prefixed: on the Add page this form sits beside the workflow form, whose fields and ids
    # ("name", "id_name") must stay unique.
    prefix = "paste"

    code = forms.CharField(
        label=_("Canvas code"),
        help_text=CODE_HELP,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "spellcheck": "false",
                                     "class": "ta-code-input", "autocomplete": "off"}),
    )


class NewFromCodeForm(CodeForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 90}),
    )

    field_order = ["name", "code", "description"]

    def clean_name(self):
        name = self.cleaned_data["name"]
        if Workflow.objects.filter(name=name).exists():
            raise forms.ValidationError(
                gettext("A workflow named “%(name)s” already exists.") % {"name": name}
            )
        return name


@dataclass
class CodePreview:
    """What pasted code would become, for the page: tree rows, graph, errors and warnings."""

    reading: canvas_code.Reading
    rows: list[tuple[str, int, str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, reading: canvas_code.Reading) -> CodePreview:
        rows = []
        if reading.spec is not None:
            for node_path, node, depth in canvas.walk(reading.spec):
                kind = type(node).__name__.lower()
                detail = short_expression(node) if isinstance(node, canvas.Task) else ""
                rows.append((node_path, depth, kind, detail))
        return cls(reading, rows)

    @property
    def graph(self) -> str:
        if self.reading.spec is None:
            return ""
        from task_admin.graph import render_svg

        return render_svg(self.reading.spec)

    @property
    def code(self) -> str:
        return canvas_code.render(self.reading.spec) if self.reading.spec is not None else ""


class WorkflowCodeMixin:
    """Adds "from code", "replace tree from code" and "copy as code" to the workflow admin.

    Its views are wrapped in ``admin_site.admin_view`` (staff only, CSRF-protected), re-check
    the add, change or view permission, and change nothing on GET.
    """

    from_code_template = "admin/task_admin/workflow/from_code.html"
    code_template = "admin/task_admin/workflow/code.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("from-code/", wrap(self.from_code_view), name="{}_{}_from_code".format(*info)),
            path("<path:object_id>/replace-from-code/", wrap(self.replace_from_code_view),
                 name="{}_{}_replace_from_code".format(*info)),
            path("<path:object_id>/as-code/", wrap(self.code_view),
                 name="{}_{}_as_code".format(*info)),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args) -> str:
        return reverse(f"admin:task_admin_workflow_{name}", args=args,
                       current_app=self.admin_site.name)

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if add and self.has_add_permission(request):
            context["from_code_form"] = NewFromCodeForm()
            context["from_code_url"] = self._url("from_code")
        if obj is not None and obj.pk is not None:
            context["code_url"] = self._url("as_code", obj.pk)
            if self.has_change_permission(request, obj):
                context["replace_from_code_url"] = self._url("replace_from_code", obj.pk)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- paste to create / replace ------------------------------------------------------------

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def from_code_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = NewFromCodeForm(request.POST if request.method == "POST" else None)
        shown = None
        if request.method == "POST" and form.is_valid():
            reading = canvas_code.read(form.cleaned_data["code"])
            if "_save" in request.POST and reading.ok:
                try:
                    workflow, created = canvas_code.create_workflow(
                        reading, name=form.cleaned_data["name"],
                        description=form.cleaned_data["description"],
                    )
                except canvas_code.Refused as exc:
                    reading.errors += exc.messages
                else:
                    self.log_addition(request, workflow, gettext("Created from code."))
                    self._report(request, workflow, reading, created, gettext(
                        "The workflow “%(name)s” was created from code."))
                    return HttpResponseRedirect(self._url("change", workflow.pk))
            shown = CodePreview.of(reading)
        return self._code_page(request, form, shown, title=gettext("Add workflow from code"),
                               crumb=gettext("From code"))

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def replace_from_code_view(self, request, object_id):
        workflow = self.get_object(request, unquote(object_id))
        if workflow is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, workflow):
            raise PermissionDenied
        if request.method == "POST":
            form = CodeForm(request.POST)
        else:
            form = CodeForm(initial={"code": canvas_code.workflow_code(workflow) or ""})
        shown = None
        if request.method == "POST" and form.is_valid():
            reading = canvas_code.read(form.cleaned_data["code"])
            if "_save" in request.POST and reading.ok:
                try:
                    created = canvas_code.replace_tree(workflow, reading)
                except canvas_code.Refused as exc:
                    reading.errors += exc.messages
                else:
                    self.log_change(request, workflow, gettext("Replaced the tree from code."))
                    self._report(request, workflow, reading, created, gettext(
                        "The tree of “%(name)s” was replaced from code."))
                    return HttpResponseRedirect(self._url("change", workflow.pk))
            shown = CodePreview.of(reading)
        return self._code_page(
            request, form, shown, workflow=workflow,
            title=gettext("Replace the tree of “%(name)s” from code") % {"name": workflow.name},
            crumb=gettext("Replace tree from code"),
        )

    def _report(self, request, workflow, reading, created, done: str) -> None:
        self.message_user(request, done % {"name": workflow.name}, messages.SUCCESS)
        if created:
            self.message_user(
                request,
                ngettext("%(count)d task invocation was created: %(names)s.",
                         "%(count)d task invocations were created: %(names)s.", len(created))
                % {"count": len(created), "names": ", ".join(i.name for i in created)},
                messages.INFO,
            )
        for warning in reading.warnings:
            self.message_user(request, gettext("Warning: %(warning)s") % {"warning": warning},
                              messages.WARNING)

    def _code_page(self, request, form, shown, *, title, crumb, workflow=None):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "object": workflow,
            "object_url": self._url("change", workflow.pk) if workflow else None,
            "changelist_url": self._url("changelist"),
            "crumb": crumb,
            "form": form,
            "preview": shown,
            "can_save": shown is not None and shown.reading.ok,
            "media": self.media + form.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.from_code_template, context)

    # -- copy as code ---------------------------------------------------------------------------

    @method_decorator(require_safe)
    def code_view(self, request, object_id):
        workflow = self.get_object(request, unquote(object_id))
        if workflow is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, workflow):
            raise PermissionDenied
        code = canvas_code.workflow_code(workflow)
        return show_code(self, request, code, workflow.name, obj=workflow,
                         object_url=self._url("change", workflow.pk))


class RunCodeMixin:
    """"Copy as code" on the run page: the canvas the run sent (its snapshot)."""

    code_template = "admin/task_admin/workflow/code.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/as-code/", self.admin_site.admin_view(self.code_view),
                 name="{}_{}_as_code".format(*info)),
            *super().get_urls(),
        ]

    @method_decorator(require_safe)
    def code_view(self, request, object_id):
        run = self.get_object(request, unquote(object_id))
        if run is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, run):
            raise PermissionDenied
        url = reverse("admin:task_admin_workflowrun_change", args=[run.pk],
                      current_app=self.admin_site.name)
        return show_code(self, request, canvas_code.run_code(run),
                         f"{run.workflow_name} run {run.pk}", obj=run, object_url=url)


def show_code(model_admin, request, code, name, *, obj, object_url):
    """The code page (copy button, download), or the code itself with ``?format=text``."""
    if request.GET.get("format") == "text" and code is not None:
        response = HttpResponse(code, content_type="text/x-python; charset=utf-8")
        filename = (slugify(name) or "workflow").replace("-", "_") + ".py"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("“%(name)s” as code") % {"name": str(obj)},
        "subtitle": None,
        "opts": model_admin.opts,
        "object": obj,
        "object_url": object_url,
        "code": code,
        "download_url": "?format=text",
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, model_admin.code_template, context)

