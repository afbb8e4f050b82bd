"""Celery apps the tests point TASK_ADMIN['CELERY_APP'] at."""

import redis
from celery import Celery

pickle_app = Celery("pickle", set_as_current=False)
pickle_app.conf.accept_content = ["json", "pickle"]

third_party_app = Celery("third_party", set_as_current=False)
third_party_app.conf.imports = ()
# A task whose code lives in site-packages stands in for one registered by an installed library.
third_party_app.task(name="library.ping")(redis.from_url)


@third_party_app.task(name="ours.add")
def add(x, y):
    """Add two numbers.

    More text that the picker leaves out.
    """
    return x + y
