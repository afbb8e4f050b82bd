"""The RabbitMQ pass (``make test-rabbitmq``, CI when RabbitMQ answers) really uses RabbitMQ."""

import os
import subprocess

import pytest

from task_admin import services
from task_admin.models import RunStatus
from tests.support.factories import SUMA, invocation, workflow
from tests.support.runs import finished

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(os.environ.get("TASK_ADMIN_TEST_BROKER") != "rabbitmq",
                       reason="the RabbitMQ pass only: make test-rabbitmq"),
]


def test_workers_use_a_vhost_of_this_runs_own(worker, celery_app):
    url = os.environ["TASK_ADMIN_TEST_BROKER_URL"]
    vhost = url.rsplit("/", 1)[1]
    assert vhost.startswith("ta-")
    assert celery_app.connection_for_write().as_uri().startswith("amqp://")
    assert f"Connected to amqp://guest:**@127.0.0.1:5672/{vhost}" in worker.log()
    wf = workflow("chain", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    run = finished(services.run_workflow(wf))
    assert run.status == RunStatus.SUCCEEDED
    if subprocess.run(["which", "rabbitmqctl"], capture_output=True).returncode == 0:
        queues = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"],
                                capture_output=True, text=True, check=True).stdout
        assert "celery" in queues.split()
