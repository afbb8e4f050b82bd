"""Without django-celery-results, Django starts, the checks pass and the admin imports."""

import os
import subprocess
import sys

import pytest

from tests.support.workers import ROOT

SCRIPT = """
import django
django.setup()
from django.core.checks import run_checks
import task_admin.admin, task_admin.services, task_admin.scheduling, task_admin.resources
from django.urls import reverse
import tests.urls
from task_admin import services
assert "django_celery_results" not in sys.modules, "imported django_celery_results"
print([m.id for m in run_checks() if m.id.startswith("task_admin.")])
print(reverse("admin:task_admin_workflowrun_changelist"))
"""


def test_django_starts_without_django_celery_results():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_without_results"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + SCRIPT], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "/admin/task_admin/workflowrun/"]


@pytest.mark.django_db
def test_a_task_run_page_says_what_needs_django_celery_results(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    from django.apps import apps
    from django.urls import reverse

    from tests.support.runs import start_run

    run = start_run(django_capture_on_commit_callbacks, "results-note")
    url = reverse("admin:task_admin_taskrun_change", args=[run.nodes.first().pk])
    assert 'id="ta-results-note"' not in admin_client.get(url).content.decode()
    installed = apps.is_installed
    monkeypatch.setattr(apps, "is_installed",
                        lambda name: name != "django_celery_results" and installed(name))
    page = admin_client.get(url).content.decode()
    assert 'id="ta-results-note"' in page and "django-celery-workflows[results]" in page
