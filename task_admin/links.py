"""Links to admin pages that may not exist: a model unregistered, an app not installed."""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse


def admin_url(name: str, *args: Any, current_app: str | None = None) -> str | None:
    """``reverse("admin:<name>", args)``, or None when the site has no such page."""
    try:
        return reverse(f"admin:{name}", args=args, current_app=current_app)
    except NoReverseMatch:
        return None
