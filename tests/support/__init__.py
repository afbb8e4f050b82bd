"""Harness code of the test suite, imported by tests and by pytest (``-p`` plugins); no tests.

- ``redis_plugin``, ``rabbitmq_plugin``: pytest plugins loaded before Django reads its settings,
  giving each run a Redis database (and a RabbitMQ vhost) of its own.
- ``workers``: start and stop real ``celery worker`` / ``celery beat`` processes; ``wait_for``.
- ``factories``: stored invocations, workflows and schedules from a compact description.
- ``celery_apps``: odd Celery apps that ``TASK_ADMIN["CELERY_APP"]`` is pointed at.
- ``mailbox``: the email backend that records what worker processes send.
- ``browser``: Selenium helpers of the browser tests.
- ``demo``: the demo project, installed for the tests about it, and its own worker.
"""
