"""Rows of hand-written SQL made into model instances as the ORM makes them.

For the hot paths only (a run start, the worker's batches): there, compiling a query with the
ORM cost more than running it, so the SQL is written once per process and the rows become
instances through ``Model.from_db`` with the fields' own converters (JSON decoded, SQLite's
dates parsed), exactly as a queryset would give them.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import models


class Rows:
    """How to select some fields of ``model`` and turn a row's slice into an instance."""

    def __init__(self, model: type[models.Model], fields: Sequence[models.Field]):
        self.model = model
        self.fields = list(fields)
        self.attnames = [field.attname for field in self.fields]
        pk = model._meta.pk.attname
        self._pk = self.attnames.index(pk) if pk in self.attnames else 0
        self._converters: dict[str, list] = {}

    @classmethod
    def of(cls, model: type[models.Model], names: Sequence[str] | None = None) -> Rows:
        """All concrete fields, or those named (attnames or field names)."""
        meta = model._meta
        fields = meta.concrete_fields if names is None else [meta.get_field(n) for n in names]
        return cls(model, fields)

    def __len__(self) -> int:
        return len(self.fields)

    def columns(self, connection, alias: str = "") -> list[str]:
        prefix = f"{alias}." if alias else ""
        return [prefix + connection.ops.quote_name(field.column) for field in self.fields]

    def _converters_for(self, connection) -> list:
        found = self._converters.get(connection.vendor)
        if found is None:
            found = []
            for position, field in enumerate(self.fields):
                col = field.get_col(self.model._meta.db_table)
                converters = (connection.ops.get_db_converters(col)
                              + col.get_db_converters(connection))
                if converters:
                    found.append((position, converters, col))
            self._converters[connection.vendor] = found
        return found

    def build(self, connection, values: Sequence) -> models.Model | None:
        """The instance from ``values`` (this object's fields, in order); None when its
        primary key is NULL (a LEFT JOIN that found nothing)."""
        converters = self._converters_for(connection)
        if converters:
            values = list(values)
            for position, functions, col in converters:
                value = values[position]
                for convert in functions:
                    value = convert(value, col, connection)
                values[position] = value
        if values[self._pk] is None:
            return None
        return self.model.from_db(connection.alias, self.attnames, values)
