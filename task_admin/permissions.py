"""Django's permission names, built one way (``get_permission_codename``) for every model."""

from __future__ import annotations

from django.contrib.auth import get_permission_codename
from django.db.models import Model


def has_model_perm(user, action: str, model: type[Model] | Model) -> bool:
    """Whether ``user`` holds ``<app_label>.<action>_<model>``: "view", "add", "revoke", ..."""
    opts = model._meta
    return user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
