import json
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from task_admin.models import WorkflowNode


class Command(BaseCommand):
    help = "Load the demo fixtures, resetting the trees of the demo workflows to the files."

    def add_arguments(self, parser):
        parser.add_argument("fixtures", nargs="+")

    def handle(self, *args, fixtures, **options):
        names = {
            item["fields"]["name"]
            for path in fixtures
            for item in json.loads(Path(path).read_text())
            if item["model"] == "task_admin.workflow"
        }
        with transaction.atomic():
            # Replaced, not updated: after an edit that moved nodes around, updating them one
            # by one would meet the unique (parent, position) constraint half way.
            WorkflowNode.objects.filter(workflow__name__in=names).delete()
            call_command("loaddata", *fixtures, verbosity=options["verbosity"])
