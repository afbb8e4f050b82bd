"""The system checks (``task_admin.checks``): silent on a sound project, an error or a warning
naming the setting for each way a project can be set up wrong."""

import warnings

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from task_admin import checks, registry

TEST_APP = "tests.testapp.celery.app"


def check_ids():
    return [message.id for message in run_checks() if message.id.startswith("task_admin.")]


def test_the_test_project_passes_all_checks():
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
    with override_settings(TASK_ADMIN={"CELERY_APP": TEST_APP},
                           DATA_UPLOAD_MAX_NUMBER_FIELDS=1000):
        assert check_ids() == []
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=1000, TASK_ADMIN={}):
        assert check_ids() == []


def test_unimportable_celery_app_is_reported():
    with override_settings(TASK_ADMIN={"CELERY_APP": "nowhere.celery.app"}):
        assert check_ids() == ["task_admin.E002"]


def test_pickle_is_refused():
    with override_settings(TASK_ADMIN={"CELERY_APP": "tests.support.celery_apps.pickle_app"}):
        assert check_ids() == ["task_admin.E003"]


def test_unknown_setting_is_a_warning():
    with override_settings(TASK_ADMIN={"CELERY_APP": TEST_APP, "MAX_DEPHT": 3}):
        assert check_ids() == ["task_admin.W001"]


@pytest.mark.parametrize(("value", "expected"), [
    ("auto", []), (True, []), (False, []), ("on", ["task_admin.E006"]), (1, ["task_admin.E006"]),
])
def test_prepared_statements_is_true_false_or_auto(value, expected):
    with override_settings(TASK_ADMIN={"CELERY_APP": TEST_APP, "PREPARED_STATEMENTS": value}):
        assert check_ids() == expected


def test_no_check_asks_for_a_higher_upload_field_limit():
    """The composer posts a tree as one field: W002 (raise DATA_UPLOAD_MAX_NUMBER_FIELDS) is
    gone, whatever MAX_NODES is."""
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=1000,
                           TASK_ADMIN={"CELERY_APP": TEST_APP, "MAX_NODES": 5000}):
        assert check_ids() == []


def test_allowed_tasks_matching_no_task_is_a_warning():
    config = {"CELERY_APP": TEST_APP, "ALLOWED_TASKS": ["mysite.*"]}
    with override_settings(TASK_ADMIN=config):
        [message] = [m for m in run_checks() if m.id.startswith("task_admin.")]
    assert message.id == "task_admin.W003"
    assert "matches none of the tasks" in message.msg
    assert "Registered tasks: " in message.hint and "tests.testapp.tasks." in message.hint
    config["ALLOWED_TASKS"] = ["mysite.*", "tests.testapp.*"]
    with override_settings(TASK_ADMIN=config):
        assert check_ids() == []


def test_allowed_tasks_matching_only_the_celery_apps_own_task_is_a_warning():
    """The issue's trap: "mysite.*" matches mysite.celery.debug_task, none of the app's tasks."""
    import tests.testapp.tasks  # noqa: F401  (shared tasks: every app gets them)

    config = {"CELERY_APP": "tests.support.celery_apps.mysite_app", "ALLOWED_TASKS": ["mysite.*"]}
    with override_settings(TASK_ADMIN=config):
        assert set(registry.allowed_tasks()) == {"mysite.celery.debug_task"}
        [message] = [m for m in run_checks() if m.id.startswith("task_admin.")]
    assert message.id == "task_admin.W003"
    assert "none of the tasks of your installed apps, only mysite.celery.debug_task" in message.msg
    assert "Registered tasks: " in message.hint and "tests.testapp.tasks." in message.hint


@pytest.mark.parametrize("allowed", [
    "https://hooks.example.com/",  # a string, not a list
    ["ftp://hooks.example.com/"],
    ["https://user@hooks.example.com/"],
    [42],
])
def test_unusable_webhook_destinations_are_an_error(allowed):
    with override_settings(TASK_ADMIN={"CELERY_APP": TEST_APP, "ALERT_WEBHOOK_ALLOWED": allowed}):
        assert "task_admin.E005" in check_ids()


def test_webhook_destinations_that_parse_pass():
    with override_settings(TASK_ADMIN={"CELERY_APP": TEST_APP, "ALERT_WEBHOOK_ALLOWED": [
        "hooks.example.com", "hooks.example.com:8443", "http://10.0.0.5:8080/in/",
    ]}):
        assert "task_admin.E005" not in check_ids()


def _sqlite_warnings(settings, options, concurrency=2, pool="prefork"):
    from tests.testapp.celery import app

    # SQLite whatever the suite runs on (the PostgreSQL pass too): the check reads the settings.
    database = {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3"}
    database["OPTIONS"] = options
    old = app.conf.worker_concurrency, app.conf.worker_pool
    app.conf.worker_concurrency, app.conf.worker_pool = concurrency, pool
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Overriding setting DATABASES can lead to ..."
            with override_settings(DATABASES={**settings.DATABASES, "default": database}):
                return [m for m in run_checks() if m.id.startswith("task_admin.")]
    finally:
        app.conf.worker_concurrency, app.conf.worker_pool = old


def test_sqlite_as_startproject_leaves_it_with_a_multi_process_worker_is_a_warning(settings):
    [message] = _sqlite_warnings(settings, {})
    assert message.id == "task_admin.W004"
    assert "Celery workers run 2 processes" in message.msg
    assert "transaction_mode, timeout, init_command" in message.msg
    assert "'transaction_mode': 'IMMEDIATE'" in message.hint and "PostgreSQL" in message.hint
    [message] = _sqlite_warnings(settings, {"transaction_mode": "IMMEDIATE", "timeout": 20})
    assert "only with the OPTIONS init_command;" in message.msg


@pytest.mark.parametrize(("options", "concurrency", "pool"), [
    (checks.SQLITE_OPTIONS, 4, "prefork"),  # writers wait for each other: as the demo sets it
    ({}, 1, "prefork"),  # one process
    ({}, 8, "solo"),  # the solo pool runs one task at a time in one process
])
def test_sqlite_is_fine_with_the_options_or_one_process(settings, options, concurrency, pool):
    assert _sqlite_warnings(settings, options, concurrency, pool) == []
