import pytest
from django_celery_results.models import TaskResult

from tests.support.workers import wait_for
from tests.testapp.tasks import suma

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_tutorial_suma_runs_on_a_real_worker(worker):
    result = suma.apply_async(args=[4, 5], countdown=1)

    assert result.get(timeout=30) == 9
    row = wait_for(lambda: TaskResult.objects.filter(task_id=result.id).first())
    assert row.status == "SUCCESS"
    assert row.task_name == "tests.testapp.tasks.suma"
    assert row.result == "9"
