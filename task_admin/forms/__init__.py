"""Admin forms, one module per concern: ``json_fields`` (JSON that fails at the field),
``task_picker`` (the tasks staff may pick, typed argument checks), ``invocations``,
``workflows`` (the composer's document), ``runs`` (run-now overrides), ``schedules``,
``alerts``.

Forms check what a person typed; whether a workflow can run with what they typed is asked of
``services.prepare_run`` (the one door), never of compile or validation directly.
"""
