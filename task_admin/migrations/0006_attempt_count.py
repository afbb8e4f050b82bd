"""``TaskRun.attempts`` (a counter) becomes ``attempt_count``, so that a task run's
``TaskAttempt`` rows can be its ``attempts`` (they were ``attempt_set``). The column is renamed:
the counts are kept."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("task_admin", "0005_schedule_firings"),
    ]

    operations = [
        migrations.RenameField(
            model_name="taskrun",
            old_name="attempts",
            new_name="attempt_count",
        ),
        migrations.AlterField(
            model_name="taskattempt",
            name="task_run",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempts",
                to="task_admin.taskrun",
                verbose_name="task run",
            ),
        ),
    ]
