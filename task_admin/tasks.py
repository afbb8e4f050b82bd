from celery import shared_task


@shared_task(name="task_admin.replay")
def replay(value):
    """Return a result kept from an earlier run, so a re-run does not compute it again."""
    return value
