"""``examples/tasks.py``: one set of example task bodies, registered by the demo project and by
the tests' own app as tasks of their own modules."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from examples import tasks as examples
from task_admin import registry
from tests.testapp import tasks

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("suma", "sum_list", "fetch_exchange_rate", "always_fails", "slow", "repeatable_sleep",
         "send_report_email", "process_file", "file_total", "sales_report")


def test_each_body_is_a_task_of_the_registering_module():
    for name in NAMES:
        task = getattr(tasks, name)
        assert task.name == f"tests.testapp.tasks.{name}"
        # The module task_admin's default allow rule and the pasted code's imports go by.
        assert task.run.__module__ == "tests.testapp.tasks"
        assert task.__doc__ == getattr(examples, name).__doc__
    # The body's Celery options came along.
    assert tasks.fetch_exchange_rate.max_retries == 3
    assert list(inspect.signature(tasks.fetch_exchange_rate.run).parameters) == [
        "currency", "fail_times", "countdown"]  # bind=True: ``self`` is the task
    assert tasks.repeatable_sleep.acks_late and tasks.repeatable_sleep.reject_on_worker_lost
    assert not tasks.slow.acks_late


def test_the_test_apps_tasks_are_offered_with_their_typed_parameters():
    allowed = registry.allowed_tasks()
    assert {f"tests.testapp.tasks.{name}" for name in NAMES} <= set(allowed)
    report = registry.parameters()["tests.testapp.tasks.sales_report"]
    assert report["doc"] == "A sales summary for one day: the typed parameters the argument " \
                            "forms are built from."
    assert "day: datetime.date" in report["call"]


def test_a_call_that_does_not_fit_the_body_is_refused_before_sending():
    # Celery checks a call against the task function's own parameters (a wrapper taking
    # ``*args, **kwargs`` would let it through to the worker).
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'b'"):
        tasks.suma.apply_async(args=[1])


def test_the_bodies_run_as_tasks_and_as_the_other_bodies_see_them(settings, tmp_path):
    assert tasks.sum_list([7, [4, 6]]) == 17
    settings.EXAMPLE_DATA_DIR = str(tmp_path)
    (tmp_path / "sales.csv").write_text("region,amount\nnorth,120\nsouth,80\n")
    assert tasks.process_file() == {"file": "sales.csv", "rows": 2, "total": 200.0}
    with pytest.raises(ValueError, match="not a file in the data directory"):
        tasks.file_total("../sales.csv")


def test_the_demo_registers_the_same_bodies_under_its_own_names(demo_project):
    from project.demo import tasks as demo

    for name in NAMES:
        task = getattr(demo, name)
        assert task.name == f"project.demo.tasks.{name}"
        assert task.run.__code__ is getattr(tasks, name).run.__code__
    offered = registry.allowed_tasks()
    assert {f"project.demo.tasks.{name}" for name in NAMES} <= set(offered)
    # The test app is not installed in its place: its tasks are not offered beside the demo's.
    assert not [name for name in offered if name.startswith("tests.")]


def test_the_test_app_does_not_import_the_demo():
    code = ("import sys, tests.testapp.tasks; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['project', 'demo']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
