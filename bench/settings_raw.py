"""Bench settings WITHOUT task_admin: the same project, app and Celery settings, but
task_admin is not installed, so no signal receiver of it is connected: raw Celery."""

from bench.settings_ours import *  # noqa: F403
from bench.settings_ours import INSTALLED_APPS

LEFT_OUT = {"task_admin", "bench.counting.CountingConfig"}
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in LEFT_OUT]
