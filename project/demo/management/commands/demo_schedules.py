from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule

from task_admin import scheduling
from task_admin.models import AlertRule, Overlap, Workflow, WorkflowSchedule

# (schedule name, demo workflow, every, period): created once, then left as the user edits them.
DEMO_SCHEDULES = [
    ("Tutorial chain every 2 minutes", "Tutorial: chain", 2, IntervalSchedule.MINUTES),
]


# (demo workflow, extra email addresses): alert settings created once. The demo's email backend
# is the console: alerts appear in the worker's output, with a link to the run page.
DEMO_ALERTS = [
    ("Tutorial: chord", "ops@example.com"),
]


class Command(BaseCommand):
    help = ("Schedule some demo workflows with beat and set up their alerts (once; later edits "
            "are kept).")

    def handle(self, *args, **options):
        for name, workflow_name, every, period in DEMO_SCHEDULES:
            if WorkflowSchedule.objects.filter(periodic_task__name=name).exists():
                continue
            workflow = Workflow.objects.filter(name=workflow_name).first()
            if workflow is None:
                self.stderr.write(f"No workflow {workflow_name!r}: {name!r} not scheduled.")
                continue
            interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
            scheduling.save_schedule(
                WorkflowSchedule(workflow=workflow, overlap=Overlap.SKIP),
                name=name, interval=interval, enabled=True,
            )
            self.stdout.write(f"Scheduled {workflow_name!r}: {name}.")
        self.alerts()

    def alerts(self):
        for workflow_name, emails in DEMO_ALERTS:
            workflow = Workflow.objects.filter(name=workflow_name).first()
            if workflow is None or AlertRule.objects.filter(workflow=workflow).exists():
                continue
            AlertRule.objects.create(workflow=workflow, emails=emails, sla_minutes=10)
            self.stdout.write(f"Alerts of {workflow_name!r} go to the console email backend.")
