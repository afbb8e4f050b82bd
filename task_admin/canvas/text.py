"""Messages of the canvas, marked for translation without importing Django.

``_("countdown must be ... not %(value)s", value=...)`` returns a :class:`Text`: a plain English
``str`` (so logs, tests and ``str()`` read as before) that also keeps its template and values.
``makemessages`` extracts the templates (``_`` is one of xgettext's keywords); the Django side
translates at the boundary with ``task_admin.i18n.translated``, which looks the template up in the
active language and fills the values in again.
"""

from __future__ import annotations

from typing import Any


class Text(str):
    """An English message that remembers its template and its values."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, /, **params: Any) -> Text:
        text = super().__new__(cls, template % params if params else template)
        text.template = template
        text.params = params
        return text

    def __reduce__(self):
        return (_rebuild, (self.template, self.params))


def _rebuild(template: str, params: dict[str, Any]) -> Text:
    return Text(template, **params)


def _(template: str, /, **params: Any) -> Text:
    """Mark ``template`` for translation; fill in ``params`` (named ``%(...)s`` placeholders)."""
    return Text(template, **params)
