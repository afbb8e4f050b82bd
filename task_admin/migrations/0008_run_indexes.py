"""The run table's indexes (issue #7): four foreign keys that are mostly empty are indexed
only where set, the status without its LIKE index, and the workflow's own index becomes
(workflow, created_at, id).

Every start inserts a run row and every batch that settles a run updates it, so each index is
written on both hot paths: nine per run before, four now (measured: the start's statement 0.31
-> 0.20 ms of PostgreSQL's time for the run row). The foreign keys are looked up only by value
(``ON DELETE SET NULL`` when a user, schedule, alert setting or run goes), which a partial index
serves. A workflow's latest run (the workflow list and form) was found by walking the whole
table's ``created_at`` index backwards for a workflow without recent runs: 58 ms at 74,000 runs,
now one index probe.

Only indexes change, so the database gets ``CREATE INDEX`` then ``DROP INDEX`` alone: Django's
``AlterField`` on a foreign key would also drop and re-validate its constraint (a scan of the
table) on PostgreSQL, and rebuild the table on SQLite.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The columns whose single-column indexes go, and what replaces them (the model's Meta).
COLUMNS = (
    "workflow_id",
    "status",
    "triggered_by_id",
    "rerun_of_id",
    "schedule_id",
    "alert_rule_id",
)
NEW = [
    models.Index(fields=["workflow", "created_at", "id"], name="task_admin_run_latest"),
    models.Index(fields=["status"], name="task_admin_run_status"),
    *(
        models.Index(
            fields=[field],
            condition=models.Q((f"{field}__isnull", False)),
            name=f"task_admin_run_{field}",
        )
        for field in ("triggered_by", "rerun_of", "schedule", "alert_rule")
    ),
]


def _single_column_indexes(schema_editor, model):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [
        name
        for name, info in found.items()
        if len(info["columns"]) == 1
        and info["columns"][0] in COLUMNS
        and info["index"]
        and not info["unique"]
        and not info["primary_key"]
        and not info["foreign_key"]
    ]


def forwards(apps, schema_editor):
    # The new indexes first: on PostgreSQL a DROP INDEX locks the table against reads until
    # the migration commits, so it comes last, after the builds (which only hold off writes).
    model = apps.get_model("task_admin", "WorkflowRun")
    old = _single_column_indexes(schema_editor, model)
    for index in NEW:
        schema_editor.add_index(model, index)
    for name in old:
        schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def backwards(apps, schema_editor):
    """Back to 0007's schema: one index per column, named as Django names them, and on
    PostgreSQL the status's LIKE index (built before the new ones are dropped, as above)."""
    model = apps.get_model("task_admin", "WorkflowRun")
    meta = model._meta
    for column in COLUMNS:
        field = next(f for f in meta.local_concrete_fields if f.column == column)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))
    if schema_editor.connection.vendor == "postgresql":
        like = schema_editor._create_like_index_sql(model, meta.get_field("status"))
        if like is not None:
            schema_editor.execute(like)
    for index in NEW:
        schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    dependencies = [
        ("task_admin", "0007_task_run_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(forwards, backwards, hints={"model_name": "workflowrun"})
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="workflowrun",
                    name="alert_rule",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="task_admin.alertrule",
                        verbose_name="alert settings",
                    ),
                ),
                migrations.AlterField(
                    model_name="workflowrun",
                    name="rerun_of",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="reruns",
                        to="task_admin.workflowrun",
                        verbose_name="re-run of",
                    ),
                ),
                migrations.AlterField(
                    model_name="workflowrun",
                    name="schedule",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="runs",
                        to="task_admin.workflowschedule",
                        verbose_name="schedule",
                    ),
                ),
                migrations.AlterField(
                    model_name="workflowrun",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("pending", "pending"),
                            ("running", "running"),
                            ("succeeded", "succeeded"),
                            ("failed", "failed"),
                            ("partially_failed", "partially failed"),
                            ("revoked", "revoked"),
                            ("dispatch_failed", "failed to dispatch"),
                        ],
                        default="pending",
                        max_length=20,
                        verbose_name="status",
                    ),
                ),
                migrations.AlterField(
                    model_name="workflowrun",
                    name="triggered_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="triggered by",
                    ),
                ),
                migrations.AlterField(
                    model_name="workflowrun",
                    name="workflow",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="runs",
                        to="task_admin.workflow",
                        verbose_name="workflow",
                    ),
                ),
                migrations.AddIndex(
                    model_name="workflowrun",
                    index=models.Index(
                        fields=["workflow", "created_at", "id"], name="task_admin_run_latest"
                    ),
                ),
                migrations.AddIndex(
                    model_name="workflowrun",
                    index=models.Index(fields=["status"], name="task_admin_run_status"),
                ),
                migrations.AddIndex(
                    model_name="workflowrun",
                    index=models.Index(
                        condition=models.Q(("triggered_by__isnull", False)),
                        fields=["triggered_by"],
                        name="task_admin_run_triggered_by",
                    ),
                ),
                migrations.AddIndex(
                    model_name="workflowrun",
                    index=models.Index(
                        condition=models.Q(("rerun_of__isnull", False)),
                        fields=["rerun_of"],
                        name="task_admin_run_rerun_of",
                    ),
                ),
                migrations.AddIndex(
                    model_name="workflowrun",
                    index=models.Index(
                        condition=models.Q(("schedule__isnull", False)),
                        fields=["schedule"],
                        name="task_admin_run_schedule",
                    ),
                ),
                migrations.AddIndex(
                    model_name="workflowrun",
                    index=models.Index(
                        condition=models.Q(("alert_rule__isnull", False)),
                        fields=["alert_rule"],
                        name="task_admin_run_alert_rule",
                    ),
                ),
            ],
        ),
    ]
