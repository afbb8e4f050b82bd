"""Template helpers for the run pages and the admin index dashboard: ``{% load task_admin %}``.

They only format: the values come from ``presenters`` (``formatting`` writes them, ``dashboard``
reads the dashboard's rows), so a list column and a template render the same text.
"""

from __future__ import annotations

from typing import Any

from django import template

from task_admin.presenters.dashboard import dashboard
from task_admin.presenters.formatting import (
    duration,
    elapsed,
    pretty_json,
    result_preview,
    state_badge,
    time_ago,
    time_until,
)

register = template.Library()
# Where the dashboard tag notes, for the page being rendered, that it has shown the dashboard.
_DASHBOARD_SHOWN = "task_admin_dashboard_shown"

register.simple_tag(state_badge)
for _filter in (duration, elapsed, time_ago, time_until, result_preview, pretty_json):
    register.filter(_filter)


@register.inclusion_tag("task_admin/dashboard.html", takes_context=True)
def task_admin_dashboard(context) -> dict[str, Any]:
    """The dashboard for the admin index (``presenters.dashboard``), for the request's user.

    Once per page: Django's ``admin/app_index.html`` extends the site's ``admin/index.html``,
    so on the app's own page (which adds the dashboard) a site index that adds it too
    (docs/installation.md, step 5) would show it a second time.
    """
    if context.render_context.get(_DASHBOARD_SHOWN):
        return {"show": False}
    context.render_context[_DASHBOARD_SHOWN] = True
    request = context.get("request")
    return dashboard(getattr(request, "user", None) or context.get("user"))
