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
