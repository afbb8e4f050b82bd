"""The tasks the tests run: one for each shape task_admin must handle.

The example bodies of ``examples/tasks.py`` (the demo project registers the same ones as its
own), registered as this module's tasks: ``tests.testapp.tasks.suma``, ... Adding, a callback
taking a list, a task that fails, one that retries (``bind=True``, ``self.retry``), slow ones to
watch or revoke (one declared safe to repeat), one that sends email, two that read files, and
one with typed parameters the argument forms are built from.
"""

from examples import tasks as examples
from examples.tasks import task_of

suma = task_of(examples.suma, __name__)
sum_list = task_of(examples.sum_list, __name__)
fetch_exchange_rate = task_of(examples.fetch_exchange_rate, __name__)
always_fails = task_of(examples.always_fails, __name__)
slow = task_of(examples.slow, __name__)
repeatable_sleep = task_of(examples.repeatable_sleep, __name__)
send_report_email = task_of(examples.send_report_email, __name__)
process_file = task_of(examples.process_file, __name__)
file_total = task_of(examples.file_total, __name__)
sales_report = task_of(examples.sales_report, __name__)
