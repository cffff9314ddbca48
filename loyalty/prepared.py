"""Reads and inserts on the tills' hot path with their SQL built once per process.

The ORM compiles a queryset's SQL each time it is evaluated: for a card with its member
and the member's status that is about a millisecond, three times what the database needs
to answer. A ``PreparedRead`` writes the SELECT of a model and its to-one relations once
from the models' metadata, runs it with each call's parameters, and returns instances as
``select_related`` would: every value through the converters the ORM applies on that
database, and each relation cached on its instance (``None`` where the key is empty).

The WHERE clause is SQL over the aliases ``{t}`` (the model) and ``{related path}`` (a
relation, e.g. ``{member}``), with ``%s`` placeholders; everything else (tables, columns)
comes from the models. The inserts (``insert_one``, ``insert_unless_exists``,
``insert_family``) write their statements the same way, once per model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import orjson
from django.db import connections, models
from django.db.models.sql import Query


@dataclass
class _Plan:
    sql: str
    converters: dict
    compiler: object
    # per model in select order: (model, attnames, first column, pk column, relation
    # field, parent's index)
    parts: list[tuple]
    # the extra values' names on the model's instance, their columns last in the row
    extra: tuple[str, ...] = ()


class PreparedRead:
    """``extra``: more values for the model's instance, each ``{name: {vendor: SQL}}``,
    an expression over the aliases set as that attribute, as the database returns it;
    on a database its mapping does not name, the attribute is not set (the caller reads
    the value its own way)."""

    def __init__(
        self,
        model: type[models.Model],
        *,
        related: tuple[str, ...] = (),
        where: str,
        order_by: str = "",
        extra: dict[str, dict[str, str]] | None = None,
    ):
        self.model = model
        self.related = related
        self.where = where
        self.order_by = order_by
        self.extra = extra or {}
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, using: str) -> _Plan:
        plan = self._plans.get(using)
        if plan is None:
            with self._lock:
                plan = self._plans.get(using) or self._plan_build(using)
                self._plans[using] = plan
        return plan

    def _plan_build(self, using: str) -> _Plan:
        connection = connections[using]
        quote = connection.ops.quote_name
        # The model, then each relation: (path, model, alias, field on the parent, parent index).
        nodes = [("", self.model, "t", None, None)]
        for path in self.related:
            *parent_path, name = path.split("__")
            parent_index = next(i for i, node in enumerate(nodes) if node[0] == "__".join(parent_path))
            field = nodes[parent_index][1]._meta.get_field(name)
            nodes.append((path, field.related_model, f"t{len(nodes)}", field, parent_index))
        columns, cols, parts, joins = [], [], [], []
        for _path, model, alias, field, parent_index in nodes:
            fields = model._meta.concrete_fields
            attnames = [f.attname for f in fields]
            pk_at = len(columns) + attnames.index(model._meta.pk.attname)
            parts.append((model, attnames, len(columns), pk_at, field, parent_index))
            columns += [f"{alias}.{quote(f.column)}" for f in fields]
            cols += [f.get_col(alias) for f in fields]
            if field is not None:
                parent_alias = nodes[parent_index][2]
                joins.append(
                    f"LEFT OUTER JOIN {quote(model._meta.db_table)} {alias} "
                    f"ON {alias}.{quote(field.target_field.column)} = {parent_alias}.{quote(field.column)}"
                )
        aliases = {"t": "t", **{path: alias for path, _m, alias, _f, _p in nodes[1:]}}
        extra = {name: sql[connection.vendor] for name, sql in self.extra.items() if connection.vendor in sql}
        columns += [sql.format(**aliases) for sql in extra.values()]
        sql = (
            f"SELECT {', '.join(columns)} FROM {quote(self.model._meta.db_table)} t "
            + " ".join(joins)
            + f" WHERE {self.where.format(**aliases)}"
            + (f" ORDER BY {self.order_by.format(**aliases)}" if self.order_by else "")
        )
        compiler = Query(self.model).get_compiler(using=using)
        converters = compiler.get_converters(cols)
        return _Plan(sql=sql, converters=converters, compiler=compiler, parts=parts, extra=tuple(extra))

    def _rows(self, params: list, using: str, limit: int | None):
        plan = self._plan(using)
        sql = plan.sql + (f" LIMIT {int(limit)}" if limit else "")
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if plan.converters:
            rows = list(plan.compiler.apply_converters(rows, plan.converters))
        return plan, rows

    def _instances(self, plan: _Plan, row, using: str) -> models.Model:
        made: list[models.Model | None] = []
        for model, attnames, start, pk_at, field, parent_index in plan.parts:
            parent = made[parent_index] if parent_index is not None else None
            if field is not None and parent is None:
                made.append(None)  # the parent itself is missing
                continue
            values = row[start : start + len(attnames)]
            instance = model.from_db(using, attnames, values) if row[pk_at] is not None else None
            if field is not None:
                field.set_cached_value(parent, instance)
            made.append(instance)
        if plan.extra and made[0] is not None:
            for name, value in zip(plan.extra, row[-len(plan.extra) :], strict=True):
                setattr(made[0], name, value)
        return made[0]

    def first(self, *params, using: str = "default") -> models.Model | None:
        plan, rows = self._rows(list(params), using, 1)
        return self._instances(plan, rows[0], using) if rows else None

    def all(self, *params, using: str = "default") -> list[models.Model]:
        plan, rows = self._rows(list(params), using, None)
        return [self._instances(plan, row, using) for row in rows]


_single_inserts: dict[tuple, str] = {}


def _insert_sql(meta, fields: list, unique_fields: tuple[str, ...] | None, connection) -> str:
    """``INSERT ... VALUES ... [ON CONFLICT (unique fields) DO NOTHING] RETURNING pk``."""
    quote = connection.ops.quote_name
    conflict = ""
    if unique_fields:
        columns = ", ".join(quote(meta.get_field(name).column) for name in unique_fields)
        conflict = f" ON CONFLICT ({columns}) DO NOTHING"
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}){conflict} RETURNING {quote(meta.pk.column)}"
    )


def _values(instance: models.Model, fields: list, connection) -> list:
    """The instance's values of ``fields`` as ``save()`` writes them (defaults and
    ``auto_now`` applied, each prepared for the database)."""
    return [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]


def _insert(instance: models.Model, unique_fields: tuple[str, ...] | None, using: str) -> bool:
    meta = instance._meta
    connection = connections[using]
    fields = [f for f in meta.concrete_fields if not (f.primary_key and getattr(instance, f.attname) is None)]
    key = (type(instance), len(fields), unique_fields, using)
    sql = _single_inserts.get(key)
    if sql is None:
        sql = _single_inserts[key] = _insert_sql(meta, fields, unique_fields, connection)
    values = _values(instance, fields, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding, instance._state.db = False, using
    return True


def insert_unless_exists(
    instance: models.Model, *, unique_fields: tuple[str, ...], using: str = "default"
) -> bool:
    """Insert an unsaved instance unless a row with its values of ``unique_fields`` (a
    unique constraint's fields) exists: one ``INSERT ... ON CONFLICT DO NOTHING
    RETURNING`` instead of a savepoint around an insert that may fail. Returns whether it
    was inserted (its primary key set); when not, the caller reads the row that exists."""
    return _insert(instance, unique_fields, using)


def insert_one(instance: models.Model, *, using: str = "default") -> models.Model:
    """``instance.save()`` of a new row as one ``INSERT ... RETURNING`` written once per
    process, without the ORM's compilation of the query on each call and without the
    save signals: for rows appended on the tills' path. Returns the instance, its
    primary key set."""
    _insert(instance, None, using)
    return instance


# Field kinds whose Python values a JSON document carries as they are (decimals as text),
# without the ORM's per-value preparation.
_PLAIN_KINDS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "DecimalField",
        "IntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "TextField",
    }
)


@dataclass
class _Family:
    sql: str
    fields: list  # the parent's columns, as the VALUES list has them
    children: list  # per child: (foreign key, [(JSON key, attname)])


_families: dict[tuple, _Family] = {}


def _family(parent_model, unique_fields, shapes, connection) -> _Family:
    quote = connection.ops.quote_name
    meta = parent_model._meta
    pk = quote(meta.pk.column)
    fields = [f for f in meta.concrete_fields if f is not meta.pk]
    parts = [f"parent AS ({_insert_sql(meta, fields, unique_fields, connection)})"]
    keys, children = [], []
    for i, (model, name) in enumerate(shapes):
        fk = model._meta.get_field(name)
        if fk.remote_field is None or fk.remote_field.model is not parent_model:
            raise ValueError(f"{model._meta.label}.{name} does not point at {meta.label}")
        columns = [f for f in model._meta.concrete_fields if f is not model._meta.pk and f is not fk]
        for field in columns:
            kind = (field.target_field if field.is_relation else field).get_internal_type()
            if kind not in _PLAIN_KINDS:
                raise ValueError(f"insert_family does not write {model._meta.label}.{field.name} ({kind})")
        table = quote(model._meta.db_table)
        names = ", ".join(quote(f.column) for f in columns)
        parts.append(
            f"c{i} AS (INSERT INTO {table} ({quote(fk.column)}, {names}) "
            f"SELECT parent.{pk}, {', '.join('j.' + quote(f.column) for f in columns)} "
            f"FROM parent, json_populate_recordset(NULL::{table}, %s::json) AS j "
            f"RETURNING {quote(model._meta.pk.column)})"
        )
        keys.append(f", (SELECT array_agg({quote(model._meta.pk.column)}) FROM c{i})")
        children.append((fk, [(f.column, f.attname) for f in columns]))
    sql = f"WITH {', '.join(parts)} SELECT parent.{pk}{''.join(keys)} FROM parent"
    return _Family(sql=sql, fields=fields, children=children)


def insert_family(
    parent: models.Model,
    *,
    unique_fields: tuple[str, ...],
    children: list[tuple[type[models.Model], str, list[models.Model]]],
    using: str = "default",
) -> bool:
    """``insert_unless_exists(parent)`` and, when it was inserted, its children: each
    ``(model, foreign key name, unsaved objects)``, a model of plain values whose key
    names the parent's model, the objects pointed at the parent and given their keys (a
    list may be empty). Returns whether the parent was inserted; when not, nothing was.
    On PostgreSQL one statement, written once per process: the parent's ``INSERT ... ON
    CONFLICT DO NOTHING RETURNING`` and each child table's ``INSERT ... SELECT FROM
    json_populate_recordset`` of its rows as one JSON document (one array per column
    would cost a Python-level encoding of every value; the ORM prepares each value of
    each row). Elsewhere ``insert_unless_exists`` and ``bulk_create``."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        if not insert_unless_exists(parent, unique_fields=unique_fields, using=using):
            return False
        for model, name, objs in children:
            for obj in objs:
                setattr(obj, name, parent)
            model._default_manager.using(using).bulk_create(objs)
        return True
    key = (type(parent), unique_fields, tuple((model, name) for model, name, _objs in children), using)
    family = _families.get(key)
    if family is None:
        family = _families[key] = _family(type(parent), unique_fields, key[2], connection)
    params = _values(parent, family.fields, connection)
    for (_model, _name, objs), (_fk, columns) in zip(children, family.children, strict=True):
        rows = [{column: getattr(obj, attname) for column, attname in columns} for obj in objs]
        params.append(orjson.dumps(rows, default=str).decode())
    with connection.cursor() as cursor:
        cursor.execute(family.sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    parent.pk = row[0]
    parent._state.adding, parent._state.db = False, using
    for (_model, _name, objs), (fk, _columns), pks in zip(children, family.children, row[1:], strict=True):
        # PostgreSQL returns the rows of INSERT ... SELECT in the document's order.
        for obj, pk in zip(objs, pks or (), strict=True):
            setattr(obj, fk.attname, parent.pk)
            fk.set_cached_value(obj, parent)
            obj.pk = pk
            obj._state.adding, obj._state.db = False, using
    return True
