"""The tasks the tests run: one for each shape task_admin must handle.

Adding, a callback taking a list, a task that fails, one that retries (``bind=True``,
``self.retry``), slow ones to watch or revoke (one declared safe to repeat), one that sends
email, two that read files, and one with typed parameters the argument forms are built from.
"""

import csv
import time
from datetime import date
from pathlib import Path
from typing import Literal

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail


@shared_task
def suma(a, b):
    """Add two numbers (the tutorial's first task)."""
    return a + b


@shared_task
def sum_list(numbers):
    """Add up a list of numbers (nested lists too): a chord callback for ``suma`` calls."""
    return sum(sum_list(n) if isinstance(n, list) else n for n in numbers)


class TransientError(ConnectionError):
    """Stands in for a flaky network call."""


@shared_task(bind=True, max_retries=3)
def fetch_exchange_rate(self, currency="EUR", fail_times=2, countdown=1):
    """Fail ``fail_times`` times, then answer; above ``max_retries`` (3) the task fails."""
    try:
        if self.request.retries < fail_times:
            raise TransientError(f"rate service unavailable (attempt {self.request.retries + 1})")
        return {"currency": currency, "rate": 1.08, "attempts": self.request.retries + 1}
    except TransientError as e:
        raise self.retry(exc=e, countdown=countdown) from e


@shared_task
def always_fails(reason="this task always fails"):
    """Raise ``ValueError``: a failure and its traceback."""
    raise ValueError(reason)


@shared_task
def slow(seconds=5):
    """Sleep for ``seconds``: something to watch run, revoke or time out."""
    time.sleep(seconds)
    return seconds


@shared_task(acks_late=True, reject_on_worker_lost=True)
def repeatable_sleep(seconds=5):
    """Sleep like ``slow``, declared safe to repeat: a lost worker's run is delivered again."""
    time.sleep(seconds)
    return seconds


@shared_task
def send_report_email(to, subject="Daily report", body=""):
    """Send an email through Django's configured backend."""
    return send_mail(subject, body or subject, None, [to])


def _read_csv(name):
    data_dir = Path(settings.TESTAPP_DATA_DIR).resolve()
    path = (data_dir / name).resolve()
    if path.parent != data_dir:
        raise ValueError(f"{name!r} is not a file in the test data directory")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@shared_task
def process_file(name="sales.csv", column="amount"):
    """Summarise a CSV file of the test data directory: its rows and a column's total."""
    rows = _read_csv(name)
    return {"file": name, "rows": len(rows), "total": sum(float(r[column]) for r in rows)}


@shared_task
def file_total(name="sales.csv", column="amount"):
    """The total of a column of a CSV file of the test data directory."""
    return sum(float(row[column]) for row in _read_csv(name))


@shared_task
def sales_report(
    day: date,
    region: Literal["EU", "US", "APAC"] = "EU",
    top: int = 10,
    min_amount: float = 0.0,
    include_refunds: bool = False,
    recipients: list[str] | None = None,
):
    """A sales summary for one day: the typed parameters the argument forms are built from.

    :param day: the day to summarise (ISO date).
    :param region: which sales region.
    :param top: how many best-selling products to list.
    :param min_amount: ignore sales below this amount.
    :param include_refunds: count refunded sales too.
    :param recipients: email addresses to send the summary to (none: only return it).
    """
    return {
        "day": str(day), "region": region, "top": top, "min_amount": min_amount,
        "include_refunds": include_refunds, "recipients": recipients or [],
    }
