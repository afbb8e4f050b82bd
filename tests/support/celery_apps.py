"""Celery apps the tests point TASK_ADMIN['CELERY_APP'] at.

Their tasks are not shared (``app.task`` shares by default): each stays in its own app instead
of joining every app finalized later, the test project's too.
"""

import redis
from celery import Celery

pickle_app = Celery("pickle", set_as_current=False)
pickle_app.conf.accept_content = ["json", "pickle"]

third_party_app = Celery("third_party", set_as_current=False)
third_party_app.conf.imports = ()
# A task whose code lives in site-packages stands in for one registered by an installed library.
third_party_app.task(name="library.ping", shared=False)(redis.from_url)


@third_party_app.task(name="ours.add", shared=False)
def add(x, y):
    """Add two numbers.

    More text that the picker leaves out.
    """
    return x + y


def _closed_broker_app() -> Celery:
    """The project's configuration with a broker that is down: nothing listens on its port."""
    from project import localredis

    app = Celery("closed_broker", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = f"redis://127.0.0.1:{localredis._free_port()}/0"
    app.autodiscover_tasks()
    return app


closed_broker_app = _closed_broker_app()


# Never connected to: only its broker URL is read (the delay bound of a RabbitMQ broker).
amqp_app = Celery("amqp", set_as_current=False, broker="amqp://guest@127.0.0.1:5672//")


# Celery's "First steps with Django" layout of a project "mysite": the app's own debug_task.
mysite_app = Celery("mysite", set_as_current=False)


@mysite_app.task(bind=True, ignore_result=True, name="mysite.celery.debug_task",
                 shared=False)
def debug_task(self):
    """Print the request (Celery's guide)."""
