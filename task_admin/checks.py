"""System checks. Ids are stable: document new ones in docs/checks.md, never renumber."""

from __future__ import annotations

import os
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
    prepared = get_config()["PREPARED_STATEMENTS"]
    if not (isinstance(prepared, bool) or prepared == "auto"):
        errors.append(
            checks.Error(
                "TASK_ADMIN['PREPARED_STATEMENTS'] must be True, False or \"auto\".",
                obj="task_admin",
                id="task_admin.E006",
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


# What makes SQLite's writers wait for each other instead of failing at once: shown in W004's
# hint, and what the demo project sets.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL;",
}


def check_sqlite_with_workers(app_configs=None, **kwargs):
    """W004: SQLite, a worker of several processes (as the Celery app is configured), and not
    the options that make concurrent writers wait for each other."""
    from django.conf import settings

    from task_admin.registry import NoCeleryApp, get_app

    database = settings.DATABASES.get("default", {})
    if not str(database.get("ENGINE", "")).endswith("sqlite3"):
        return []
    try:
        processes = worker_processes(get_app())
    except NoCeleryApp:
        return []  # E002 says so
    options = database.get("OPTIONS", {})
    missing = []
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        missing.append("transaction_mode")
    try:
        if float(options.get("timeout", 5)) < SQLITE_OPTIONS["timeout"]:
            missing.append("timeout")
    except (TypeError, ValueError):
        missing.append("timeout")
    if "journal_mode=wal" not in str(options.get("init_command", "")).lower().replace(" ", ""):
        missing.append("init_command")
    if processes <= 1 or not missing:
        return []
    return [checks.Warning(
        f"The database is SQLite and Celery workers run {processes} processes "
        "(worker_concurrency): their tracking writes, beat's and the web process's wait for one "
        f"another only with the OPTIONS {', '.join(missing)}; without them a write can fail "
        "with \"database is locked\".",
        hint="Use PostgreSQL in production. On SQLite set DATABASES['default']['OPTIONS'] = "
        f"{SQLITE_OPTIONS!r}, or run the worker with one process (--concurrency 1).",
        obj="task_admin",
        id="task_admin.W004",
    )]


def worker_processes(app) -> int:
    """How many processes a worker of ``app`` runs, as configured (``--concurrency`` on the
    command line can say otherwise: the worker warns again when it starts)."""
    if str(app.conf.worker_pool or "prefork") in ("solo", "celery.concurrency.solo:TaskPool"):
        return 1
    return int(app.conf.worker_concurrency or os.cpu_count() or 1)


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
    checks.register(check_sqlite_with_workers)
