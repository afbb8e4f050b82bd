"""System checks. Ids are stable: document new ones in docs/checks.md, never renumber."""

from __future__ import annotations

from contextvars import ContextVar

from django.apps import apps
from django.core import checks

from task_admin.conf import DEFAULTS, get_config

# django-celery-results is optional: any result backend Celery supports works.
REQUIRED_APPS = ("django_celery_beat", "import_export")


def check_required_apps(app_configs=None, **kwargs):
    from django.conf import settings

    errors = [
        checks.Error(
            f"'{name}' must be in INSTALLED_APPS.",
            hint="task_admin schedules through django-celery-beat and imports workflows "
            "with django-import-export.",
            obj="task_admin",
            id="task_admin.E001",
        )
        for name in REQUIRED_APPS
        if not apps.is_installed(name)
    ]
    backend = str(getattr(settings, "CELERY_RESULT_BACKEND", "") or "")
    if backend.startswith("django-") and not apps.is_installed("django_celery_results"):
        errors.append(
            checks.Error(
                f"CELERY_RESULT_BACKEND = {backend!r} needs 'django_celery_results' in "
                "INSTALLED_APPS.",
                hint="pip install django-celery-results and add it to INSTALLED_APPS, or use "
                "another result backend (redis://..., for example).",
                obj="task_admin",
                id="task_admin.E001",
            )
        )
    return errors


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


def check_webhook_destinations(app_configs=None, **kwargs):
    """E005: ALERT_WEBHOOK_ALLOWED must be a list of hosts or http(s) URL prefixes."""
    from task_admin import webhooks

    entries = get_config()["ALERT_WEBHOOK_ALLOWED"]
    if not isinstance(entries, list | tuple):
        return [checks.Error(
            "TASK_ADMIN['ALERT_WEBHOOK_ALLOWED'] must be a list of hosts or URL prefixes.",
            obj="task_admin",
            id="task_admin.E005",
        )]
    errors = []
    for entry in entries:
        try:
            webhooks.allowed_entry(entry)
        except (webhooks.WebhookRefused, AttributeError, TypeError) as exc:
            errors.append(checks.Error(
                f"TASK_ADMIN['ALERT_WEBHOOK_ALLOWED'] entry {entry!r} is not usable: {exc}",
                hint="Write a host ('hooks.example.com') or a URL prefix "
                "('https://hooks.example.com/task-admin/').",
                obj="task_admin",
                id="task_admin.E005",
            ))
    return errors


# Loading the task modules runs Celery's Django fixup, which runs the system checks again.
_loading_tasks = ContextVar("task_admin_loading_tasks", default=False)


def check_allowed_tasks(app_configs=None, **kwargs):
    """W003: ALLOWED_TASKS is set, yet matches no registered task, or none of the apps' tasks."""
    allowed = get_config()["ALLOWED_TASKS"]
    if not isinstance(allowed, list | tuple) or _loading_tasks.get():
        return []  # None is the default; anything else is E004
    token = _loading_tasks.set(True)
    try:
        return _allowed_tasks_problems(allowed)
    finally:
        _loading_tasks.reset(token)


def _allowed_tasks_problems(allowed) -> list:
    from task_admin.registry import (
        NoCeleryApp,
        allowed_tasks,
        get_app,
        installed_app_tasks,
        registered_tasks,
    )

    try:
        app = get_app()
        picked = allowed_tasks(app)
        ours = installed_app_tasks(app)
        registered = registered_tasks(app)
    except NoCeleryApp:
        return []  # E002 says it
    hint = (
        "Patterns match task names, which Celery takes from the module that defines the task "
        "(an app 'shop' gives 'shop.tasks.add'): list e.g. 'shop.*'. Registered tasks: "
        f"{', '.join((ours or registered)[:8]) or 'none'}. Restart the web server and the "
        "workers after changing the setting."
    )
    if not picked:
        message = (
            f"TASK_ADMIN['ALLOWED_TASKS'] = {list(allowed)!r} matches none of the tasks "
            "registered with the Celery app: staff can pick no task."
        )
    elif ours and not set(picked) & set(ours):
        # The trap of a project-named pattern ("mysite.*"): it matches the Celery app's own
        # debug_task, and none of the apps' tasks, which are named after the apps.
        message = (
            f"TASK_ADMIN['ALLOWED_TASKS'] = {list(allowed)!r} matches none of the tasks of "
            f"your installed apps, only {', '.join(sorted(picked)[:3])}."
        )
    else:
        return []
    return [checks.Warning(message, hint=hint, obj="task_admin", id="task_admin.W003")]


def register() -> None:
    checks.register(check_required_apps)
    checks.register(check_celery_app)
    checks.register(check_settings)
    checks.register(check_allowed_tasks)
    checks.register(check_webhook_destinations)
