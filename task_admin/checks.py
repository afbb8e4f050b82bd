"""System checks. Ids are stable: document new ones in docs/checks.md, never renumber."""

from __future__ import annotations

from django.apps import apps
from django.core import checks

from task_admin.conf import DEFAULTS, get_config

REQUIRED_APPS = ("django_celery_beat", "django_celery_results", "import_export")


def check_required_apps(app_configs=None, **kwargs):
    return [
        checks.Error(
            f"'{name}' must be in INSTALLED_APPS.",
            hint="task_admin schedules through django-celery-beat, reads results from "
            "django-celery-results and imports workflows with django-import-export.",
            obj="task_admin",
            id="task_admin.E001",
        )
        for name in REQUIRED_APPS
        if not apps.is_installed(name)
    ]


def check_celery_app(app_configs=None, **kwargs):
    from task_admin.registry import NoCeleryApp, get_app

    try:
        app = get_app()
    except NoCeleryApp as exc:
        return [
            checks.Error(
                str(exc),
                hint="Create the app in your project's celery.py and import it in the project's "
                "__init__.py, or set TASK_ADMIN = {'CELERY_APP': 'project.celery.app'}.",
                obj="task_admin",
                id="task_admin.E002",
            )
        ]
    unsafe = {app.conf.task_serializer, app.conf.result_serializer, *app.conf.accept_content}
    unsafe -= {"json", "application/json"}
    if unsafe:
        return [
            checks.Error(
                f"The Celery app accepts or produces {', '.join(sorted(unsafe))}.",
                hint="task_admin sends what staff typed in the admin: only JSON is safe. Set "
                "CELERY_ACCEPT_CONTENT = ['json'] and the task/result serializers to 'json'.",
                obj="task_admin",
                id="task_admin.E003",
            )
        ]
    return []


def check_settings(app_configs=None, **kwargs):
    from django.conf import settings

    unknown = sorted(set(getattr(settings, "TASK_ADMIN", {})) - set(DEFAULTS))
    errors = [
        checks.Warning(
            f"Unknown TASK_ADMIN setting '{key}'.",
            hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
            obj="task_admin",
            id="task_admin.W001",
        )
        for key in unknown
    ]
    allowed = get_config()["ALLOWED_TASKS"]
    if allowed is not None and not isinstance(allowed, list | tuple):
        errors.append(
            checks.Error(
                "TASK_ADMIN['ALLOWED_TASKS'] must be None or a list of task name patterns.",
                obj="task_admin",
                id="task_admin.E004",
            )
        )
    return errors


def register() -> None:
    checks.register(check_required_apps)
    checks.register(check_celery_app)
    checks.register(check_settings)
