"""Import and export through django-import-export, under task_admin's permission rules."""

from __future__ import annotations

from import_export.admin import ImportExportMixin


class FilesMixin(ImportExportMixin):
    """Import needs the add and change permissions; export, view. A refused row rolls the whole
    import back: half a set of workflows is worse than none."""

    def has_import_permission(self, request):
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request):
        return self.has_view_or_change_permission(request)

    def get_import_data_kwargs(self, **kwargs):
        kwargs = super().get_import_data_kwargs(**kwargs)
        kwargs["rollback_on_validation_errors"] = True
        return kwargs
