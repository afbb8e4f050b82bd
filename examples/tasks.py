"""Example task bodies: the tutorial's examples plus one for each behaviour the admin shows.

Adding, a callback taking a list, a failure, retries (``bind=True``, ``self.retry``), slow
ones to watch or revoke (one declared safe to repeat), email, two that read files, and one with
typed parameters the argument forms are built from.

Plain functions, not tasks: the demo project (``project/demo/tasks.py``) and the tests' own app
(``tests/testapp/tasks.py``) each register them with ``task_of(body, __name__)`` as tasks of
their own module (``project.demo.tasks.suma``, ``tests.testapp.tasks.suma``). So the tests
need not install the demo, the demo does not import the tests, and the two cannot drift apart.
A body carries the Celery options of its shape: ``@example(bind=True, max_retries=3)`` where
the tutorial writes ``@shared_task(bind=True, max_retries=3)``.
"""

import csv
import time
import types
from datetime import date
from pathlib import Path
from typing import Literal

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail


def example(body=None, **options):
    """Mark a function as an example task body, with the options ``shared_task`` will get."""
    def mark(fun):
        fun.task_options = options
        return fun

    return mark(body) if body is not None else mark


def task_of(body, module: str):
    """``body`` registered as a shared task of ``module`` (named ``<module>.<its name>``).

    A copy of the function, not a wrapper around it: Celery names a task after its function's
    module and checks calls against the function's own parameters, and task_admin offers, by
    default, the tasks whose function is defined in an installed app and builds their typed
    fields from its signature and annotations. The copy has the body's code, defaults,
    annotations and docstring, and ``module`` as its module.
    """
    fun = types.FunctionType(body.__code__, body.__globals__, body.__name__,
                             body.__defaults__, body.__closure__)
    fun.__kwdefaults__ = body.__kwdefaults__
    fun.__annotations__ = dict(body.__annotations__)
    fun.__doc__ = body.__doc__
    fun.__qualname__ = body.__qualname__
    fun.__module__ = module
    return shared_task(**body.task_options)(fun)


@example
def suma(a, b):
    """Add two numbers (the tutorial's first task)."""
    return a + b


@example
def sum_list(numbers):
    """Add up a list of numbers (nested lists too): a chord callback for ``suma`` calls."""
    return sum(sum_list(n) if isinstance(n, list) else n for n in numbers)


class TransientError(ConnectionError):
    """Stands in for a flaky network call."""


@example(bind=True, max_retries=3)
def fetch_exchange_rate(self, currency="EUR", fail_times=2, countdown=1):
    """Fetch a rate from a flaky service: fails ``fail_times`` times, then answers.

    As in the tutorial: ``self.retry(exc=e, countdown=...)``; with ``fail_times`` above
    ``max_retries`` (3) the task ends in failure.
    """
    try:
        if self.request.retries < fail_times:
            raise TransientError(f"rate service unavailable (attempt {self.request.retries + 1})")
        return {"currency": currency, "rate": 1.08, "attempts": self.request.retries + 1}
    except TransientError as e:
        raise self.retry(exc=e, countdown=countdown) from e


@example
def always_fails(reason="this task always fails"):
    """Raise ``ValueError``: shows a failure and its traceback."""
    raise ValueError(reason)


@example
def slow(seconds=5):
    """Sleep for ``seconds``: something to watch run, revoke or time out."""
    time.sleep(seconds)
    return seconds


@example(acks_late=True, reject_on_worker_lost=True)
def repeatable_sleep(seconds=5):
    """Sleep like ``slow``, declared safe to repeat: a lost worker's run is delivered again."""
    time.sleep(seconds)
    return seconds


@example
def send_report_email(to, subject="Daily report", body=""):
    """Send an email through Django's configured backend."""
    return send_mail(subject, body or subject, None, [to])


def _read_csv(name):
    data_dir = Path(settings.EXAMPLE_DATA_DIR).resolve()
    path = (data_dir / name).resolve()
    # Staff choose the name: never let it leave the data directory.
    if path.parent != data_dir:
        raise ValueError(f"{name!r} is not a file in the data directory (EXAMPLE_DATA_DIR)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@example
def process_file(name="sales.csv", column="amount"):
    """Summarise a CSV file of the data directory: its rows and a column's total."""
    rows = _read_csv(name)
    return {"file": name, "rows": len(rows), "total": sum(float(r[column]) for r in rows)}


@example
def file_total(name="sales.csv", column="amount"):
    """The total of a column of a CSV file of the data directory."""
    return sum(float(row[column]) for row in _read_csv(name))


@example
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
