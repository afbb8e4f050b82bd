"""Alert settings, edited inline on a workflow's page and (to override it) on a schedule's.

Editing them needs the change permission on the workflow, whichever page they are on; the
webhook secret is write-only (only its last characters are ever shown).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from task_admin.forms.alerts import AlertRuleForm
from task_admin.models import AlertRule, Workflow
from task_admin.permissions import has_model_perm


def _workflow_perm(request, action: str) -> bool:
    return has_model_perm(request.user, action, Workflow)


class AlertRuleInline(admin.StackedInline):
    model = AlertRule
    form = AlertRuleForm
    extra = 0
    max_num = 1
    filter_horizontal = ("users", "groups")
    verbose_name = _("alert settings")
    verbose_name_plural = _("alerts")
    when = (("on_failure", "on_partial_failure", "on_recovery"), "sla_minutes")
    who = ("users", "groups", "emails")

    def get_fieldsets(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            webhook = ("webhook_url", "secret_set")
        else:
            webhook = ("webhook_url", "new_secret", "clear_webhook")
        return [
            (None, {"fields": self.when, "description": self.description}),
            (_("Who is told"), {"fields": self.who}),
            (_("Webhook"), {"fields": webhook}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            return (*self.when[0], "sla_minutes", *self.who, "webhook_url", "secret_set")
        return ()

    @admin.display(description=_("webhook secret"))
    def secret_set(self, rule: AlertRule) -> str:
        hint = rule.secret_hint
        return _("set (ending “%(hint)s”)") % {"hint": hint} if hint else "—"

    # Alert settings are part of the workflow: its change permission edits them.
    def has_view_permission(self, request, obj=None):
        return _workflow_perm(request, "view") or _workflow_perm(request, "change")

    def has_change_permission(self, request, obj=None):
        return _workflow_perm(request, "change")

    def has_add_permission(self, request, obj):
        return _workflow_perm(request, "change")

    def has_delete_permission(self, request, obj=None):
        return _workflow_perm(request, "change")


class WorkflowAlertRuleInline(AlertRuleInline):
    fk_name = "workflow"
    description = _(
        "Who is told when a run of this workflow fails, partially fails, succeeds again after "
        "a failure, or has not finished in time. A schedule can override these."
    )


class ScheduleAlertRuleInline(AlertRuleInline):
    fk_name = "schedule"
    verbose_name = _("alert settings for this schedule")
    description = _(
        "Set here, these replace the workflow's alert settings for the runs this schedule "
        "starts (all boxes unticked: no alerts for them)."
    )
