"""Django's permission names, built one way: ``get_permission_codename`` for a model's
actions (view, add, run, revoke, ...), ``<app_label>.<codename>`` for the app's own."""

from __future__ import annotations

from django.contrib.auth import get_permission_codename
from django.db.models import Model


def has_model_perm(user, action: str, model: type[Model] | Model) -> bool:
    """Whether ``user`` holds ``<app_label>.<action>_<model>``: "view", "add", "revoke", ..."""
    opts = model._meta
    return user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def has_app_perm(user, codename: str, app_label: str = "task_admin") -> bool:
    """Whether ``user`` holds one of the app's permissions that are not a model's action
    (the worker controls: "shutdown_worker", "resize_pool", ...)."""
    return user.has_perm(f"{app_label}.{codename}")
