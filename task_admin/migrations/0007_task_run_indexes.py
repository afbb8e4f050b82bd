"""Three of the task-run table's eight indexes go, two become partial (issue #7).

Every start inserts a row per leaf in one statement and every tracking batch updates rows, so
each index costs on both hot paths. Dropped: the LIKE (``varchar_pattern_ops``) index that
``unique=True`` adds to ``task_id`` on PostgreSQL (the uniqueness is now a ``UniqueConstraint``,
which adds none), and the ``run_id`` index (the ``(run_id, path)`` constraint's index serves
every lookup by run). Made partial: ``reused_from_id`` and ``node_id``, only ever looked up by
value (``on_delete``'s ``UPDATE ... WHERE <column> IN (...)``), so their NULLs stay out.

On PostgreSQL the schema is changed in place: the unique index on ``task_id`` is kept (its
constraint renamed), the other indexes are dropped by name and the partial ones created.
Django's own operations would build the unique index again and drop and re-validate the three
foreign keys, each a scan of a table that holds every task ever run (they are what other
databases get: SQLite rebuilds the table anyway).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.migrations.operations.base import Operation

TABLE_MODEL = "taskrun"
TASK_ID_UNIQUE = "task_admin_taskrun_task_id_unique"
PARTIAL = [
    models.Index(condition=models.Q(("node__isnull", False)), fields=["node"],
                 name="task_admin_taskrun_node"),
    models.Index(condition=models.Q(("reused_from__isnull", False)), fields=["reused_from"],
                 name="task_admin_taskrun_reused_from"),
]


class TaskRunIndexes(Operation):
    """The operations below for the migration state and every database but PostgreSQL,
    which gets the in-place changes (``_postgresql_forwards`` and ``_backwards``)."""

    reversible = True

    def __init__(self, operations):
        self.operations = operations

    def describe(self):
        return "Fewer and partial indexes on the task-run table"

    def state_forwards(self, app_label, state):
        for operation in self.operations:
            operation.state_forwards(app_label, state)

    def _states(self, app_label, first):
        states = [first]
        for operation in self.operations:
            state = states[-1].clone()
            operation.state_forwards(app_label, state)
            states.append(state)
        return states

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, TABLE_MODEL)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            _postgresql_forwards(schema_editor, model)
            return
        states = self._states(app_label, from_state)
        for operation, before, after in zip(self.operations, states, states[1:], strict=False):
            operation.database_forwards(app_label, schema_editor, before, after)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, TABLE_MODEL)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if schema_editor.connection.vendor == "postgresql":
            _postgresql_backwards(schema_editor, model)
            return
        states = self._states(app_label, to_state)
        steps = list(zip(self.operations, states, states[1:], strict=False))
        for operation, before, after in reversed(steps):
            operation.database_backwards(app_label, schema_editor, after, before)


def _single_column(schema_editor, model, column, **flags):
    """The names of the constraints and indexes on exactly ``column`` that match ``flags``."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [name for name, info in found.items() if info["columns"] == [column]
            and all(info[flag] == value for flag, value in flags.items())]


def _postgresql_forwards(schema_editor, model):
    quote = schema_editor.quote_name
    table = quote(model._meta.db_table)
    column = {name: model._meta.get_field(name).column
              for name in ("task_id", "run", "node", "reused_from")}
    # The plain indexes: task_id's LIKE one, run_id, node_id and reused_from_id.
    for name in column.values():
        for index in _single_column(schema_editor, model, name, index=True, unique=False,
                                    primary_key=False):
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(index)}")
    unique = _single_column(schema_editor, model, column["task_id"], unique=True,
                            primary_key=False)
    if unique:
        schema_editor.execute(
            f"ALTER TABLE {table} RENAME CONSTRAINT {quote(unique[0])} TO {quote(TASK_ID_UNIQUE)}"
        )
    else:  # not made by 0001: make it now
        schema_editor.add_constraint(model, _task_id_unique())
    for index in PARTIAL:
        schema_editor.add_index(model, index)


def _postgresql_backwards(schema_editor, model):
    """Back to 0006's schema: full indexes, the LIKE index, the constraint of ``unique=True``."""
    quote = schema_editor.quote_name
    meta = model._meta
    for index in PARTIAL:
        schema_editor.remove_index(model, index)
    for name in ("run", "node", "reused_from"):
        column = meta.get_field(name).column
        schema_editor.add_index(model, models.Index(
            fields=[name], name=schema_editor._create_index_name(meta.db_table, [column])))
    column = meta.get_field("task_id").column
    like = schema_editor._create_index_name(meta.db_table, [column], suffix="_like")
    schema_editor.execute(f"CREATE INDEX {quote(like)} ON {quote(meta.db_table)}"
                          f" ({quote(column)} varchar_pattern_ops)")
    schema_editor.execute(
        f"ALTER TABLE {quote(meta.db_table)} RENAME CONSTRAINT {quote(TASK_ID_UNIQUE)}"
        f" TO {quote(f'{meta.db_table}_{column}_key')}"  # PostgreSQL's name, as 0001 made it
    )


def _task_id_unique():
    return models.UniqueConstraint(fields=("task_id",), name=TASK_ID_UNIQUE)


class Migration(migrations.Migration):
    dependencies = [
        ("task_admin", "0006_attempt_count"),
    ]

    operations = [
        TaskRunIndexes([
            migrations.AlterField(
                model_name="taskrun",
                name="node",
                field=models.ForeignKey(
                    blank=True,
                    db_index=False,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to="task_admin.workflownode",
                    verbose_name="workflow node",
                ),
            ),
            migrations.AlterField(
                model_name="taskrun",
                name="reused_from",
                field=models.ForeignKey(
                    blank=True,
                    db_index=False,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to="task_admin.taskrun",
                    verbose_name="result kept from",
                ),
            ),
            migrations.AlterField(
                model_name="taskrun",
                name="run",
                field=models.ForeignKey(
                    db_index=False,
                    on_delete=django.db.models.deletion.CASCADE,
                    related_name="nodes",
                    to="task_admin.workflowrun",
                    verbose_name="run",
                ),
            ),
            migrations.AlterField(
                model_name="taskrun",
                name="task_id",
                field=models.CharField(max_length=255, verbose_name="task id"),
            ),
            *(migrations.AddIndex(model_name="taskrun", index=index) for index in PARTIAL),
            migrations.AddConstraint(model_name="taskrun", constraint=_task_id_unique()),
        ]),
    ]
