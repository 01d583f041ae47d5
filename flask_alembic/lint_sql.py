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
    "first_keyword",
    "quiet_parser",
    "volatile_default",
]


@dataclass(frozen=True)
class Fact:
    """One thing a migration does, as the rules need to know it.

    ``kind`` is one of: ``create-table``, ``drop-table``, ``rename-table``,
    ``add-column``, ``drop-column``, ``rename-column``, ``change-type``, ``set-not-null``,
    ``create-index``, ``drop-index``, ``add-foreign-key``, ``add-unique`` (a unique
    constraint or a primary key), ``add-check``, ``drop-schema``, ``other-ddl``,
    ``create-object`` (a new view, function...: no table locked), ``data`` (a row
    change), ``set`` (a setting), ``unknown`` (not understood).
    """

    kind: str
    table: str | None = None
    #: A column's, index's or setting's name.
    name: str | None = None
    #: A new name, a new type, a setting's value, or the verb of a row change.
    detail: str | None = None
    #: ``CONCURRENTLY`` given (indexes); ``NOT VALID`` given (foreign keys, checks).
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
    #: ``set``: for the current transaction only (``SET LOCAL``).
    local: bool = False
    #: The table's schema, when named.
    schema: str | None = None

    @property
    def where(self) -> str | None:
        """The table, with its schema when named."""
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
    }
)

#: What ``CREATE`` makes without locking an existing table (``CREATE TRIGGER`` does).
_NEW_OBJECTS = frozenset(
    {"VIEW", "FUNCTION", "PROCEDURE", "SEQUENCE", "SCHEMA", "TYPE", "DATABASE", "EXTENSION"}
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
    try:
        parsed = sqlglot.parse(text, read=_READ.get(dialect, dialect))
    except Exception:  # a parse error, or SQL nested deeper than the parser goes
        return [Fact("unknown", sql=text)]
    statements = [s for s in parsed if s is not None]  # None: only a comment
    found: list[Fact] = []
    for statement in statements:
        if isinstance(statement, exp.Command):
            rest = statement.args.get("expression")
            rest = getattr(rest, "name", rest) or ""
            raw = f"{statement.this} {rest}"
            read = _command_facts(raw, dialect)
        else:
            try:
                read = _statement_facts(statement, exp)
            except RecursionError:
                read = None
        if read is None:
            # Shown as written when it is the only statement: the parser's rendering of
            # what it did not understand may not be what the revision says.
            shown = text if len(statements) == 1 else statement.sql()
            found.append(Fact("unknown", sql=shown))
        else:
            found.extend(read)
    return found


def _name(node: Any) -> str | None:
    return str(node.name) if node is not None and getattr(node, "name", None) else None


def _schema(node: Any) -> str | None:
    return str(node.db) if node is not None and getattr(node, "db", None) else None


def first_keyword(sql: str, dialect: str) -> str:
    """The first word of a statement, upper case, as the parser's tokenizer reads it
    (comments skipped); empty when there is none."""
    import sqlglot

    try:
        tokens = sqlglot.tokenize(sql, read=_READ.get(dialect, dialect))
    except Exception:
        return ""
    return str(tokens[0].text).upper() if tokens else ""


def _statement_facts(statement: Any, exp: Any) -> list[Fact] | None:
    """The facts of a parsed statement; ``None`` when it is none the rules know."""
    if isinstance(statement, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        target = statement.this
        table = target.find(exp.Table) if target is not None else None
        verb = statement.key.upper()
        return [Fact("data", table=_name(table), schema=_schema(table), detail=verb)]
    if isinstance(statement, exp.TruncateTable):
        return [
            Fact("data", table=_name(t), schema=_schema(t), detail="TRUNCATE")
            for t in statement.expressions
            if isinstance(t, exp.Table)
        ]
    if isinstance(statement, exp.Set):
        return [_set_fact(item, exp) for item in statement.expressions]
    if isinstance(statement, exp.Select):
        return _select_facts(statement, exp)
    if isinstance(statement, (exp.Transaction, exp.Commit, exp.Rollback)):
        return []
    if isinstance(statement, exp.Create):
        return _create_facts(statement, exp)
    if isinstance(statement, exp.Drop):
        return _drop_facts(statement, exp)
    if isinstance(statement, exp.Alter):
        return _alter_facts(statement, exp)
    if isinstance(statement, exp.Comment):
        # COMMENT ON takes a lock on the table (briefly).
        table = statement.this.find(exp.Table) if statement.this is not None else None
        return [Fact("other-ddl", table=_name(table))]
    return None


def _select_facts(statement: Any, exp: Any) -> list[Fact]:
    """A SELECT reads; ``SELECT set_config('lock_timeout', '5s', true)`` is a setting.
    A data-changing CTE (``WITH d AS (DELETE ...) SELECT``) changes rows, and a function
    the parser does not know may do anything: it is not analysed."""
    found: list[Fact] = []
    for change in statement.find_all(exp.Insert, exp.Update, exp.Delete, exp.Merge):
        table = change.this.find(exp.Table) if change.this is not None else None
        found.append(
            Fact("data", table=_name(table), schema=_schema(table), detail=change.key.upper())
        )
    for call in statement.find_all(exp.Anonymous):
        args = call.expressions
        literal = len(args) >= 2 and all(isinstance(a, exp.Literal) for a in args[:2])
        if str(call.name).lower() == "set_config" and literal:
            local = len(args) > 2 and isinstance(args[2], exp.Boolean) and bool(args[2].this)
            found.append(Fact("set", name=str(args[0].name), detail=str(args[1].name), local=local))
        elif str(call.name).lower() not in _HARMLESS_FUNCTIONS:
            found.append(Fact("unknown", sql=statement.sql()))
    return found


#: Functions a migration's SELECT may call without changing anything.
_HARMLESS_FUNCTIONS = frozenset({"pg_sleep", "pg_advisory_lock", "pg_advisory_unlock", "version"})


def _command_facts(sql: str, dialect: str) -> list[Fact] | None:
    """Read the few statements the parser leaves as a bare command, by their keywords.

    - MySQL's ``RENAME TABLE a TO b[, c TO d]``;
    - MySQL's ``CREATE FULLTEXT|SPATIAL INDEX name ON table ...``;
    - PostgreSQL's ``ALTER TABLE t ADD CONSTRAINT c UNIQUE|PRIMARY KEY USING INDEX i`` and
      ``ALTER TABLE t VALIDATE CONSTRAINT c`` (the safe recipes: a short lock each).
    """
    import sqlglot
    from sqlglot.errors import SqlglotError

    read = _READ.get(dialect, dialect)
    try:
        words = [str(t.text) for t in sqlglot.tokenize(sql, read=read)]
        if len(words) == 2 and len(words[1].split()) > 1:
            # A keyword the tokenizer takes as a command keeps the rest as one string.
            words = words[:1] + [str(t.text) for t in sqlglot.tokenize(words[1], read=read)]
    except SqlglotError:
        return None
    upper = [w.upper() for w in words]

    def at(i: int, *expected: str) -> bool:
        return upper[i : i + len(expected)] == list(expected)

    if at(0, "RESET") and len(words) > 1:
        return [Fact("set", name=words[1], detail="default")]
    if at(0, "RENAME", "TABLE"):
        found: list[Fact] = []
        rest = words[2:]
        while len(rest) >= 3 and rest[1].upper() == "TO":
            found.append(Fact("rename-table", table=_unquote(rest[0]), detail=_unquote(rest[2])))
            rest = rest[4:] if len(rest) > 3 and rest[3] == "," else []
        return found or None
    if at(0, "CREATE") and len(upper) > 5:
        start = 2 if upper[1] == "UNIQUE" else 1
        if upper[start] in {"FULLTEXT", "SPATIAL"} and upper[start + 1] == "INDEX":
            name, on = start + 2, start + 3
            if on + 1 < len(upper) and upper[on] == "ON":
                return [
                    Fact(
                        "create-index",
                        table=_unquote(words[on + 1]),
                        name=_unquote(words[name]),
                        index_kind=upper[start],
                    )
                ]
    if at(0, "ALTER", "TABLE") and len(upper) > 5:
        table_at = 3 if at(2, "ONLY") else 2
        table = _unquote(words[table_at])
        tail = upper[table_at + 1 :]
        if tail[:1] == ["VALIDATE"] or (
            tail[:1] == ["ADD"]
            and "USING" in tail
            and tail[tail.index("USING") + 1 :][:1] == ["INDEX"]
        ):
            return [Fact("other-ddl", table=table)]
    return None


def _unquote(word: str) -> str:
    return word.strip('`"')


def _set_fact(item: Any, exp: Any) -> Fact:
    assignment = item.this
    local = str(item.args.get("kind") or "").upper() == "LOCAL"
    if isinstance(assignment, exp.EQ):
        value = assignment.expression
        shown = value.name if isinstance(value, exp.Literal) else value.sql()
        return Fact("set", name=_name(assignment.this), detail=str(shown), local=local)
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
    if kind in _NEW_OBJECTS:
        # A new view, function, sequence...: no lock on a table that has rows.
        return [Fact("create-object", name=_name(statement.this))]
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
        return [Fact("other-ddl")]  # ALTER INDEX, ALTER SEQUENCE...: no table rewritten
    table, schema = _name(statement.this), _schema(statement.this)
    found = _table_actions(table, statement, exp)
    return [replace(fact, schema=fact.schema or schema) for fact in found]


def _table_actions(table: str | None, statement: Any, exp: Any) -> list[Fact]:
    found: list[Fact] = []
    for action in statement.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            found.extend(column_facts(table, action, exp))
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
            options = statement.args.get("options") or []
            to = [o for o in options if isinstance(o, exp.ToTableProperty)]
            if to:  # PostgreSQL's RENAME a TO b (COLUMN left out) renames a column
                new = _name(to[0].this)
                found.append(
                    Fact("rename-column", table=table, name=_name(action.this), detail=new)
                )
            else:
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
        elif isinstance(action, exp.AlterSet):
            found.append(Fact("other-ddl", table=table))
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
        if isinstance(constraint, exp.IndexColumnConstraint):
            kind = str(constraint.args.get("kind") or "").upper()
            found.append(
                Fact(
                    "create-index",
                    table=table,
                    name=_name(constraint.this),
                    index_kind=kind if kind in {"FULLTEXT", "SPATIAL"} else None,
                    # MySQL's ALTER TABLE ... ADD INDEX: built online unless FULLTEXT/SPATIAL.
                    online=kind not in {"FULLTEXT", "SPATIAL"},
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
            named = _name(constraint) if isinstance(constraint, exp.Constraint) else None
            found.append(Fact("add-unique", table=table, name=named, detail="primary key"))
        elif constraint.find(exp.CheckColumnConstraint) is not None:
            online = bool(statement.args.get("not_valid"))
            found.append(Fact("add-check", table=table, name=_name(constraint), online=online))
        else:
            found.append(Fact("other-ddl", table=table))
    return found


def column_facts(table: str | None, column: Any, exp: Any) -> list[Fact]:
    """The facts of a column added with a parsed definition: the column, and the unique
    constraint, primary key or foreign key its constraints add with it."""
    not_null = False
    default = None
    volatile = None
    extra: list[Fact] = []
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
            extra.append(Fact("add-unique", table=table, detail="primary key"))
        elif isinstance(kind, exp.UniqueColumnConstraint):
            extra.append(Fact("add-unique", table=table))
        elif isinstance(kind, exp.Reference):
            # A new column's REFERENCES: checked against every row like any foreign key.
            extra.append(Fact("add-foreign-key", table=table, name=_name(constraint.this)))
    dtype = column.args.get("kind")
    type_name = str(dtype.this.name) if dtype is not None else ""
    if type_name in _SERIAL_TYPES:
        volatile = f"the {type_name.lower()} type"
    elif volatile is None and default is not None:
        volatile = _volatile(default, exp)
    added = Fact(
        "add-column",
        table=table,
        name=_name(column),
        not_null=not_null,
        has_default=default is not None or volatile is not None,
        volatile=volatile,
    )
    return [added, *extra]


def _volatile(default: Any, exp: Any) -> str | None:
    """The function call that makes ``default`` computed per row, if any."""
    for function in default.find_all(exp.Func):
        if isinstance(function, exp.Uuid):
            return "gen_random_uuid()"
        if isinstance(function, exp.Rand):
            return "random()"
        if (
            isinstance(function, exp.Anonymous)
            and str(function.name).lower() not in _STABLE_FUNCTIONS
        ):
            return str(function.sql("postgres", normalize_functions="lower"))
    return None


def volatile_default(expression: str, dialect: str) -> str | None:
    """The function call that makes a server default (SQL, as the dialect renders it)
    computed per row, or ``None``; ``ValueError`` when the parser cannot read it."""
    import sqlglot
    from sqlglot import exp

    try:
        parsed = sqlglot.parse_one(expression, read=_READ.get(dialect, dialect))
    except Exception as exc:  # a parse error, or nested deeper than the parser goes
        raise ValueError(expression) from exc
    if parsed is None or isinstance(parsed, exp.Command):
        raise ValueError(expression)
    return _volatile(parsed, exp)
