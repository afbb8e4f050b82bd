"""Demo tasks: the tutorial's examples plus one task for each behaviour the admin shows.

Their code is in ``examples/tasks.py``, which the tests' own app registers too: registered
here, they are this module's tasks (``project.demo.tasks.suma``, ...), as if each were written
here under ``@shared_task``.
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
