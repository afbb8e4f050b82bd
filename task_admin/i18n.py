"""Translation at the boundary of the pure canvas: its messages reach staff in their language.

The canvas imports no Django, so it marks its messages with ``canvas.text._`` (English text that
keeps its template and values); ``translated`` translates them here, in the active language.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.utils.translation import gettext

from task_admin.canvas.text import Text


def translated(message: Any) -> Any:
    """``message`` in the active language when it is a canvas ``Text``; anything else as is."""
    if not isinstance(message, Text):
        return message
    template = gettext(message.template)
    if not message.params:
        return template
    params = {key: translated(value) for key, value in message.params.items()}
    try:
        return template % params
    except (KeyError, TypeError, ValueError):  # a broken translation must not hide the problem
        return str(message)


def translated_problems(problems):
    """The canvas problems with their messages in the active language."""
    return [replace(p, message=translated(p.message)) for p in problems]
