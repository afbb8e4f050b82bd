"""Count the SQL statements task_admin sends from a worker (bench only: BENCH_COUNT=1).

Wraps every task_admin Celery signal handler and the recorder's batch writer; each counts the
statements it runs on its thread's connection and adds them to Redis counters the bench reads.
"""

from __future__ import annotations

import functools
import os

from django.apps import AppConfig


def _counter():
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def _counted(function, key):
    from django.db import connection

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        seen = [0]

        def count(execute, sql, params, many, context):
            seen[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            result = function(*args, **kwargs)
        if seen[0]:
            _counter().incrby(key, seen[0])
        return result

    return wrapper


class CountingConfig(AppConfig):
    name = "bench.counting"
    label = "bench_counting"

    def ready(self):
        from celery import signals

        from task_admin import receivers

        prefix = f"bench:{os.environ['BENCH_TOKEN']}:"
        for name in ("received", "prerun", "success", "retry", "failure", "revoked"):
            signal = getattr(signals, "task_" + name)
            handler = getattr(receivers, "on_" + name)
            uid = f"task_admin.{name}"
            signal.disconnect(dispatch_uid=uid)
            signal.connect(_counted(handler, prefix + "handler"), weak=False, dispatch_uid=uid)
        from task_admin import tracking

        if not hasattr(tracking, "apply"):  # the code before batching wrote from the handlers
            return
        from task_admin.recorder import recorder

        recorder.write = _counted(recorder.write, prefix + "flush")
