"""Lists over big tables: a paginator whose count is bounded, a changelist that leaves the big
columns unread, and the mixin for records nobody adds or edits by hand (runs, task runs)."""

from __future__ import annotations

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property


class BoundedCountPaginator(Paginator):
    """A paginator whose count never reads more than ``count_limit`` rows.

    Counting is the slow part of a changelist over a big table. This one counts with
    ``SELECT COUNT(*) FROM (SELECT id ... LIMIT count_limit + 1)``, which costs the same on a
    table of a thousand rows or a hundred million. Past the limit the count is a lower bound
    (``count_is_exact`` is False): PostgreSQL's planner estimate for an unfiltered list, the
    limit otherwise. The list's pagination template says "more than" / "about".
    """

    count_limit = 5000

    count_is_exact = True
    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        counted = qs.order_by().values("pk")[: self.count_limit + 1].count()
        if counted <= self.count_limit:
            return counted
        self.count_is_exact = False
        estimate = _estimated_rows(qs) or 0
        self.count_is_estimate = estimate > self.count_limit
        return max(self.count_limit, estimate)


def _estimated_rows(qs: QuerySet) -> int | None:
    """The planner's idea of how many rows the table holds (PostgreSQL, unfiltered only)."""
    connection = connections[qs.db]
    if connection.vendor != "postgresql" or qs.query.has_filters():
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(qs.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


class LightChangeList(ChangeList):
    """A changelist that does not read the model's big columns (``list_defer``)."""

    def get_queryset(self, request, exclude_parameters=None):
        qs = super().get_queryset(request, exclude_parameters)
        return qs.defer(*self.model_admin.list_defer)


class ReadOnlyListMixin:
    """Records of what happened: cheap lists over big tables, never added or edited by hand."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    list_defer: tuple[str, ...] = ()

    def get_changelist(self, request, **kwargs):
        return LightChangeList

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def can_view_task_results(request, site) -> bool:
    """Whether django-celery-results is installed and its result pages are open to the user."""
    from django.apps import apps

    if not apps.is_installed("django_celery_results"):
        return False
    from django_celery_results.models import TaskResult

    model_admin = site._registry.get(TaskResult)
    return bool(model_admin and model_admin.has_view_permission(request))
