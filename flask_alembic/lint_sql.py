"""What a SQL statement does, read with a real SQL parser (sqlglot, the ``lint`` extra).

The linter reads Alembic's operations where it can; SQL is read for what operations do
not say: the text of ``op.execute()``, and the default of an added column. Each
statement becomes ``Fact`` values, the same vocabulary the operations are translated to.
A statement the parser does not understand is never guessed at: it is reported as SQL
that was not analysed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Fact", "available", "facts", "quiet_parser", "volatile_default"]


@dataclass(frozen=True)
class Fact:
    """One thing a migration does, as the rules need to know it.

    ``kind`` is one of: ``create-table``, ``drop-table``, ``rename-table``,
    ``add-column``, ``drop-column``, ``rename-column``, ``change-type``, ``set-not-null``,
    ``create-index``, ``drop-index``, ``add-foreign-key``, ``add-unique``, ``other-ddl``,
    ``data`` (a row change), ``set`` (a setting), ``unknown`` (not understood).
    """

    kind: str
    table: str | None = None
    #: A column's, index's or setting's name.
    name: str | None = None
    #: A new name, a new type, a setting's value, or the verb of a row change.
    detail: str | None = None
    #: ``CONCURRENTLY`` given (indexes); ``NOT VALID`` given (foreign keys).
    online: bool = False
    #: ``add-column``: the column is NOT NULL.
    not_null: bool = False
    #: ``add-column``: the column has a server default.
    has_default: bool = False
    #: ``add-column``: what makes the default computed per row, if anything.
    volatile: str | None = None
    #: ``create-index``: FULLTEXT or SPATIAL, if it is one.
    index_kind: str | None = None
    #: The statement (``unknown``), shortened by the reader.
    sql: str | None = None


_READ = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}

#: Functions PostgreSQL evaluates once per statement (stable or immutable): a default made
#: of them is stored once, without rewriting the table. Any other function the parser does
#: not know is taken as volatile, which is what PostgreSQL assumes of a function declared
#: without a volatility.
_STABLE_FUNCTIONS = frozenset(
    {
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "current_timestamp",
        "localtimestamp",
        "current_date",
        "current_time",
        "current_user",
        "session_user",
        "to_json",
        "jsonb_build_object",
        "json_build_object",
        "make_interval",
    }
)

_SERIAL_TYPES = frozenset({"SERIAL", "SMALLSERIAL", "BIGSERIAL"})


def available() -> bool:
    """Whether the SQL parser (the ``lint`` extra) is installed."""
    try:
        import sqlglot  # noqa: F401
    except ImportError:
        return False
    return True


class _NoFallbackNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def quiet_parser() -> Iterator[None]:
    """Keep sqlglot's "falling back to a command" log lines off the user's terminal: a
    statement it cannot read is reported as a finding instead."""
    logger = logging.getLogger("sqlglot")
    note = _NoFallbackNotes()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def facts(sql: str, dialect: str) -> list[Fact]:
    """What ``sql`` (one or more statements) does; ``unknown`` facts for what the parser
    cannot read."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    text = sql.strip()
    try:
        parsed = sqlglot.parse(text, read=_READ.get(dialect, dialect))
    except SqlglotError:
        return [Fact("unknown", sql=text)]
    found: list[Fact] = []
    for statement in parsed:
        if statement is None:  # only a comment
            continue
        if isinstance(statement, exp.Command):
            found.append(Fact("unknown", sql=statement.sql()))
            continue
        found.extend(_statement_facts(statement, exp))
    return found


def _name(node: Any) -> str | None:
    return str(node.name) if node is not None and getattr(node, "name", None) else None


def _statement_facts(statement: Any, exp: Any) -> list[Fact]:
    if isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        target = statement.this
        table = target.find(exp.Table) if target is not None else None
        return [Fact("data", table=_name(table), detail=statement.key.upper())]
    if isinstance(statement, exp.Set):
        return [_set_fact(item, exp) for item in statement.expressions]
    if isinstance(statement, (exp.Transaction, exp.Commit, exp.Rollback, exp.Select)):
        return []
    if isinstance(statement, exp.Create):
        return _create_facts(statement, exp)
    if isinstance(statement, exp.Drop):
        return _drop_facts(statement, exp)
    if isinstance(statement, exp.Alter):
        return _alter_facts(statement, exp)
    return [Fact("unknown", sql=statement.sql())]


def _set_fact(item: Any, exp: Any) -> Fact:
    assignment = item.this
    if isinstance(assignment, exp.EQ):
        value = assignment.expression
        shown = value.name if isinstance(value, exp.Literal) else value.sql()
        return Fact("set", name=_name(assignment.this), detail=str(shown))
    return Fact("set", name=None, detail=item.sql())


def _create_facts(statement: Any, exp: Any) -> list[Fact]:
    kind = str(statement.args.get("kind") or "").upper()
    if kind == "TABLE":
        table = statement.this.find(exp.Table) if statement.this is not None else None
        return [Fact("create-table", table=_name(table))]
    if kind == "INDEX":
        index = statement.this
        table = index.args.get("table") if index is not None else None
        return [
            Fact(
                "create-index",
                table=_name(table),
                name=_name(index),
                online=bool(statement.args.get("concurrently")),
            )
        ]
    return [Fact("other-ddl", sql=statement.sql())]


def _drop_facts(statement: Any, exp: Any) -> list[Fact]:
    kind = str(statement.args.get("kind") or "").upper()
    names = [_name(t) for t in statement.args.get("tables") or [statement.this]]
    if kind == "TABLE":
        return [Fact("drop-table", table=name) for name in names]
    if kind == "INDEX":
        online = bool(statement.args.get("concurrently"))
        return [Fact("drop-index", name=name, online=online) for name in names]
    return [Fact("other-ddl", sql=statement.sql())]


def _alter_facts(statement: Any, exp: Any) -> list[Fact]:
    table = _name(statement.this)
    found: list[Fact] = []
    for action in statement.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            found.append(column_fact(table, action, exp))
        elif isinstance(action, exp.Drop):
            kind = str(action.args.get("kind") or "").upper()
            if kind in {"COLUMN", ""}:
                found.extend(
                    Fact("drop-column", table=table, name=_name(c))
                    for c in action.args.get("tables") or []
                )
            else:
                found.append(Fact("other-ddl", table=table))
        elif isinstance(action, exp.RenameColumn):
            found.append(
                Fact(
                    "rename-column",
                    table=table,
                    name=_name(action.this),
                    detail=_name(action.args.get("to")),
                )
            )
        elif isinstance(action, exp.AlterRename):
            found.append(Fact("rename-table", table=table, detail=_name(action.this)))
        elif isinstance(action, exp.AlterColumn):
            found.extend(_alter_column_facts(table, action))
        elif isinstance(action, exp.ModifyColumn):
            # MySQL's MODIFY/CHANGE restates the whole column: its type may have changed.
            column = action.this
            renamed = action.args.get("rename_from")
            if renamed is not None and _name(renamed) != _name(column):
                found.append(
                    Fact("rename-column", table=table, name=_name(renamed), detail=_name(column))
                )
            kind = column.args.get("kind")
            found.append(
                Fact(
                    "change-type",
                    table=table,
                    name=_name(column),
                    detail=kind.sql("mysql") if kind is not None else None,
                )
            )
        elif isinstance(action, exp.AddConstraint):
            found.extend(_constraint_facts(table, action, statement, exp))
        else:
            found.append(Fact("other-ddl", table=table))
    return found


def _alter_column_facts(table: str | None, action: Any) -> list[Fact]:
    column = _name(action.this)
    found: list[Fact] = []
    dtype = action.args.get("dtype")
    if dtype is not None:
        found.append(Fact("change-type", table=table, name=column, detail=dtype.sql()))
    if action.args.get("allow_null") is False:
        found.append(Fact("set-not-null", table=table, name=column))
    if not found:
        found.append(Fact("other-ddl", table=table))
    return found


def _constraint_facts(table: str | None, action: Any, statement: Any, exp: Any) -> list[Fact]:
    found: list[Fact] = []
    for constraint in action.expressions:
        if constraint.find(exp.ForeignKey) is not None:
            online = bool(statement.args.get("not_valid"))
            found.append(
                Fact("add-foreign-key", table=table, name=_name(constraint), online=online)
            )
        elif constraint.find(exp.UniqueColumnConstraint) is not None:
            found.append(Fact("add-unique", table=table, name=_name(constraint)))
        else:
            found.append(Fact("other-ddl", table=table))
    return found


def column_fact(table: str | None, column: Any, exp: Any) -> Fact:
    """An ``add-column`` fact from a parsed column definition."""
    not_null = False
    default = None
    identity = False
    for constraint in column.args.get("constraints") or []:
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null"):
            not_null = True
        elif isinstance(kind, exp.DefaultColumnConstraint):
            default = kind.this
        elif isinstance(kind, (exp.GeneratedAsIdentityColumnConstraint,)):
            identity = True
    volatile = None
    dtype = column.args.get("kind")
    type_name = str(dtype.this.name) if dtype is not None else ""
    if type_name in _SERIAL_TYPES:
        volatile = f"the {type_name.lower()} type"
    elif identity:
        volatile = "an identity column"
    elif default is not None:
        volatile = _volatile(default, exp)
    return Fact(
        "add-column",
        table=table,
        name=_name(column),
        not_null=not_null,
        has_default=default is not None or identity or type_name in _SERIAL_TYPES,
        volatile=volatile,
    )


def _volatile(default: Any, exp: Any) -> str | None:
    """The function call that makes ``default`` computed per row, if any."""
    for function in default.find_all(exp.Func):
        if isinstance(function, (exp.Rand, exp.Uuid)):
            return str(function.sql("postgres"))
        if (
            isinstance(function, exp.Anonymous)
            and str(function.name).lower() not in _STABLE_FUNCTIONS
        ):
            return str(function.sql("postgres"))
    return None


def volatile_default(expression: str, dialect: str) -> str | None:
    """The function call that makes a server default (SQL, as the dialect renders it)
    computed per row, or ``None``; ``ValueError`` when the parser cannot read it."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        parsed = sqlglot.parse_one(expression, read=_READ.get(dialect, dialect))
    except SqlglotError as exc:
        raise ValueError(expression) from exc
    if parsed is None or isinstance(parsed, exp.Command):
        raise ValueError(expression)
    return _volatile(parsed, exp)
