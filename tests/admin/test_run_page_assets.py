"""The run page loads each stylesheet once, from files (no inline <style>)."""

import pytest

from tests.admin.test_runs_admin import failed_run, url  # noqa: F401  (fixture)


@pytest.mark.django_db
def test_the_run_page_loads_each_stylesheet_once(admin_client, failed_run):  # noqa: F811
    html = admin_client.get(url("workflowrun_change", failed_run.pk)).content.decode()
    assert html.count("task_admin/task_admin.css") == 1
    assert html.count("task_admin/run.css") == 1
    assert "<style>" not in html
