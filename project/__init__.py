# As in the tutorial: load the Celery app whenever Django starts so @shared_task binds to it.
from project.celery import app as celery_app

__all__ = ("celery_app",)
