"""The alert settings form: webhook destinations checked against the setting, and a secret
that is written but never shown back."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from task_admin import webhooks
from task_admin.conf import get_config
from task_admin.models import AlertRule

MIN_SECRET_LENGTH = 16


class AlertRuleForm(forms.ModelForm):
    # Write-only: the stored secret is never put back into the page.
    new_secret = forms.CharField(
        label=_("webhook secret"),
        required=False,
        strip=True,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    webhook_url = forms.URLField(
        label=AlertRule._meta.get_field("webhook_url").verbose_name,
        help_text=AlertRule._meta.get_field("webhook_url").help_text,
        required=False,
        max_length=500,
        assume_scheme="https",
    )
    clear_webhook = forms.BooleanField(
        label=_("remove the webhook and its secret"), required=False
    )

    class Meta:
        model = AlertRule
        fields = (
            "on_failure", "on_partial_failure", "on_recovery", "sla_minutes",
            "users", "groups", "emails", "webhook_url",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "users" in self.fields:
            self.fields["users"].queryset = get_user_model().objects.filter(
                is_staff=True, is_active=True
            ).order_by(get_user_model().USERNAME_FIELD)
        hint = self.instance.secret_hint if self.instance.pk else ""
        if hint:
            self.fields["new_secret"].help_text = _(
                "A secret is set (ending “%(hint)s”). Leave empty to keep it."
            ) % {"hint": hint}
        else:
            self.fields["new_secret"].help_text = _(
                "Needed with a webhook URL: at least %(length)d characters. The receiver checks "
                "the X-Task-Admin-Signature header with it."
            ) % {"length": MIN_SECRET_LENGTH}

    def clean_webhook_url(self):
        url = self.cleaned_data.get("webhook_url", "")
        if url:
            try:
                webhooks.check_allowed(url, get_config()["ALERT_WEBHOOK_ALLOWED"])
            except webhooks.WebhookRefused as exc:
                raise forms.ValidationError(str(exc), code="not_allowed") from None
        return url

    def clean_new_secret(self):
        secret = self.cleaned_data.get("new_secret", "")
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise forms.ValidationError(
                _("Use at least %(length)d characters."),
                code="too_short",
                params={"length": MIN_SECRET_LENGTH},
            )
        return secret

    def clean(self):
        data = super().clean()
        if data.get("clear_webhook"):
            data["webhook_url"] = ""
            return data
        url, secret = data.get("webhook_url"), data.get("new_secret")
        if url and not secret and not self.instance.webhook_secret:
            self.add_error("new_secret", _("Enter a secret to sign the webhook's requests with."))
        wants = any(data.get(f) for f in ("on_failure", "on_partial_failure", "on_recovery"))
        wants = wants or data.get("sla_minutes") is not None
        someone = url or data.get("emails") or any(
            data.get(f) is not None and data[f].exists() for f in ("users", "groups")
        )
        if wants and not someone:
            raise forms.ValidationError(
                _("Choose who is told: staff users, groups, email addresses or a webhook."),
                code="nobody",
            )
        return data

    def _post_clean(self):
        data = self.cleaned_data
        if data.get("clear_webhook"):
            self.instance.webhook_secret = ""
        elif data.get("new_secret"):
            self.instance.webhook_secret = data["new_secret"]
        super()._post_clean()

