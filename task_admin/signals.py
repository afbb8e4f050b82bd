"""Signals task_admin sends, for other parts of the app and for projects."""

from django.dispatch import Signal

# Sent once when a WorkflowRun reaches a final status, after that change is committed.
# Arguments: sender=WorkflowRun (the class), run=the WorkflowRun instance.
run_finished = Signal()
