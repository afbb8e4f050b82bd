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
    # Seconds a node must have been received or started before the worker reconciler
    # (task_admin.liveness, every 30 s) may settle it because its worker no longer holds it;
    # None turns that reconciler off (e.g. for solo-pool workers, which cannot answer while busy).
    "LOST_AFTER": 30,
    # Seconds to wait for workers to answer the reconciler's question.
    "WORKER_REPLY_TIMEOUT": 2.0,
    # Seconds after which an unfinished run no longer holds back a schedule set to skip (a
    # run whose whole worker was killed may never finish); None waits for ever.
    "SKIP_STALE_AFTER": 6 * 3600,
    # Days to keep finished runs, by run status; a status left out (or None) is kept for ever,
    # and None instead of the dict keeps everything. Pruned hourly (task_admin.prune) and by
    # ``manage.py task_admin prune``.
    "RETENTION_DAYS": {
        "succeeded": 30,
        "revoked": 30,
        "dispatch_failed": 30,
        "failed": 90,
        "partially_failed": 90,
    },
    # How often (ms) the run page refreshes itself while the run is unfinished.
    "REFRESH_INTERVAL": 2000,
    # Result previews in lists are cut to this many characters.
    "RESULT_PREVIEW_CHARS": 80,
    # --- alerts (see README, "Alerts") ---
    # Where the admin is reached from outside ("https://admin.example.com"): alerts link to the
    # run page with it. None: alerts carry no link.
    "SITE_URL": None,
    # Seconds between two alerts of one kind about one workflow; those in between are
    # suppressed and counted in the next one sent.
    "ALERT_MIN_INTERVAL": 15 * 60,
    # Sender of alert emails; None is DEFAULT_FROM_EMAIL.
    "ALERT_FROM_EMAIL": None,
    # Tries after a failed send (SMTP or webhook), waiting RETRY_DELAY, then twice as long...
    "ALERT_RETRIES": 5,
    "ALERT_RETRY_DELAY": 30,
    # First lines of each failed task's traceback shown in an alert.
    "ALERT_TRACEBACK_LINES": 20,
    # Webhook destinations staff may enter: hosts ("hooks.example.com", https on port 443) or URL
    # prefixes ("https://hooks.example.com/task-admin/"; a prefix naming http:// allows plain
    # http there). Empty: no webhooks.
    "ALERT_WEBHOOK_ALLOWED": [],
    # Seconds to connect and to wait for an answer, each.
    "ALERT_WEBHOOK_TIMEOUT": 5,
    # Seconds a busy worker process gathers tracking events before writing them in one batch
    # (an idle one writes at once).
    "FLUSH_INTERVAL": 0.25,
    # PostgreSQL: a run start's commit does not wait for the disk (see docs/tracking.md).
    "ASYNC_START_COMMIT": True,
    # PostgreSQL with psycopg 3: a run start's INSERT is prepared once per connection
    # (task_admin/models/statements.py). "auto": only on a connection its first start showed
    # to reach PostgreSQL with no pooler between (a pooler in transaction mode that does not
    # keep prepared statements fails them); True: on every connection; False: never.
    "PREPARED_STATEMENTS": "auto",
    # PostgreSQL: how many stored nodes' worth of compiled trees each process keeps, for
    # starts that do not read an unchanged tree (task_admin/spec_cache.py; under 1 KB a
    # node); 0 turns this off.
    "SPEC_CACHE_SIZE": 10_000,
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
