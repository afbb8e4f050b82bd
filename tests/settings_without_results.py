"""The test settings without django-celery-results, on the Redis result backend."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, REDIS_URL

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_celery_results"]
CELERY_RESULT_BACKEND = REDIS_URL
