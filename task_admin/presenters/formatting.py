"""How values are written on the app's pages: state badges, durations, times, JSON previews.

Plain functions: the template tags register them as filters, and the admin's list columns and
JSON endpoints call them, so a value reads the same wherever it is shown.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _

from task_admin.conf import get_config
from task_admin.models import NodeState, RunStatus

STATE_LABELS = {**dict(RunStatus.choices), **dict(NodeState.choices)}


def state_badge(state: str, label: str | None = None) -> SafeString:
    """A coloured badge for a run status or a node state (``.ta-state-<state|lower>``)."""
    label = label if label is not None else STATE_LABELS.get(state, state)
    # format_html, not a template: list pages draw a badge on every row.
    state = state or ""
    return format_html(
        '<span class="ta-state ta-state-{}" title="{}">{}</span>', state.lower(), state, label
    )


def duration(value: timedelta | float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; empty for None."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 10:
        return _("%(seconds).2f s") % {"seconds": seconds}
    if seconds < 60:
        return _("%(seconds).1f s") % {"seconds": seconds}
    whole = int(seconds)
    if whole < 3600:
        return _("%(minutes)d min %(seconds)02d s") % {
            "minutes": whole // 60, "seconds": whole % 60,
        }
    return _("%(hours)d h %(minutes)02d min") % {
        "hours": whole // 3600, "minutes": whole % 3600 // 60,
    }


def time_ago(value: datetime | None) -> str:
    """"3 minutes ago", or "just now" under a minute (Django's timesince says "0 minutes")."""
    if not value:
        return ""
    if abs((timezone.now() - value).total_seconds()) < 60:
        return _("just now")
    return _("%(delta)s ago") % {"delta": timesince(value)}


def time_until(value: datetime | None) -> str:
    """"in 3 minutes", or "in less than a minute" (Django's timeuntil says "0 minutes")."""
    if not value:
        return ""
    if (value - timezone.now()).total_seconds() < 60:
        return _("in less than a minute")
    return _("in %(delta)s") % {"delta": timeuntil(value)}


def elapsed(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was at ``now``: ``4.20 s``, ``3 min 05 s``, ``2 h 03 min``
    (Django's timesince says "0 minutes" for a task started seconds ago)."""
    if not value:
        return ""
    return duration(max((now or timezone.now()) - value, timedelta(0)))


def cut(text: str, limit: int | None = None) -> str:
    limit = get_config()["RESULT_PREVIEW_CHARS"] if limit is None else limit
    return text if len(text) <= limit else text[:limit] + "…"


def result_preview(value: Any) -> str:
    """A JSON value as one line of text, cut to ``RESULT_PREVIEW_CHARS`` (escape when shown)."""
    if value is None:
        return ""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    return cut(text)


def preview_from_json_text(head: str | None) -> str:
    """A preview from the first characters of a stored JSON value (see
    ``run_page.with_result_head``)."""
    if head is None:
        return ""
    limit = get_config()["RESULT_PREVIEW_CHARS"]
    if len(head) <= limit:
        try:  # whole: normalise the database's spelling (escaped unicode, spaces)
            return result_preview(json.loads(head))
        except ValueError:
            return head
    return cut(head, limit)


def pretty_json(value: Any) -> str:
    """Indented JSON text (escape when shown)."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def local_time(value: datetime | None) -> str:
    """A time in the current time zone, to the second ("—" when there is none): a run's steps
    are seconds apart, and Django's default format hides the seconds."""
    if value is None:
        return "—"
    return date_format(timezone.localtime(value), "Y-m-d H:i:s")
