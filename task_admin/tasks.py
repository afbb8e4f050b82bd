from celery import shared_task


@shared_task(name="task_admin.replay")
def replay(value):
    """Return a result kept from an earlier run, so a re-run does not compute it again."""
    return value


@shared_task(name="task_admin.run_workflow")
def run_workflow(schedule):
    """What beat sends for a WorkflowSchedule: start a run of its workflow, minding overlap."""
    # Imported here: this module is loaded while Celery finds tasks, before models are needed.
    from task_admin import scheduling

    return scheduling.fire(schedule)


@shared_task(name="task_admin.prune")
def prune():
    """Delete finished runs older than TASK_ADMIN["RETENTION_DAYS"] (scheduled hourly by
    ``task_admin.periodic``)."""
    from task_admin import retention

    return retention.prune()


@shared_task(name="task_admin.reconcile")
def reconcile():
    """Settle the nodes of workers that are gone (scheduled every 30 s by
    ``task_admin.periodic``); returns how many were settled."""
    from task_admin import liveness

    report = liveness.reconcile_all()
    return {"lost": len(report.lost), "requeued": len(report.requeued),
            "settled": len(report.settled), "repaired": report.repaired}


@shared_task(name="task_admin.alert_run", ignore_result=True)
def alert_run(run_id):
    """Queued when a run with alert settings finishes: claim the alert it deserves, once."""
    from task_admin import alerting

    return alerting.alert_run(run_id)


@shared_task(name="task_admin.deliver_alert", bind=True, ignore_result=True)
def deliver_alert(self, alert_id):
    """Send one claimed alert; SMTP and HTTP errors are retried with a growing delay."""
    from task_admin import alerting
    from task_admin.conf import get_config

    retries = get_config()["ALERT_RETRIES"]
    try:
        return alerting.deliver(alert_id, last_try=self.request.retries >= retries)
    except alerting.RetryLater as exc:
        raise self.retry(
            exc=exc, countdown=alerting.retry_delay(self.request.retries), max_retries=retries
        ) from exc


@shared_task(name="task_admin.check_alert_slas", ignore_result=True)
def check_alert_slas():
    """Beat's periodic check (``task_admin.periodic``): alert about runs that are late."""
    from task_admin import alerting

    return alerting.check_slas()
