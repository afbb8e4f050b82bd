"""Import and export through django-import-export, under task_admin's permission rules."""

from __future__ import annotations

import json
import logging

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _
from import_export.admin import ImportExportMixin

logger = logging.getLogger(__name__)

# The temporary files this session's own uploads wrote, which its confirm step may name.
SESSION_KEY = "task_admin_import_files"
REMEMBERED_FILES = 20


class FilesMixin(ImportExportMixin):
    """Import needs the add and change permissions; export, view. A refused row rolls the whole
    import back: half a set of workflows is worse than none."""

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_or_change_permission(request)

    def add_data_read_fail_error_to_form(self, form, e):
        # import-export names only the exception's class; say what is wrong with the file.
        form.add_error("import_file", describe_read_error(e))

    def get_import_data_kwargs(self, **kwargs):
        kwargs = super().get_import_data_kwargs(**kwargs)
        kwargs["rollback_on_validation_errors"] = True
        return kwargs

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        name = initial.get("import_file_name")
        if name:
            names = request.session.get(SESSION_KEY, [])[-REMEMBERED_FILES + 1:]
            request.session[SESSION_KEY] = [*names, name]
        return initial

    def process_import(self, request, **kwargs):
        # The confirm step names the temporary file to read, then deletes it: without this
        # check a crafted POST could name (and so delete) any file in the temp directory.
        if request.method == "POST":
            name = request.POST.get("import_file_name", "")
            names = request.session.get(SESSION_KEY, [])
            if name not in names:
                raise PermissionDenied
            request.session[SESSION_KEY] = [n for n in names if n != name]
        return super().process_import(request, **kwargs)


def describe_read_error(exc: Exception) -> str:
    """What is wrong with a file that cannot be read at all, in the words of someone importing."""
    logger.info("task_admin: an imported file could not be read", exc_info=exc)
    if isinstance(exc, UnicodeDecodeError):
        return _(
            "The file is not UTF-8 text (byte %(position)d cannot be read). Save it with the "
            "UTF-8 encoding and import it again."
        ) % {"position": exc.start}
    if isinstance(exc, json.JSONDecodeError):
        return _("The file is not valid JSON: %(error)s.") % {"error": exc}
    if type(exc).__name__ in ("YAMLError", "ScannerError", "ParserError", "ComposerError"):
        return _("The file is not valid YAML: %(error)s.") % {"error": exc}
    if type(exc).__name__ == "UnsupportedFormat":
        return _(
            "The file is not a table: give a list of rows with the same columns (for JSON, a "
            "list of objects)."
        )
    return _(
        "The file cannot be read in the chosen format (%(error)s). Check that the format "
        "matches the file."
    ) % {"error": str(exc) or type(exc).__name__}
