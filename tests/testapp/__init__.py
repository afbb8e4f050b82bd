"""The tests' own Django app: the project task_admin is tested in (the demo stays a demo).

It plays a host project's two parts: an app whose ``tasks.py`` holds ``@shared_task`` tasks of
every shape the tests need, and the package of the Celery app (``celery.py``) that the worker
processes the tests start load with ``-A tests.testapp``. As in Celery's Django guide, the app is
loaded whenever Django starts, so shared tasks bind to it.
"""

from tests.testapp.celery import app as celery_app

__all__ = ("celery_app",)
