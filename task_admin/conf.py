"""The ``TASK_ADMIN`` settings dict, read lazily so ``override_settings`` works."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Dotted path to the Celery app ("project.celery.app"); None means Celery's current app.
    "CELERY_APP": None,
    # fnmatch patterns of task names staff may invoke. None means "the project's own tasks":
    # tasks whose module is not installed in site-packages and is not Celery's.
    "ALLOWED_TASKS": None,
    # Always refused, even when ALLOWED_TASKS matches.
    "DENIED_TASKS": ["celery.*", "task_admin.*"],
    # Bounds that keep one workflow from becoming a denial of service on the broker.
    "MAX_DEPTH": 20,
    "MAX_NODES": 1000,
    "MAX_VALUE_BYTES": 64_000,
    # The longest countdown or eta (seconds) an invocation may ask for. None: what the broker
    # carries (Redis/SQS: the visibility timeout, after which a waiting message is delivered
    # again; RabbitMQ: its default consumer_timeout of 30 minutes).
    "MAX_DELAY": None,
    # Seconds a node may stay unfinished before its state is checked in the result backend.
    "RECONCILE_AFTER": 30,
    # Seconds after which an unfinished run no longer holds back a schedule set to skip (a
    # run whose whole worker was killed may never finish); None waits for ever.
    "SKIP_STALE_AFTER": 6 * 3600,
    # How often (ms) the run page refreshes itself while the run is unfinished.
    "REFRESH_INTERVAL": 2000,
    # Result previews in lists are cut to this many characters.
    "RESULT_PREVIEW_CHARS": 80,
    # Seconds a busy worker process gathers tracking events before writing them in one batch
    # (an idle one writes at once).
    "FLUSH_INTERVAL": 0.25,
    # Operations pages: seconds an ``inspect`` broadcast waits for workers' replies, seconds
    # its answer is cached, seconds a control command (pool, consumer, rate limit) waits for
    # the worker's confirmation, and queues to list besides the ones task_admin finds itself.
    "INSPECT_TIMEOUT": 0.2,
    "INSPECT_CACHE": 5,
    "CONTROL_TIMEOUT": 1.0,
    "QUEUES": [],
}


@functools.cache
def get_config() -> dict[str, Any]:
    # Unknown keys are reported by the task_admin.W001 system check, not here.
    return {**DEFAULTS, **getattr(settings, "TASK_ADMIN", {})}


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting == "TASK_ADMIN":
        get_config.cache_clear()
