"""``task_admin.registry``: which Celery tasks staff may invoke, with their signatures and docs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from task_admin import registry

TEST_APP = "tests.testapp.celery.app"


def test_registry_lists_the_projects_tasks_only():
    tasks = registry.allowed_tasks()
    assert "tests.testapp.tasks.suma" in tasks
    assert not [name for name in tasks if name.startswith(("celery.", "task_admin."))]
    suma = tasks["tests.testapp.tasks.suma"]
    assert suma.signature_text == "suma(a, b)"
    assert suma.doc == "Add two numbers (the tutorial's first task)."
    # bind=True: the task's own ``self`` is not an argument staff give.
    retrying = tasks["tests.testapp.tasks.fetch_exchange_rate"]
    assert list(retrying.signature.parameters) == ["currency", "fail_times", "countdown"]


def test_registry_leaves_out_installed_libraries_tasks():
    with override_settings(TASK_ADMIN={"CELERY_APP": "tests.support.celery_apps.third_party_app"}):
        tasks = registry.allowed_tasks()
    assert "library.ping" not in tasks
    assert "ours.add" in tasks
    assert tasks["ours.add"].doc == "Add two numbers."


def test_registry_allow_and_deny_patterns():
    config = {"CELERY_APP": TEST_APP, "ALLOWED_TASKS": ["tests.testapp.tasks.s*", "celery.*"]}
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    # celery.* stays denied by DENIED_TASKS even when an allow pattern matches it.
    assert names == {
        "tests.testapp.tasks.suma",
        "tests.testapp.tasks.sum_list",
        "tests.testapp.tasks.slow",
        "tests.testapp.tasks.send_report_email",
        "tests.testapp.tasks.sales_report",
    }
    config["DENIED_TASKS"] = ["*.slow"]
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    assert "tests.testapp.tasks.slow" not in names
    # Celery's and task_admin's own tasks are refused even when DENIED_TASKS no longer lists them.
    config = {"CELERY_APP": TEST_APP, "ALLOWED_TASKS": ["*"], "DENIED_TASKS": []}
    with override_settings(TASK_ADMIN=config):
        names = set(registry.allowed_tasks())
    assert "tests.testapp.tasks.suma" in names
    assert not [name for name in names if name.startswith(("celery.", "task_admin."))]


def test_default_allows_a_pip_installed_projects_tasks(monkeypatch):
    """The project's own apps count wherever they are installed (``pip install .``)."""
    import sys
    import types

    from celery import Celery

    app = Celery("mysite", set_as_current=False)
    module = types.ModuleType("tests.testapp.installed_tasks")
    module.__file__ = "/srv/venv/lib/python3.12/site-packages/tests/testapp/installed_tasks.py"
    monkeypatch.setitem(sys.modules, module.__name__, module)

    def export(day):
        """Export one day."""

    export.__module__ = module.__name__
    app.task(name="tests.testapp.installed_tasks.export")(export)
    app.task(name="library.ping")(__import__("redis").from_url)  # a library, not an app
    monkeypatch.setattr("tests.support.celery_apps.installed_app", app, raising=False)
    with override_settings(TASK_ADMIN={"CELERY_APP": "tests.support.celery_apps.installed_app"}):
        names = set(registry.allowed_tasks())
    assert "tests.testapp.installed_tasks.export" in names
    assert "library.ping" not in names


def test_a_refused_task_names_the_setting_and_the_restart():
    with override_settings(TASK_ADMIN={"CELERY_APP": TEST_APP}):
        default = registry.refusal("celery.backend_cleanup")
        unknown = registry.refusal("shop.tasks.nope")
    assert 'TASK_ADMIN["DENIED_TASKS"]' in default
    assert "not registered with the Celery app" in unknown and "restart" in unknown
    config = {"CELERY_APP": TEST_APP, "ALLOWED_TASKS": ["tests.testapp.tasks.s*"]}
    with override_settings(TASK_ADMIN=config):
        refused = registry.refusal("tests.testapp.tasks.fetch_exchange_rate")
    assert 'TASK_ADMIN["ALLOWED_TASKS"]' in refused
    assert "restart the web server and the workers" in refused


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
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "ALLOWED_TASKS": ["tests.testapp.tasks.suma"]}
    assert list(registry.signatures()) == ["tests.testapp.tasks.suma"]
    assert len(computed) == 2


# Threads of a fresh process ask for the allowed tasks at once while the task modules are being
# imported (slowly: Django's system checks run during the import in a real project). With
# ALLOWED_TASKS set, the checks run during the import ask the registry again (W003), in the
# importing thread. "beat": another thread imports them first without the registry, as
# django-celery-beat's admin does.
_FIRST_REQUESTS = """
import json, sys, threading, time
import django
django.setup()
from django.conf import settings
from task_admin.conf import get_config
if sys.argv[1] == "allowed":
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "ALLOWED_TASKS": ["tests.testapp.*"]}
    get_config.cache_clear()
import celery.loaders.base as loaders
real = loaders.find_related_module
imported = set()
def slow(package, related_name):
    if package not in imported:  # the first import of each package only
        imported.add(package)
        time.sleep(0.1)
    return real(package, related_name)
loaders.find_related_module = slow
from task_admin import registry
if sys.argv[1] == "beat":
    beat = threading.Thread(target=registry.get_app().loader.import_default_modules)
    beat.start()
    time.sleep(0.05)
barrier = threading.Barrier(6)
seen = []
def ask():
    barrier.wait()
    seen.append(sorted(registry.signatures()))
threads = [threading.Thread(target=ask) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"seen": seen, "after": sorted(registry.signatures())}))
"""


@pytest.mark.parametrize("case", ["default", "allowed", "beat"])
def test_threads_asking_while_the_task_modules_are_imported_wait_for_all_of_them(case):
    """Celery's autodiscovery imports nothing in a thread that calls it while another thread is
    in it: the threads that asked then were refused the tasks not yet registered."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run([sys.executable, "-c", _FIRST_REQUESTS, case], cwd=root, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert "tests.testapp.tasks.suma" in answer["after"]
    assert answer["seen"] == [answer["after"]] * 6


def test_a_settings_change_is_seen_by_the_argument_forms_too(settings):
    """``parameters()`` (the argument forms) is forgotten with the allowed tasks: asked again
    after a change with the same number of tasks, it follows the new setting."""
    registry.parameters()
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "ALLOWED_TASKS": ["tests.testapp.tasks.suma"]}
    registry.allowed_tasks()
    assert list(registry.parameters()) == ["tests.testapp.tasks.suma"]


def test_no_allowed_task_gives_an_empty_read_only_mapping(settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "ALLOWED_TASKS": ["nothing.matches.*"]}
    for _ in range(2):  # computed, then from the cache
        found = registry.signatures()
        assert dict(found) == {}
        with pytest.raises(TypeError):
            found["x"] = None
