"""What a test database holds, as plain values to compare, and what differs between two.

Tables are reflected with the inspector's ``get_multi_*`` calls, and only when a cheap
per-dialect digest of a table changed since it was last read: SQLite's schema text,
PostgreSQL's catalogs, MariaDB/MySQL's ``information_schema``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

__all__ = ["difference", "snapshot"]


def snapshot(
    connection: sa.Connection,
    schemas: Iterable[str | None],
    version: tuple[str | None, str],
    cache: dict[Any, Any],
) -> dict[str, Any]:
    """Every table (columns, keys, indexes, checks, comment), view, sequence and enum
    type of ``schemas`` as plain values; on PostgreSQL every schema, function and
    extension too.

    Tables are reflected with the inspector's ``get_multi_*`` calls (a few queries for
    all tables on PostgreSQL). On SQLite a table whose schema text (its ``CREATE`` and
    its indexes' in ``sqlite_master``) is the one seen before is not reflected again:
    ``cache`` keeps what it gave.
    """
    inspector = sa.inspect(connection)
    found: dict[str, Any] = {}
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        # Every schema of the database counts, not only the models': a downgrade must
        # drop the schema (and what is in it) that its upgrade made.
        default = inspector.default_schema_name
        others = [
            name
            for name in inspector.get_schema_names()
            if name != default and name != "information_schema" and not name.startswith("pg_")
        ]
        found.update({f"schema {name}": "present" for name in others})
        schemas = {None, *others}
        found.update(_pg_routines(connection))
    for schema in sorted(schemas, key=lambda s: s or ""):
        if schema is not None and not inspector.has_schema(schema):
            continue  # not created (yet): nothing in it
        names = [
            name
            for name in inspector.get_table_names(schema=schema)
            if not (name == version[1] and schema in (None, version[0]))
        ]
        texts = _fingerprints(connection, schema)
        if texts is None:  # no cheap way to tell a table unchanged: reflect them all
            texts = {}
            cache.clear()
        wanted = [n for n in names if (schema, n, texts.get(n)) not in cache]
        if wanted:
            for name, detail in _reflect(inspector, schema, wanted).items():
                cache[(schema, name, texts.get(name))] = detail
        for name in sorted(names):
            key = f"{schema}.{name}" if schema else name
            found[f"table {key}"] = cache[(schema, name, texts.get(name))]
        prefix = f"{schema}." if schema else ""
        with contextlib.suppress(NotImplementedError):
            for view in inspector.get_view_names(schema=schema):
                found[f"view {prefix}{view}"] = True
        with contextlib.suppress(NotImplementedError):
            for sequence in inspector.get_sequence_names(schema=schema):
                found[f"sequence {prefix}{sequence}"] = True
        get_enums: Callable[..., list[dict[str, Any]]] | None
        get_enums = getattr(inspector, "get_enums", None)
        if get_enums is not None:
            for enum in get_enums(schema=schema or "public"):
                found[f"type {prefix}{enum['name']}"] = tuple(enum["labels"])
    return found


#: Per table, everything MariaDB/MySQL say about its definition, in four queries.
_MYSQL_FINGERPRINT = (
    "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, "
    "COLUMN_DEFAULT, EXTRA, COLLATION_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
    "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART "
    "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION, COLUMN_NAME, "
    "REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
    "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE "
    "FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
)


#: PostgreSQL's functions, procedures and extensions outside the system's schemas.
_PG_ROUTINES = (
    "SELECT 'function ' || n.nspname || '.' || p.proname || "
    "'(' || pg_get_function_identity_arguments(p.oid) || ')', md5(pg_get_functiondef(p.oid)) "
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
    "WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' "
    "AND p.prokind IN ('f', 'p') AND d.objid IS NULL "
    "UNION ALL SELECT 'extension ' || extname, extversion FROM pg_extension "
    "WHERE extname <> 'plpgsql'"
)


#: Per table of a PostgreSQL schema, a digest of its columns (with defaults), its
#: constraints, its indexes and its comment, as the catalogs give them.
_PG_FINGERPRINT = (
    "SELECT c.relname, md5(concat_ws('|', "
    "(SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' "
    "|| a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' "
    "|| coalesce(col_description(c.oid, a.attnum), ''), ',' ORDER BY a.attname) "
    "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
    "AND d.adnum = a.attnum WHERE a.attrelid = c.oid AND a.attnum > 0 "
    "AND NOT a.attisdropped), "
    "(SELECT string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid), ',' "
    "ORDER BY k.conname) FROM pg_constraint k WHERE k.conrelid = c.oid), "
    "(SELECT string_agg(pg_get_indexdef(x.indexrelid), ',' ORDER BY x.indexrelid::regclass::text) "
    "FROM pg_index x WHERE x.indrelid = c.oid), "
    "obj_description(c.oid, 'pg_class'))) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname = COALESCE(:schema, current_schema())"
)


def _pg_routines(connection: sa.Connection) -> dict[str, Any]:
    return {str(name): str(digest) for name, digest in connection.execute(sa.text(_PG_ROUTINES))}


def _fingerprints(connection: sa.Connection, schema: str | None) -> dict[str, Any] | None:
    """Per table, a value that changes whenever its definition does, read in a few
    queries: SQLite's schema text (``sqlite_master``: the table's ``CREATE`` and its
    indexes'), PostgreSQL's catalogs (one query), MariaDB/MySQL's ``information_schema``
    rows. ``None`` elsewhere."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name == "sqlite":
        master = f"{quote(schema)}.sqlite_master" if schema else "sqlite_master"
        for row in connection.exec_driver_sql(f"SELECT tbl_name, type, name, sql FROM {master}"):
            rows.setdefault(row[0], []).append(tuple(row[1:]))
    elif connection.dialect.name == "postgresql":
        found = connection.execute(sa.text(_PG_FINGERPRINT), {"schema": schema})
        return {str(name): str(digest) for name, digest in found}
    elif connection.dialect.name in ("mysql", "mariadb"):
        for number, query in enumerate(_MYSQL_FINGERPRINT):
            for row in connection.execute(sa.text(query), {"schema": schema}):
                rows.setdefault(row[0], []).append((number, *map(str, row[1:])))
    else:
        return None
    return {name: tuple(sorted(found, key=repr)) for name, found in rows.items()}


def _reflect(inspector: sa.Inspector, schema: str | None, names: list[str]) -> dict[str, Any]:
    def multi(method: Callable[..., Mapping[tuple[str | None, str], Any]]) -> dict[str, Any]:
        return {key[1]: value for key, value in method(schema=schema, filter_names=names).items()}

    columns = multi(inspector.get_multi_columns)
    keys = multi(inspector.get_multi_pk_constraint)
    foreign = multi(inspector.get_multi_foreign_keys)
    indexes = multi(inspector.get_multi_indexes)
    uniques = multi(inspector.get_multi_unique_constraints)
    checks: dict[str, Any] = {}
    comments: dict[str, Any] = {}
    with contextlib.suppress(NotImplementedError):
        checks = multi(inspector.get_multi_check_constraints)
    with contextlib.suppress(NotImplementedError):
        comments = multi(inspector.get_multi_table_comment)
    return {
        name: _table_detail(
            columns.get(name, ()),
            keys.get(name) or {},
            foreign.get(name, ()),
            indexes.get(name, ()),
            uniques.get(name, ()),
        )
        | {
            f"check {c.get('name') or c['sqltext']}": str(c["sqltext"])
            for c in checks.get(name, ())
        }
        | ({"comment": comments[name]["text"]} if (comments.get(name) or {}).get("text") else {})
        for name in names
    }


def _table_detail(
    columns: Iterable[Mapping[str, Any]],
    key: Mapping[str, Any],
    foreign: Iterable[Mapping[str, Any]],
    indexes: Iterable[Mapping[str, Any]],
    uniques: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """One table as named parts to compare: the order of its columns does not count (a
    column dropped and added back comes last, the same column)."""
    detail: dict[str, Any] = {}
    for c in columns:
        default = c.get("default")
        detail[f"column {c['name']}"] = (
            f"{c['type']}, {'NULL' if c['nullable'] else 'NOT NULL'}"
            + (f", DEFAULT {default}" if default is not None else "")
        )
    if key.get("constrained_columns"):
        detail["primary key"] = f"({', '.join(key['constrained_columns'])})"
    for f in foreign:
        referred = (
            f"{f['referred_schema']}.{f['referred_table']}"
            if f.get("referred_schema")
            else f["referred_table"]
        )
        detail[
            f"foreign key ({', '.join(f['constrained_columns'])}) -> "
            f"{referred} ({', '.join(f['referred_columns'])})"
        ] = "present"
    for i in indexes:
        columns_of = ", ".join(map(str, i["column_names"]))
        detail[f"index {i['name']}"] = f"{'UNIQUE ' if i['unique'] else ''}({columns_of})"
    for u in uniques:
        columns_of = ", ".join(map(str, u["column_names"]))
        detail[f"unique constraint {u['name'] or f'({columns_of})'}"] = f"({columns_of})"
    return detail


def difference(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What differs, object by object; inside a table, part by part."""
    lines: list[str] = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            lines.append(f"  + {key} is left behind")
        elif key not in after:
            lines.append(f"  - {key} is gone")
        elif before[key] != after[key]:
            old, new = before[key], after[key]
            lines.append(f"  ~ {key}:")
            if not isinstance(old, dict):
                lines.append(f"      {old} before, {new} after")
                continue
            for part in sorted(set(old) | set(new)):
                if part not in old:
                    lines.append(f"      + {part} ({new[part]}) is left behind")
                elif part not in new:
                    lines.append(f"      - {part} ({old[part]}) is gone")
                elif old[part] != new[part]:
                    lines.append(f"      ~ {part}: {old[part]} before, {new[part]} after")
    return "\n".join(lines)
