"""``flask db lint``: unsafe migrations found before they run, in each bind's own dialect.

Each revision's ``upgrade()`` runs in Alembic's offline mode for its bind's dialect, as
``upgrade --sql`` runs it; nothing connects. Every Alembic operation it invokes is
recorded with the SQL it emits (``lint_run``). Operations are read as what they are (an
``AlterColumnOp`` that changes a type, a ``CreateIndexOp`` without
``postgresql_concurrently``); the SQL of ``op.execute()``, and a new column's server
default, are read with a SQL parser (``lint_sql``). Both become ``Fact`` values, which the
rules of ``lint_rules`` judge.

What cannot be seen: code that reads the database (``op.get_bind().execute()``) cannot
run offline, and code that branches on the database's data or on the environment is seen
along the branch offline mode takes. A revision that raises is reported, with the
findings of what it did before.

A revision accepts a finding with a module-level ``lint_allow = {"rule-id": "reason"}``.
"""

from __future__ import annotations

import difflib
import dis
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import lint_sql
from .lint_rules import family
from .lint_rules import RULES
from .lint_rules import Severity
from .lint_run import placeholders
from .lint_run import ReadsDatabase
from .lint_run import run_offline
from .lint_run import Seen
from .lint_sql import Fact

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation
    from alembic.script import Script

    from .environment import BindRuntime

__all__ = ["Finding", "LintReport", "lint_revisions"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One rule firing on one revision."""

    bind: str
    revision: str
    path: str | None
    rule: str
    severity: Severity
    #: What the revision does, in this bind's terms: ``drops column 'email' of 'user'``.
    message: str
    #: The safe way to do it, for this bind's dialect.
    fix: str
    #: Whether the revision's ``lint_allow`` accepts it.
    accepted: bool = False
    #: The reason ``lint_allow`` gives.
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The finding as ``lint --json`` gives it."""
        return {
            "bind": self.bind,
            "revision": self.revision,
            "path": self.path,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "accepted": self.accepted,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class LintReport:
    """The findings of some revisions, in the order the revisions would run."""

    findings: tuple[Finding, ...]
    #: ``(bind, revision)`` of every revision linted, findings or not.
    linted: tuple[tuple[str, str], ...]

    def open(self, severities: Iterable[Severity] = ("error", "warning")) -> list[Finding]:
        """The findings of ``severities`` that no ``lint_allow`` accepts."""
        wanted = set(severities)
        return [f for f in self.findings if not f.accepted and f.severity in wanted]

    def of(self, bind: str, revision: str) -> list[Finding]:
        """The findings of one revision."""
        return [f for f in self.findings if f.bind == bind and f.revision == revision]


def lint_revisions(
    runtimes: Mapping[str, BindRuntime],
    wanted: Mapping[str, Sequence[str]],
    *,
    lock_timeout: Mapping[str, Any] | None = None,
    tag: str | None = None,
    x_arguments: Sequence[str] | None = None,
) -> LintReport:
    """Lint the revisions ``wanted`` of each bind (ids, in the order they would run).

    :param lock_timeout: for each bind, a function of a revision module telling whether
        a lock timeout is in force while that revision runs (the bind's and the revision's
        ``timeouts``).
    :param tag: what ``context.get_tag_argument()`` gives the revisions, and
    :param x_arguments: what ``context.get_x_argument()`` gives them: those of the run
        linted, so that code branching on them is seen along the branch it will take.
    """
    findings: list[Finding] = []
    linted: list[tuple[str, str]] = []
    with lint_sql.quiet_parser():
        for name, ids in wanted.items():
            if not ids:
                continue
            runtime = runtimes[name]
            scripts = [runtime.script.get_revision(i) for i in ids]
            guarded = (lock_timeout or {}).get(name)
            ran = run_offline(
                runtime, [s for s in scripts if s is not None], tag=tag, x_arguments=x_arguments
            )
            for script, found in ran:
                linted.append((name, script.revision))
                try:
                    findings.extend(_judge(runtime, script, found, guarded))
                except Exception as exc:  # what it did cannot be put in this dialect's SQL
                    findings.append(_unjudged(runtime, script, exc))
    return LintReport(tuple(findings), tuple(linted))


# -- from operations to facts ------------------------------------------------------------


def _facts(
    operation: MigrateOperation | None, statements: Sequence[str], dialect: sa.Dialect
) -> list[Fact]:
    from alembic.operations import ops

    if operation is None:  # SQL emitted outside any operation
        return lint_sql.facts("".join(statements), dialect.name)
    if isinstance(operation, ops.ExecuteSQLOp):
        text = "".join(statements) or str(operation.sqltext)
        found = lint_sql.facts(text, dialect.name)
        if isinstance(operation.sqltext, str):
            return found
        # A construct's values were rendered to be read; its message shows placeholders
        # (a bound value may be a secret).
        shown = placeholders(operation.sqltext, dialect)
        return [replace(f, sql=shown) if f.kind == "unknown" else f for f in found]
    if isinstance(operation, ops.CreateTableOp):
        return [_on(operation, "create-table")]
    if isinstance(operation, ops.DropTableOp):
        return [_on(operation, "drop-table")]
    if isinstance(operation, ops.RenameTableOp):
        return [_on(operation, "rename-table", detail=operation.new_table_name)]
    if isinstance(operation, ops.AddColumnOp):
        column = operation.column
        # Alembic adds a new column's foreign keys with it: checked against every row.
        found = [_add_column(operation, dialect)]
        found.extend(
            _on(operation, "add-foreign-key", name=_text(key.constraint.name))
            for key in column.foreign_keys
            if key.constraint is not None
        )
        # What the column brings with it, which Alembic emits after the ADD COLUMN.
        if column.index:
            found.append(_on(operation, "create-index"))
        if column.unique:
            found.append(_on(operation, "add-unique"))
        return found
    if isinstance(operation, ops.DropColumnOp):
        return [_on(operation, "drop-column", name=operation.column_name)]
    if isinstance(operation, ops.AlterColumnOp):
        return [replace(f, schema=operation.schema) for f in _alter_column(operation, dialect)]
    if isinstance(operation, ops.CreateIndexOp):
        prefix = str(operation.kw.get("mysql_prefix") or operation.kw.get("mariadb_prefix") or "")
        kind = prefix.upper() if prefix.upper() in {"FULLTEXT", "SPATIAL"} else None
        return [
            _on(
                operation,
                "create-index",
                name=_text(operation.index_name),
                online=bool(operation.kw.get("postgresql_concurrently")),
                index_kind=kind,
            )
        ]
    if isinstance(operation, ops.DropIndexOp):
        online = bool(operation.kw.get("postgresql_concurrently"))
        return [_on(operation, "drop-index", name=_text(operation.index_name), online=online)]
    if isinstance(operation, ops.CreateForeignKeyOp):
        return [
            Fact(
                "add-foreign-key",
                table=operation.source_table,
                schema=operation.kw.get("source_schema"),
                name=_text(operation.constraint_name),
                online=bool(operation.kw.get("postgresql_not_valid")),
            )
        ]
    if isinstance(operation, ops.CreateUniqueConstraintOp):
        return [_on(operation, "add-unique", name=_text(operation.constraint_name))]
    if isinstance(operation, ops.CreatePrimaryKeyOp):
        name = _text(operation.constraint_name)
        return [_on(operation, "add-unique", name=name, detail="primary key")]
    if isinstance(operation, ops.CreateCheckConstraintOp):
        online = bool(operation.kw.get("postgresql_not_valid"))
        return [_on(operation, "add-check", name=_text(operation.constraint_name), online=online)]
    if isinstance(operation, ops.BulkInsertOp):
        target = operation.table
        name, schema = getattr(target, "name", None), getattr(target, "schema", None)
        return [Fact("data", table=name, schema=schema, detail="INSERT")]
    return [_on(operation, "other-ddl")]


def _on(operation: Any, kind: str, **fields: Any) -> Fact:
    """A fact about the table ``operation`` names (its ``table_name`` and ``schema``)."""
    table = getattr(operation, "table_name", None)
    return Fact(kind, table=table, schema=getattr(operation, "schema", None), **fields)


def _text(name: object) -> str | None:
    """A constraint's name; ``None`` when it has none (SQLAlchemy's "no name" marker)."""
    return name if isinstance(name, str) and name else None


def _add_column(operation: Any, dialect: sa.Dialect) -> Fact:
    column: sa.Column[Any] = operation.column
    default = column.server_default
    volatile = None
    unreadable = None
    if column.identity is not None:
        volatile = "an identity column"
    elif isinstance(default, sa.Computed):
        volatile = "a generated column"
    elif isinstance(default, sa.DefaultClause):
        arg = default.arg
        text = arg if isinstance(arg, str) else str(arg.compile(dialect=dialect))
        if isinstance(arg, str):
            text = "'" + arg.replace("'", "''") + "'"  # Alembic quotes a plain string
        try:
            volatile = lint_sql.volatile_default(text, dialect.name)
        except ValueError:
            unreadable = text
    python_default = column.default is not None and default is None
    return Fact(
        "add-column",
        table=operation.table_name,
        schema=operation.schema,
        name=column.name,
        detail="its default= is applied by SQLAlchemy to new rows only" if python_default else None,
        not_null=column.nullable is False,
        has_default=_gives_value(default) or column.identity is not None,
        volatile=volatile,
        sql=unreadable,
    )


def _gives_value(default: Any) -> bool:
    """Whether a server default gives existing rows a value: ``text("NULL")`` gives none
    (a plain string is quoted, so ``"NULL"`` is the four letters)."""
    if default is None:
        return False
    arg = getattr(default, "arg", None)
    if isinstance(arg, str):
        return True
    text = getattr(arg, "text", None)
    return not (isinstance(text, str) and text.strip().upper() == "NULL")


def _alter_column(operation: Any, dialect: sa.Dialect) -> list[Fact]:
    table, name = operation.table_name, operation.column_name
    found: list[Fact] = []
    if operation.modify_name is not None and operation.modify_name != name:
        found.append(Fact("rename-column", table=table, name=name, detail=operation.modify_name))
    new_type = _instance(operation.modify_type)
    old_type = _instance(operation.existing_type)
    using = operation.kw.get("postgresql_using")
    if new_type is not None and (using or not _widens(old_type, new_type, dialect)):
        found.append(
            Fact("change-type", table=table, name=name, detail=new_type.compile(dialect=dialect))
        )
    if operation.modify_nullable is False and operation.existing_nullable is not False:
        found.append(Fact("set-not-null", table=table, name=name))
    return found or [Fact("other-ddl", table=table)]


def _instance(type_: Any) -> Any:
    """A column type as an instance (operations also take the class, ``sa.BigInteger``)."""
    return type_() if isinstance(type_, type) else type_


#: The types PostgreSQL and MariaDB/MySQL store as VARCHAR, and PostgreSQL's TEXT.
_VARCHARS = (sa.String, sa.VARCHAR, sa.Unicode, sa.NVARCHAR)
_TEXTS = (sa.Text, sa.TEXT, sa.UnicodeText)


def _same_text_settings(old: Any, new: Any) -> bool:
    """The same collation (and, on MariaDB/MySQL, character set)."""
    return all(getattr(old, a, None) == getattr(new, a, None) for a in ("collation", "charset"))


def _mysql_in_place(old: Any, new: Any) -> bool:
    """Whether MariaDB/MySQL lengthen a VARCHAR in place: the same character set and
    collation, and the same length prefix (one byte up to 255 bytes, two from 256), at
    one byte per character and at utf8mb4's four."""
    if type(old) not in _VARCHARS or type(new) not in _VARCHARS:
        return False
    if not _same_text_settings(old, new) or old.length is None or new.length is None:
        return False
    was, now = old.length, new.length
    return now >= was and all((was * n < 256) == (now * n < 256) for n in (1, 4))


def _widens(old: Any, new: Any, dialect: sa.Dialect) -> bool:
    """Whether the type change needs no copy of the table. On PostgreSQL: a longer
    VARCHAR, or VARCHAR to TEXT (the same collation, no enum); a NUMERIC of more
    precision and the same scale, or an unconstrained NUMERIC. On MariaDB/MySQL: a
    longer VARCHAR with the same length prefix."""
    if old is None:
        return False
    if str(old.compile(dialect=dialect)) == str(new.compile(dialect=dialect)):
        return True  # restated, not changed
    if family(dialect.name) == "mysql":
        return _mysql_in_place(old, new)
    if family(dialect.name) != "postgresql":
        return False
    if isinstance(old, sa.Numeric) and isinstance(new, sa.Numeric):
        if isinstance(old, sa.Float) or isinstance(new, sa.Float):
            return False
        if new.precision is None and new.scale is None:
            return True  # an unconstrained NUMERIC holds every numeric(p, s)
        return (
            old.precision is not None
            and new.precision is not None
            and new.precision >= old.precision
            and (new.scale or 0) == (old.scale or 0)
        )
    # Only VARCHAR: CHAR pads to its length, and CITEXT or an enum is another type.
    if type(old) not in _VARCHARS or not _same_text_settings(old, new):
        return False
    if type(new) in _TEXTS:
        return True
    if type(new) not in _VARCHARS:
        return False
    return new.length is None or (old.length is not None and new.length >= old.length)


# -- judging -------------------------------------------------------------------------------

#: Facts that change the schema of what exists.
_DDL = frozenset(
    {
        "drop-table",
        "drop-schema",
        "rename-table",
        "add-column",
        "drop-column",
        "rename-column",
        "change-type",
        "set-not-null",
        "create-index",
        "drop-index",
        "add-foreign-key",
        "add-unique",
        "add-check",
        "other-ddl",
    }
)


class _Judgement:
    """The rules applied to one revision's facts, in order."""

    def __init__(self, dialect: str, guarded: bool) -> None:
        self.dialect = dialect
        self.family = family(dialect)
        #: ``(schema, table)`` of the tables this revision creates: nobody uses them yet.
        self.created: set[tuple[str | None, str]] = set()
        self.found: list[tuple[str, str]] = []
        #: Whether a lock timeout is in force for the session: SET (not LOCAL) by the
        #: revision.
        self.guarded = False
        #: A lock timeout SET LOCAL in the current transaction (``None``: none set), which
        #: the COMMIT of an ``autocommit_block()`` ends. The bind's and the revision's
        #: ``timeouts`` are such a SET LOCAL, at the start of the step's transaction.
        self.local: bool | None = True if guarded else None
        #: Whether the bind's or the revision's ``timeouts`` set one: the executor sets
        #: them again in the transaction that follows an ``autocommit_block()``.
        self.configured = guarded
        self.unguarded: str | None = None
        self.schema_change: str | None = None
        self.data_change: str | None = None
        #: MySQL's foreign_key_checks (SET by the revision).
        self.foreign_key_checks = True
        #: Whether the operation judged runs outside a transaction.
        self.autocommit = False

    def fire(self, rule: str, message: str) -> None:
        if RULES[rule].applies_to(self.dialect):
            self.found.append((rule, message))

    def existing(self, fact: Fact) -> bool:
        return fact.table is None or (fact.schema, fact.table) not in self.created

    def fact(self, fact: Fact) -> None:
        kind, table = fact.kind, fact.where
        on = f" of table {table!r}" if table else ""
        if kind == "create-table" and fact.table:
            self.created.add((fact.schema, fact.table))
            return
        if kind == "set":
            self._setting(fact)
            return
        if kind == "unknown":
            self.fire("raw-sql", f"runs SQL that was not analysed: {_short(fact.sql or '')}")
            return
        if kind in {"create-index", "drop-index"} and fact.online and not self.autocommit:
            verb = "creates" if kind == "create-index" else "drops"
            what = f"index {fact.name!r}" if fact.name else "an index"
            self.fire(
                "concurrently-in-transaction",
                f"{verb} {what}{on} CONCURRENTLY inside the migration's transaction",
            )
        if kind == "data":
            if self.existing(fact) and self.data_change is None:
                self.data_change = f"{fact.detail or 'changes rows'} {table or ''}".strip()
            return
        if kind not in _DDL or not self.existing(fact):
            return
        self._ddl(fact, on)
        if self.schema_change is None:
            self.schema_change = _describe(fact)
        in_force = self.guarded if self.local is None else self.local
        # CREATE/DROP INDEX CONCURRENTLY waits without blocking reads and writes.
        concurrent = kind in {"create-index", "drop-index"} and fact.online
        if self.family == "postgresql" and not (in_force or concurrent) and not self.unguarded:
            self.unguarded = _describe(fact)

    def _ddl(self, fact: Fact, on: str) -> None:
        kind, table, name = fact.kind, fact.where, fact.name
        if kind == "drop-table":
            self.fire("drop-table", f"drops table {table!r}")
        elif kind == "drop-schema":
            what = (fact.detail or "schema").lower()
            self.fire("drop-table", f"drops {what} {fact.table!r} and every table in it")
        elif kind == "rename-table":
            self.fire("rename-table", f"renames table {table!r} to {fact.detail!r}")
        elif kind == "drop-column":
            self.fire("drop-column", f"drops column {name!r}{on}")
        elif kind == "rename-column":
            self.fire("rename-column", f"renames column {name!r}{on} to {fact.detail!r}")
        elif kind == "change-type":
            self.fire(
                "change-column-type", f"changes the type of column {name!r}{on} to {fact.detail}"
            )
        elif kind == "set-not-null":
            self.fire("set-not-null", f"makes column {name!r}{on} NOT NULL")
        elif kind == "add-column":
            if fact.not_null and not fact.has_default:
                note = f" ({fact.detail})" if fact.detail else ""
                self.fire(
                    "add-not-null-column",
                    f"adds NOT NULL column {name!r} without a server default to table "
                    f"{table!r}{note}",
                )
            if fact.volatile:
                self.fire(
                    "add-column-volatile-default",
                    f"adds column {name!r} to table {table!r} with a default computed per "
                    f"row ({fact.volatile})",
                )
            if fact.sql:
                self.fire("raw-sql", f"the default of column {name!r}{on} was not analysed")
        elif kind == "create-index":
            what = f"index {name!r}" if name else "an index"
            if self.family == "postgresql" and not fact.online:
                self.fire("create-index-blocking", f"creates {what}{on} without CONCURRENTLY")
            elif self.family == "mysql" and fact.index_kind:
                self.fire("create-index-blocking", f"creates {fact.index_kind} {what}{on}")
        elif kind == "drop-index":
            what = f"index {name!r}" if name else "an index"
            if self.family == "postgresql" and not fact.online:
                self.fire("drop-index-blocking", f"drops {what}{on} without CONCURRENTLY")
        elif kind == "add-foreign-key":
            what = f"foreign key {name!r}" if name else "a foreign key"
            if self.family == "postgresql" and not fact.online:
                self.fire("add-foreign-key-validating", f"adds {what}{on} without NOT VALID")
            elif self.family == "mysql" and self.foreign_key_checks:
                self.fire(
                    "add-foreign-key-validating",
                    f"adds {what}{on} with foreign_key_checks on (the table is copied)",
                )
        elif kind == "add-unique":
            noun = fact.detail or "unique constraint"
            what = f"{noun} {name!r}" if name else f"a {noun}"
            self.fire("add-unique-constraint", f"adds {what}{on}")
        elif kind == "add-check" and not fact.online:
            what = f"check constraint {name!r}" if name else "a check constraint"
            self.fire("add-check-constraint-validating", f"adds {what}{on} without NOT VALID")

    def _setting(self, fact: Fact) -> None:
        name = (fact.name or "").lower()
        value = (fact.detail or "").strip().strip("'\"").lower()
        if name == "lock_timeout":
            on = value not in {"0", "0s", "0ms", "default", ""}
            if not fact.local:
                self.guarded, self.local = on, None
            elif not self.autocommit:  # SET LOCAL outside a transaction does nothing
                self.local = on
        elif name == "foreign_key_checks":
            self.foreign_key_checks = value not in {"0", "off", "false"}

    def end(self, seen: Seen) -> None:
        if self.data_change and self.schema_change:
            self.fire(
                "data-change-in-schema-migration",
                f"changes rows ({self.data_change}) and the schema ({self.schema_change}) "
                "in one revision",
            )
        if self.unguarded:
            self.fire("no-lock-timeout", f"runs DDL ({self.unguarded}) without a lock timeout")
        module = seen.module
        # A revision whose upgrade() does nothing either (a merge point, a placeholder)
        # has nothing to undo.
        if (
            module is not None
            and _does_nothing(getattr(module, "downgrade", None))
            and not _does_nothing(getattr(module, "upgrade", None))
        ):
            self.fire("missing-downgrade", "has a downgrade() that does nothing")
        if isinstance(seen.error, ReadsDatabase):
            self.fire(
                "offline-failure",
                f"reads the database through op.get_bind() ({_short(seen.error.sql, 80)}), "
                "which offline mode cannot: what it does after that was not analysed",
            )
        elif isinstance(seen.error, sa.exc.NoInspectionAvailable):
            self.fire(
                "offline-failure",
                "inspects the database (sa.inspect(op.get_bind())), which offline mode cannot: "
                "what it does after that was not analysed",
            )
        elif seen.error is not None:
            self.fire(
                "offline-failure",
                f"raised {type(seen.error).__name__} in offline mode: "
                f"{_short(str(seen.error) or '(no message)')}",
            )


def _describe(fact: Fact) -> str:
    words = fact.kind.replace("-", " ")
    target = ".".join(x for x in (fact.where, fact.name) if x)
    return f"{words} {target}".strip() if target else words


def _short(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


_EMPTY_OPS = frozenset({"RESUME", "NOP", "CACHE", "RETURN_CONST", "RETURN_VALUE"})


def _does_nothing(function: Any) -> bool:
    """Whether ``function`` is missing, or its body only ``pass``, ``...`` or a docstring."""
    if function is None:
        return True
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    for instruction in dis.get_instructions(code):
        if instruction.opname == "LOAD_CONST" and instruction.argval is None:
            continue
        if instruction.opname == "RETURN_CONST" and instruction.argval is not None:
            return False
        if instruction.opname not in _EMPTY_OPS:
            return False
    return True


def _judged(seen: Seen, dialect: sa.Dialect, guarded: bool) -> _Judgement:
    judgement = _Judgement(dialect.name, guarded)
    for index, (operation, statements) in enumerate(seen.operations):
        autocommit = index in seen.autocommit
        if autocommit != judgement.autocommit:
            # A COMMIT or a BEGIN between them: a new transaction. After the block, the
            # configured timeouts are set again; inside it, nothing SET LOCAL holds.
            judgement.local = True if judgement.configured and not autocommit else None
        judgement.autocommit = autocommit
        for fact in _facts(operation, statements, dialect):
            judgement.fact(fact)
    judgement.end(seen)
    return judgement


#: A dialect of each family, to judge what a revision would do elsewhere.
_DIALECTS = {
    "postgresql": "sqlalchemy.dialects.postgresql",
    "mysql": "sqlalchemy.dialects.mysql",
    "sqlite": "sqlalchemy.dialects.sqlite",
}


def _fires_elsewhere(rule_id: str, seen: Seen, dialect: str) -> bool:
    """Whether the revision's operations make ``rule_id`` fire on another dialect family
    it applies to: a revision run on SQLite in development and PostgreSQL in production
    accepts, for production, what only fires there."""
    import importlib

    for name, module in _DIALECTS.items():
        if name == family(dialect) or not RULES[rule_id].applies_to(name):
            continue
        other = importlib.import_module(module).dialect()
        if any(rule == rule_id for rule, _ in _judged(seen, other, False).found):
            return True
    return False


def _unjudged(runtime: BindRuntime, script: Script, exc: Exception) -> Finding:
    """The finding of a revision whose operations could not be judged (a type this
    dialect cannot render, ``sa.String()`` without a length on MariaDB): it would fail
    when run too."""
    dialect = runtime.bind.engine.dialect.name
    return Finding(
        bind=runtime.bind.name,
        revision=script.revision,
        path=script.path,
        rule="offline-failure",
        severity=RULES["offline-failure"].severity,
        message=f"could not be judged for {dialect}: {type(exc).__name__}: "
        f"{_short(str(exc) or '(no message)')}",
        fix=RULES["offline-failure"].fix_for(dialect),
    )


def _judge(runtime: BindRuntime, script: Script, seen: Seen, guarded: Any) -> list[Finding]:
    dialect = runtime.bind.engine.dialect
    judgement = _judged(seen, dialect, bool(guarded(seen.module)) if guarded else False)
    bind = runtime.bind.name
    path = script.path
    findings = [
        Finding(
            bind=bind,
            revision=script.revision,
            path=path,
            rule=rule,
            severity=RULES[rule].severity,
            message=message,
            fix=RULES[rule].fix_for(dialect.name),
        )
        for rule, message in judgement.found
    ]
    return _apply_allowances(findings, seen, dialect.name, bind, script)


def _apply_allowances(
    findings: list[Finding], seen: Seen, dialect: str, bind: str, script: Script
) -> list[Finding]:
    """Mark what ``lint_allow`` accepts; report its entries that are wrong or unused."""
    raw = seen.allow
    if raw is None:
        return findings
    notes: list[tuple[str, str]] = []
    allowed: dict[str, str] = {}
    if not isinstance(raw, Mapping):
        notes.append(("invalid-allow", f"lint_allow is a {type(raw).__name__}, not a dict"))
    else:
        for rule_id, reason in raw.items():
            rule = RULES.get(rule_id) if isinstance(rule_id, str) else None
            if rule is None:
                near = difflib.get_close_matches(str(rule_id), list(RULES), n=1)
                meant = f" (did you mean {near[0]!r}?)" if near else ""
                notes.append(
                    ("invalid-allow", f"lint_allow names {rule_id!r}, which is no rule{meant}")
                )
            elif not rule.acceptable:
                notes.append(("invalid-allow", f"lint_allow cannot accept {rule_id!r}"))
            elif not isinstance(reason, str) or not reason.strip():
                notes.append(("invalid-allow", f"lint_allow gives no reason for {rule_id!r}"))
            else:
                allowed[rule_id] = reason.strip()
    fired = {f.rule for f in findings}
    for rule_id in allowed:
        # After an offline failure, what the rest of the revision does was not seen.
        seen_whole = seen.error is None
        if seen_whole and rule_id not in fired and not _fires_elsewhere(rule_id, seen, dialect):
            notes.append(
                (
                    "unused-allow",
                    f"lint_allow accepts {rule_id!r}, which fires on no dialect in this revision",
                )
            )
    marked = [
        replace(f, accepted=True, reason=allowed[f.rule]) if f.rule in allowed else f
        for f in findings
    ]
    marked.extend(
        Finding(
            bind=bind,
            revision=script.revision,
            path=script.path,
            rule=rule,
            severity=RULES[rule].severity,
            message=message,
            fix=RULES[rule].fix_for(dialect),
        )
        for rule, message in notes
    )
    return marked
