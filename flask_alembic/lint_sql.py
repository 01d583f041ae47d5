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
from dataclasses import replace
from typing import Any

__all__ = [
    "Fact",
    "available",
    "column_facts",
    "facts",
    "first_words",
    "quiet_parser",
    "volatile_default",
]


@dataclass(frozen=True)
class Fact:
    """One thing a migration does, as the rules need to know it.

    ``kind`` is one of: ``create-table``, ``drop-table``, ``drop-schema``,
    ``rename-table``, ``add-column``, ``drop-column``, ``rename-column``, ``change-type``,
    ``set-not-null``, ``create-index``, ``drop-index``, ``add-foreign-key``,
    ``add-unique``, ``other-ddl``, ``data`` (a row change), ``set`` (a setting; ``detail``
    ``None`` when it goes back to its default), ``commit`` (a transaction ends, as in
    ``autocommit_block()``), ``unknown`` (not understood).
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
    #: ``create-index``: FULLTEXT or SPATIAL, if it is one; ``PRIMARY KEY`` (``add-unique``).
    index_kind: str | None = None
    #: ``unknown``: the first words of the statement.
    sql: str | None = None
    #: The table's schema, when named.
    schema: str | None = None
    #: ``set``: the setting lasts until the transaction ends (``SET LOCAL``).
    local: bool = False

    @property
    def where(self) -> str | None:
        """The table, with its schema."""
        if self.table is None:
            return None
        return f"{self.schema}.{self.table}" if self.schema else self.table


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
        "timezone",
        "current_setting",
        "jsonb_build_array",
        "json_build_array",
        "date_trunc",
        "to_timestamp",
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

    text = sql.strip()
    read = _READ.get(dialect, dialect)
    try:
        parsed = sqlglot.parse(text, read=read)
    except Exception:  # a parse error, or SQL nested too deep for the parser
        return [Fact("unknown", sql=first_words(text, read))]
    found: list[Fact] = []
    for statement in parsed:
        if statement is None:  # only a comment
            continue
        try:
            found.extend(_statement_facts(statement, exp, read))
        except Exception:
            found.append(Fact("unknown", sql=first_words(statement.sql(read), read)))
    return found


def first_words(sql: str, read: str = "postgres", count: int = 3) -> str:
    """The first words of a statement, as the tokenizer splits them: enough to say which
    statement it is, without its values (which may be secrets)."""
    import sqlglot

    try:
        tokens = [t.text for t in sqlglot.tokenize(sql, read=read)[: count + 1]]
    except Exception:
        tokens = []
    if not tokens:
        return "(unreadable)"
    more = " ..." if len(tokens) > count else ""
    return " ".join(tokens[:count]) + more


def _name(node: Any) -> str | None:
    return str(node.name) if node is not None and getattr(node, "name", None) else None


def _schema(node: Any) -> str | None:
    return str(node.db) if node is not None and getattr(node, "db", None) else None


def _statement_facts(statement: Any, exp: Any, read: str) -> list[Fact]:
    if isinstance(statement, exp.Command):
        return _command_facts(statement, read)
    if isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        target = statement.this
        table = target.find(exp.Table) if target is not None else None
        verb = statement.key.upper()
        return [Fact("data", table=_name(table), schema=_schema(table), detail=verb)]
    if isinstance(statement, exp.TruncateTable):
        return [
            Fact("data", table=_name(t), schema=_schema(t), detail="TRUNCATE")
            for t in statement.expressions
        ]
    if isinstance(statement, exp.Set):
        return [_set_fact(item, exp) for item in statement.expressions]
    if isinstance(statement, (exp.Transaction, exp.Rollback)):
        return []
    if isinstance(statement, exp.Commit):
        return [Fact("commit")]
    if isinstance(statement, exp.Query):
        return _query_facts(statement, exp, read)
    if isinstance(statement, exp.Create):
        return _create_facts(statement, exp)
    if isinstance(statement, exp.Drop):
        return _drop_facts(statement, exp)
    if isinstance(statement, exp.Alter):
        return _alter_facts(statement, exp)
    return [Fact("unknown", sql=first_words(statement.sql(read), read))]


def _query_facts(statement: Any, exp: Any, read: str) -> list[Fact]:
    """A query changes nothing, unless a CTE changes rows or it calls a function that
    the parser does not know (which may do anything); ``set_config()`` is a setting."""
    found: list[Fact] = []
    for change in statement.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge):
        table = change.this.find(exp.Table) if change.this is not None else None
        found.append(Fact("data", table=_name(table), detail=change.key.upper()))
    for function in statement.find_all(exp.Anonymous):
        if str(function.name).lower() == "set_config" and len(function.expressions) >= 2:
            setting, value = function.expressions[:2]
            local = len(function.expressions) > 2 and function.expressions[2].sql() == "TRUE"
            found.append(Fact("set", name=setting.name, detail=value.name, local=local))
        else:
            found.append(Fact("unknown", sql=first_words(statement.sql(read), read)))
            break
    return found


def _command_facts(statement: Any, read: str) -> list[Fact]:
    """Statements the parser keeps as a command: their words, read by its tokenizer."""
    import sqlglot

    text = statement.sql(read)
    try:
        words = [t.text for t in sqlglot.tokenize(text, read=read)]
    except Exception:
        words = []
    head = [w.upper() for w in words[:3]]
    if head[:1] == ["RESET"] and len(words) > 1:
        return [Fact("set", name=words[1], detail=None)]
    if head[:1] == ["RENAME"]:
        # MySQL: RENAME TABLE a TO b[, c TO d]; the tokenizer gives the rest as one string.
        rest = [t.text for t in sqlglot.tokenize(words[1], read=read)] if len(words) > 1 else []
        if rest[:1] and rest[0].upper() == "TABLE":
            pairs = " ".join(rest[1:]).split(",")
            found = []
            for pair in pairs:
                parts = pair.split()
                if len(parts) == 3 and parts[1].upper() == "TO":
                    found.append(Fact("rename-table", table=parts[0], detail=parts[2]))
            if found:
                return found
    if head[:1] == ["CREATE"] and len(head) > 2 and head[2] == "INDEX" and head[1] in _INDEX_KINDS:
        # MySQL: CREATE FULLTEXT|SPATIAL INDEX name ON table (...)
        name = words[3] if len(words) > 3 else None
        on = [i for i, w in enumerate(words) if w.upper() == "ON"]
        table = words[on[0] + 1] if on and on[0] + 1 < len(words) else None
        return [Fact("create-index", table=table, name=name, index_kind=head[1])]
    return [Fact("unknown", sql=first_words(text, read))]


_INDEX_KINDS = frozenset({"FULLTEXT", "SPATIAL"})


def _set_fact(item: Any, exp: Any) -> Fact:
    assignment = item.this
    local = str(item.args.get("kind") or "").upper() == "LOCAL"
    if isinstance(assignment, exp.EQ):
        value = assignment.expression
        shown = value.name if isinstance(value, exp.Literal) else value.sql()
        detail = None if str(shown).upper() == "DEFAULT" else str(shown)
        return Fact("set", name=_name(assignment.this), detail=detail, local=local)
    return Fact("set", name=None, detail=item.sql(), local=local)


def _create_facts(statement: Any, exp: Any) -> list[Fact]:
    kind = str(statement.args.get("kind") or "").upper()
    if kind == "TABLE":
        table = statement.this.find(exp.Table) if statement.this is not None else None
        return [Fact("create-table", table=_name(table), schema=_schema(table))]
    if kind == "INDEX":
        index = statement.this
        table = index.args.get("table") if index is not None else None
        return [
            Fact(
                "create-index",
                table=_name(table),
                schema=_schema(table),
                name=_name(index),
                online=bool(statement.args.get("concurrently")),
            )
        ]
    return [Fact("other-ddl", sql=statement.sql())]


def _drop_facts(statement: Any, exp: Any) -> list[Fact]:
    kind = str(statement.args.get("kind") or "").upper()
    tables = statement.args.get("tables") or [statement.this]
    if kind == "TABLE":
        return [Fact("drop-table", table=_name(t), schema=_schema(t)) for t in tables]
    if kind in {"SCHEMA", "DATABASE"}:
        return [Fact("drop-schema", table=_schema(t) or _name(t), detail=kind) for t in tables]
    if kind == "INDEX":
        online = bool(statement.args.get("concurrently"))
        return [Fact("drop-index", name=_name(t), online=online) for t in tables]
    return [Fact("other-ddl", sql=statement.sql())]


def _alter_facts(statement: Any, exp: Any) -> list[Fact]:
    if str(statement.args.get("kind") or "TABLE").upper() != "TABLE":
        return [Fact("other-ddl")]  # ALTER INDEX, ALTER SEQUENCE, ...: no table rewritten
    table, schema = _name(statement.this), _schema(statement.this)
    found: list[Fact] = []
    for action in statement.args.get("actions") or []:
        found.extend(_action_facts(table, action, statement, exp))
    return [replace(fact, schema=fact.schema or schema) for fact in found]


def _action_facts(table: str | None, action: Any, statement: Any, exp: Any) -> list[Fact]:
    if isinstance(action, exp.ColumnDef):
        return column_facts(table, action, exp)
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind") or "").upper()
        if kind in {"COLUMN", ""}:
            return [
                Fact("drop-column", table=table, name=_name(c))
                for c in action.args.get("tables") or []
            ]
        return [Fact("other-ddl", table=table)]
    if isinstance(action, exp.RenameColumn):
        return [
            Fact(
                "rename-column",
                table=table,
                name=_name(action.this),
                detail=_name(action.args.get("to")),
            )
        ]
    if isinstance(action, exp.AlterRename):
        to = [o for o in statement.args.get("options") or [] if isinstance(o, exp.ToTableProperty)]
        if to:  # PostgreSQL's RENAME a TO b (COLUMN left out) renames a column
            return [
                Fact(
                    "rename-column", table=table, name=_name(action.this), detail=_name(to[0].this)
                )
            ]
        return [Fact("rename-table", table=table, detail=_name(action.this))]
    if isinstance(action, exp.AlterColumn):
        return _alter_column_facts(table, action)
    if isinstance(action, exp.ModifyColumn):
        # MySQL's MODIFY/CHANGE restates the whole column: its type may have changed.
        column = action.this
        found: list[Fact] = []
        renamed = action.args.get("rename_from")
        if renamed is not None and _name(renamed) != _name(column):
            found.append(
                Fact("rename-column", table=table, name=_name(renamed), detail=_name(column))
            )
        kind = column.args.get("kind")
        detail = kind.sql("mysql") if kind is not None else None
        found.append(Fact("change-type", table=table, name=_name(column), detail=detail))
        return found
    if isinstance(action, exp.AddConstraint):
        return _constraint_facts(table, action, statement, exp)
    return [Fact("unknown", table=table, sql=f"ALTER TABLE {table} {action.key.upper()}")]


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
        if isinstance(constraint, exp.IndexColumnConstraint):
            kind = str(constraint.args.get("kind") or "").upper()
            found.append(
                Fact(
                    "create-index",
                    table=table,
                    name=_name(constraint.this),
                    index_kind=kind if kind in _INDEX_KINDS else None,
                )
            )
        elif constraint.find(exp.ForeignKey) is not None:
            online = bool(statement.args.get("not_valid"))
            found.append(
                Fact("add-foreign-key", table=table, name=_name(constraint), online=online)
            )
        elif constraint.find(exp.UniqueColumnConstraint) is not None:
            found.append(Fact("add-unique", table=table, name=_name(constraint)))
        elif constraint.find(exp.PrimaryKey, exp.PrimaryKeyColumnConstraint) is not None:
            found.append(
                Fact("add-unique", table=table, name=_name(constraint), index_kind="PRIMARY KEY")
            )
        else:
            found.append(Fact("other-ddl", table=table))
    return found


def column_facts(table: str | None, column: Any, exp: Any) -> list[Fact]:
    """The facts of a column added with a parsed definition: the column, and the index,
    unique or foreign key its constraints add with it."""
    not_null = False
    default = None
    volatile = None
    extra: list[Fact] = []
    name = _name(column)
    for constraint in column.args.get("constraints") or []:
        kind = constraint.args.get("kind")
        if isinstance(kind, exp.NotNullColumnConstraint) and not kind.args.get("allow_null"):
            not_null = True
        elif isinstance(kind, exp.DefaultColumnConstraint):
            default = kind.this
        elif isinstance(kind, exp.GeneratedAsIdentityColumnConstraint):
            volatile = "an identity column"
        elif isinstance(kind, exp.ComputedColumnConstraint):
            volatile = "a generated column"
        elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
            not_null = True
            extra.append(Fact("add-unique", table=table, index_kind="PRIMARY KEY"))
        elif isinstance(kind, exp.UniqueColumnConstraint):
            extra.append(Fact("add-unique", table=table))
        elif isinstance(kind, exp.Reference):
            extra.append(Fact("add-foreign-key", table=table))
    dtype = column.args.get("kind")
    type_name = str(dtype.this.name) if dtype is not None else ""
    if type_name in _SERIAL_TYPES:
        volatile = f"the {type_name.lower()} type"
    elif volatile is None and default is not None:
        volatile = _volatile(default, exp)
    added = Fact(
        "add-column",
        table=table,
        name=name,
        not_null=not_null,
        has_default=default is not None or volatile is not None,
        volatile=volatile,
    )
    return [added, *extra]


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

    try:
        parsed = sqlglot.parse_one(expression, read=_READ.get(dialect, dialect))
    except Exception as exc:
        raise ValueError(expression) from exc
    if parsed is None or isinstance(parsed, exp.Command):
        raise ValueError(expression)
    return _volatile(parsed, exp)
