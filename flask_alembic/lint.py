"""``flask db lint``: unsafe migrations found before they run, in each bind's own dialect.

Each revision's ``upgrade()`` runs in Alembic's offline mode for its bind's dialect, as
``upgrade --sql`` runs it; nothing connects. Every Alembic operation it invokes is
recorded with the SQL it emits. Operations are read as what they are (an
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

import dis
import io
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from types import ModuleType
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import lint_sql
from .lint_rules import family
from .lint_rules import RULES
from .lint_rules import Severity
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
) -> LintReport:
    """Lint the revisions ``wanted`` of each bind (ids, in the order they would run).

    :param lock_timeout: for each bind, a function of a revision module telling whether
        a lock timeout is in force while that revision runs (the bind's and the revision's
        ``timeouts``).
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
            for script, found in _run_offline(runtime, [s for s in scripts if s is not None]):
                linted.append((name, script.revision))
                findings.extend(_judge(runtime, script, found, guarded))
    return LintReport(tuple(findings), tuple(linted))


# -- running revisions offline, recording what they do ---------------------------------


class _Statements(io.StringIO):
    """Alembic's offline output buffer, keeping each statement Alembic writes apart."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []

    def write(self, text: str) -> int:
        self.statements.append(text)
        return len(text)


@dataclass
class _Seen:
    """What one revision's ``upgrade()`` did offline."""

    operations: list[tuple[MigrateOperation, list[str]]]
    error: BaseException | None = None
    module: ModuleType | None = None


class _Recorder:
    """Called for every operation invoked: remembers it and the SQL it emitted."""

    def __init__(self, buffer: _Statements) -> None:
        self.buffer = buffer
        self.seen = _Seen([])
        self._depth = 0

    def __call__(self, invoke: Any, operation: MigrateOperation) -> Any:
        if self._depth:  # an operation carried out with others: the outer one counts
            return invoke(operation)
        start = len(self.buffer.statements)
        self._depth += 1
        try:
            return invoke(operation)
        finally:
            self._depth -= 1
            self.seen.operations.append((operation, self.buffer.statements[start:]))


def _run_offline(runtime: BindRuntime, scripts: Sequence[Script]) -> Iterable[tuple[Script, _Seen]]:
    """Run each script's ``upgrade()`` in offline mode on the bind's dialect."""
    from alembic.runtime.environment import EnvironmentContext

    from . import _alembic_compat as compat
    from .environment import context_options

    buffer = _Statements()
    recorder = _Recorder(buffer)
    env = EnvironmentContext(runtime.config, runtime.script, as_sql=True)
    with env:
        env.configure(
            **context_options(
                runtime.bind,
                # The URL only chooses the dialect: nothing connects.
                url=sa.URL.create(runtime.bind.engine.url.drivername),
                output_buffer=buffer,
                literal_binds=True,
                connection=None,
            )
        )
        with compat.recording_operations(env.get_context(), recorder):
            for script in scripts:
                recorder.seen = seen = _Seen([])
                try:
                    seen.module = script.module
                    seen.module.upgrade()
                except Exception as exc:
                    seen.error = exc
                yield script, seen


# -- from operations to facts ------------------------------------------------------------


def _facts(
    operation: MigrateOperation, statements: Sequence[str], dialect: sa.Dialect
) -> list[Fact]:
    from alembic.operations import ops

    if isinstance(operation, ops.ExecuteSQLOp):
        text = "".join(statements) or str(operation.sqltext)
        if not lint_sql.available():
            return [Fact("unknown", sql=text.strip())]
        return lint_sql.facts(text, dialect.name)
    if isinstance(operation, ops.CreateTableOp):
        return [Fact("create-table", table=operation.table_name)]
    if isinstance(operation, ops.DropTableOp):
        return [Fact("drop-table", table=operation.table_name)]
    if isinstance(operation, ops.RenameTableOp):
        return [Fact("rename-table", table=operation.table_name, detail=operation.new_table_name)]
    if isinstance(operation, ops.AddColumnOp):
        return [_add_column(operation, dialect)]
    if isinstance(operation, ops.DropColumnOp):
        return [Fact("drop-column", table=operation.table_name, name=operation.column_name)]
    if isinstance(operation, ops.AlterColumnOp):
        return _alter_column(operation, dialect)
    if isinstance(operation, ops.CreateIndexOp):
        prefix = str(operation.kw.get("mysql_prefix") or operation.kw.get("mariadb_prefix") or "")
        return [
            Fact(
                "create-index",
                table=operation.table_name,
                name=operation.index_name,
                online=bool(operation.kw.get("postgresql_concurrently")),
                index_kind=prefix.upper() if prefix.upper() in {"FULLTEXT", "SPATIAL"} else None,
            )
        ]
    if isinstance(operation, ops.DropIndexOp):
        return [
            Fact(
                "drop-index",
                table=operation.table_name,
                name=operation.index_name,
                online=bool(operation.kw.get("postgresql_concurrently")),
            )
        ]
    if isinstance(operation, ops.CreateForeignKeyOp):
        return [
            Fact(
                "add-foreign-key",
                table=operation.source_table,
                name=_text(operation.constraint_name),
                online=bool(operation.kw.get("postgresql_not_valid")),
            )
        ]
    if isinstance(operation, ops.CreateUniqueConstraintOp):
        return [
            Fact("add-unique", table=operation.table_name, name=_text(operation.constraint_name))
        ]
    if isinstance(operation, ops.BulkInsertOp):
        table = getattr(operation.table, "name", None)
        return [Fact("data", table=table, detail="INSERT")]
    return [Fact("other-ddl", table=getattr(operation, "table_name", None))]


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
            if not lint_sql.available():
                raise ValueError(text)
            volatile = lint_sql.volatile_default(text, dialect.name)
        except ValueError:
            unreadable = text
    return Fact(
        "add-column",
        table=operation.table_name,
        name=column.name,
        not_null=column.nullable is False,
        has_default=default is not None or column.identity is not None,
        volatile=volatile,
        sql=unreadable,
    )


def _alter_column(operation: Any, dialect: sa.Dialect) -> list[Fact]:
    table, name = operation.table_name, operation.column_name
    found: list[Fact] = []
    if operation.modify_name is not None and operation.modify_name != name:
        found.append(Fact("rename-column", table=table, name=name, detail=operation.modify_name))
    new_type = _instance(operation.modify_type)
    if new_type is not None and not _widens(_instance(operation.existing_type), new_type, dialect):
        found.append(
            Fact("change-type", table=table, name=name, detail=new_type.compile(dialect=dialect))
        )
    if operation.modify_nullable is False:
        found.append(Fact("set-not-null", table=table, name=name))
    return found or [Fact("other-ddl", table=table)]


def _instance(type_: Any) -> Any:
    """A column type as an instance (operations also take the class, ``sa.BigInteger``)."""
    return type_() if isinstance(type_, type) else type_


def _widens(old: Any, new: Any, dialect: sa.Dialect) -> bool:
    """Whether PostgreSQL makes the change without rewriting the table: a longer
    VARCHAR, or VARCHAR to TEXT (the same collation, no enum)."""
    if family(dialect.name) != "postgresql" or old is None:
        return False
    if not (isinstance(old, sa.String) and isinstance(new, sa.String)):
        return False
    if isinstance(old, sa.Enum) or isinstance(new, sa.Enum):
        return False
    if getattr(old, "collation", None) != getattr(new, "collation", None):
        return False
    if new.length is None:
        return True
    return old.length is not None and new.length >= old.length


# -- judging -------------------------------------------------------------------------------

#: Facts that change the schema of what exists.
_DDL = frozenset(
    {
        "drop-table",
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
        "other-ddl",
    }
)


class _Judgement:
    """The rules applied to one revision's facts, in order."""

    def __init__(self, dialect: str, guarded: bool) -> None:
        self.dialect = dialect
        self.family = family(dialect)
        self.created: set[str] = set()
        self.found: list[tuple[str, str]] = []
        #: Whether a lock timeout is in force (configured, or SET by the revision).
        self.guarded = guarded
        self.unguarded: str | None = None
        self.schema_change: str | None = None
        self.data_change: str | None = None

    def fire(self, rule: str, message: str) -> None:
        if RULES[rule].applies_to(self.dialect):
            self.found.append((rule, message))

    def existing(self, table: str | None) -> bool:
        return table is None or table.lower() not in self.created

    def fact(self, fact: Fact) -> None:
        kind, table = fact.kind, fact.table
        on = f" of table {table!r}" if table else ""
        if kind == "create-table" and table:
            self.created.add(table.lower())
            return
        if kind == "set":
            self._setting(fact)
            return
        if kind == "unknown":
            self.fire("raw-sql", f"runs SQL that was not analysed: {_short(fact.sql or '')}")
            return
        if kind == "data":
            if self.existing(table) and self.data_change is None:
                self.data_change = f"{fact.detail or 'changes rows'} {table or ''}".strip()
            return
        if kind not in _DDL or not self.existing(table):
            return
        self._ddl(fact, on)
        if self.schema_change is None:
            self.schema_change = _describe(fact)
        if self.family == "postgresql" and not self.guarded and self.unguarded is None:
            self.unguarded = _describe(fact)

    def _ddl(self, fact: Fact, on: str) -> None:
        kind, table, name = fact.kind, fact.table, fact.name
        if kind == "drop-table":
            self.fire("drop-table", f"drops table {table!r}")
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
                self.fire(
                    "add-not-null-column",
                    f"adds NOT NULL column {name!r} without a server default to table {table!r}",
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
            if self.family == "postgresql" and not fact.online:
                self.fire(
                    "create-index-blocking", f"creates index {name!r}{on} without CONCURRENTLY"
                )
            elif self.family == "mysql" and fact.index_kind:
                self.fire("create-index-blocking", f"creates {fact.index_kind} index {name!r}{on}")
        elif kind == "drop-index":
            if self.family == "postgresql" and not fact.online:
                self.fire("drop-index-blocking", f"drops index {name!r}{on} without CONCURRENTLY")
        elif kind == "add-foreign-key":
            if not fact.online:
                what = f"foreign key {name!r}" if name else "a foreign key"
                self.fire("add-foreign-key-validating", f"adds {what}{on} without NOT VALID")
        elif kind == "add-unique":
            what = f"unique constraint {name!r}" if name else "a unique constraint"
            self.fire("add-unique-constraint", f"adds {what}{on}")

    def _setting(self, fact: Fact) -> None:
        if (fact.name or "").lower() != "lock_timeout":
            return
        value = (fact.detail or "").strip().strip("'\"").lower()
        self.guarded = value not in {"0", "default", ""}

    def end(self, seen: _Seen) -> None:
        if self.data_change and self.schema_change:
            self.fire(
                "data-change-in-schema-migration",
                f"changes rows ({self.data_change}) and the schema ({self.schema_change}) "
                "in one revision",
            )
        if self.unguarded:
            self.fire("no-lock-timeout", f"runs DDL ({self.unguarded}) without a lock timeout")
        module = seen.module
        # An upgrade() that does nothing (a revision just written with --empty) has
        # nothing to undo.
        if (
            module is not None
            and seen.operations
            and _does_nothing(getattr(module, "downgrade", None))
        ):
            self.fire("missing-downgrade", "has a downgrade() that does nothing")
        if seen.error is not None:
            self.fire(
                "offline-failure",
                f"raised {type(seen.error).__name__} in offline mode: "
                f"{_short(str(seen.error) or '(no message)')}",
            )


def _describe(fact: Fact) -> str:
    words = fact.kind.replace("-", " ")
    target = ".".join(x for x in (fact.table, fact.name) if x)
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


def _judge(runtime: BindRuntime, script: Script, seen: _Seen, guarded: Any) -> list[Finding]:
    dialect = runtime.bind.engine.dialect
    judgement = _Judgement(dialect.name, bool(guarded(seen.module)) if guarded else False)
    for operation, statements in seen.operations:
        for fact in _facts(operation, statements, dialect):
            judgement.fact(fact)
    judgement.end(seen)
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
    return _apply_allowances(findings, seen.module, dialect.name, bind, script)


def _apply_allowances(
    findings: list[Finding], module: ModuleType | None, dialect: str, bind: str, script: Script
) -> list[Finding]:
    """Mark what ``lint_allow`` accepts; report its entries that are wrong or unused."""
    raw = getattr(module, "lint_allow", None) if module is not None else None
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
                notes.append(("invalid-allow", f"lint_allow names {rule_id!r}, which is no rule"))
            elif not rule.acceptable:
                notes.append(("invalid-allow", f"lint_allow cannot accept {rule_id!r}"))
            elif not isinstance(reason, str) or not reason.strip():
                notes.append(("invalid-allow", f"lint_allow gives no reason for {rule_id!r}"))
            else:
                allowed[rule_id] = reason.strip()
    fired = {f.rule for f in findings}
    for rule_id in allowed:
        if rule_id not in fired and RULES[rule_id].applies_to(dialect):
            notes.append(
                ("unused-allow", f"lint_allow accepts {rule_id!r}, which does not fire here")
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
