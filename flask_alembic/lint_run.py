"""Running revisions for the linter: each ``upgrade()`` in Alembic's offline mode for its
bind's dialect, every operation it invokes recorded with the SQL it emits.

Nothing connects. ``op.get_bind()`` (and the migration context's connection) hands the
revision a connection that reads what it is given to run as SQL, and stops the revision
at a statement that returns rows, which offline mode does not have. SQL emitted outside
any operation (the migration context's ``impl`` called directly) is kept too. What a
revision prints stays off standard output.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from types import ModuleType
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import lint_sql

if TYPE_CHECKING:
    from alembic.operations.ops import MigrateOperation
    from alembic.script import Script

    from .environment import BindRuntime

__all__ = ["ReadsDatabase", "Seen", "placeholders", "run_offline"]


class _Statements(io.StringIO):
    """Alembic's offline output buffer, keeping each statement Alembic writes apart."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []
        #: Whether what runs now runs outside a transaction: between the COMMIT and the
        #: BEGIN that ``autocommit_block()`` writes offline (or with no transactional DDL).
        self.autocommit = False

    def write(self, text: str) -> int:
        self.statements.append(text)
        word = text.strip().rstrip(";").strip().upper()
        if word == "COMMIT":
            self.autocommit = True
        elif word == "BEGIN":
            self.autocommit = False
        return len(text)


@dataclass
class Seen:
    """What one revision's ``upgrade()`` did offline."""

    #: Each operation with the SQL it emitted; ``None`` for SQL emitted outside any.
    operations: list[tuple[MigrateOperation | None, list[str]]]
    error: BaseException | None = None
    module: ModuleType | None = None
    #: The indexes in ``operations`` of those run outside a transaction.
    autocommit: set[int] = field(default_factory=set)
    #: The module's ``lint_allow``, read before its code ran.
    allow: Any = None


class ReadsDatabase(Exception):
    """``op.get_bind()`` was asked for rows, which offline mode does not have."""

    def __init__(self, sql: str) -> None:
        super().__init__(sql)
        self.sql = sql


class _Recorder:
    """Called for every operation invoked: remembers it and the SQL it emitted."""

    def __init__(self, buffer: _Statements, dialect: sa.Dialect) -> None:
        self.buffer = buffer
        self.dialect = dialect
        self.seen = Seen([])
        self._depth = 0
        #: How many of the buffer's statements belong to what is recorded already.
        self._mark = 0

    def start(self) -> Seen:
        """A new revision starts."""
        self.seen = Seen([])
        self._mark = len(self.buffer.statements)
        return self.seen

    def loose(self) -> None:
        """Record the SQL emitted since the last operation outside any (a migration
        context's ``execute()``, its ``impl`` called directly) as SQL to read."""
        emitted = [
            text
            for text in self.buffer.statements[self._mark :]
            if lint_sql.first_keyword(text, self.dialect.name) not in {"COMMIT", "BEGIN"}
        ]
        self._mark = len(self.buffer.statements)
        if emitted:
            if self.buffer.autocommit:
                self.seen.autocommit.add(len(self.seen.operations))
            self.seen.operations.append((None, emitted))

    def __call__(self, invoke: Any, operation: MigrateOperation | None) -> Any:
        from alembic.operations import ops

        if self._depth:  # an operation carried out with others: the outer one counts
            return invoke(operation)
        self.loose()
        if operation is None:  # a batch's end: the SQL of operations recorded already
            try:
                return invoke(operation)
            finally:
                self._mark = len(self.buffer.statements)
        if self.buffer.autocommit:
            self.seen.autocommit.add(len(self.seen.operations))
        if isinstance(operation, ops.ExecuteSQLOp):
            # Read, not rendered: offline rendering needs a literal of a known type for
            # every value (sa.column("x") has none), which running online does not.
            self.seen.operations.append((operation, [_sql(operation.sqltext, self.dialect)]))
            return None
        if isinstance(operation, ops.BulkInsertOp):
            self.seen.operations.append((operation, []))  # the same: only its table counts
            return None
        start = len(self.buffer.statements)
        self._depth += 1
        try:
            return invoke(operation)
        finally:
            self._depth -= 1
            self.seen.operations.append((operation, self.buffer.statements[start:]))
            self._mark = len(self.buffer.statements)


def _sql(statement: Any, dialect: sa.Dialect) -> str:
    """The SQL of a statement given to ``op.execute()`` or ``op.get_bind().execute()``."""
    if isinstance(statement, str):
        return statement
    try:
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:  # a value without a literal form: a placeholder will do
        return placeholders(statement, dialect)


def placeholders(statement: Any, dialect: sa.Dialect) -> str:
    """A statement's SQL with its values left as ``:name`` placeholders."""
    try:
        named = type(dialect)(paramstyle="named")  # type: ignore[call-arg]
        return str(statement.compile(dialect=named))
    except Exception:
        return type(statement).__name__


_READING = frozenset({"SELECT", "WITH", "SHOW", "EXPLAIN", "PRAGMA", "VALUES", "TABLE", "DESCRIBE"})


class _OfflineBind:
    """What ``op.get_bind()`` returns while linting: Alembic's offline connection, except
    that a statement that returns rows stops the revision (offline mode has none to give,
    and code deciding on them would be seen along a path it may not take), and one that
    does not is read as ``op.execute()`` is."""

    def __init__(self, connection: Any, recorder: _Recorder) -> None:
        self._connection = connection
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def execute(self, statement: Any, *args: Any, **kw: Any) -> None:
        from alembic.operations import ops

        sql = _sql(statement, self._recorder.dialect)
        first = lint_sql.first_keyword(sql, self._recorder.dialect.name)
        if getattr(statement, "is_select", False) or first in _READING:
            raise ReadsDatabase(sql)
        self._recorder(lambda _: None, ops.ExecuteSQLOp(statement))

    def exec_driver_sql(self, statement: str, *args: Any, **kw: Any) -> None:
        self.execute(statement)

    def scalar(self, statement: Any, *args: Any, **kw: Any) -> Any:
        raise ReadsDatabase(_sql(statement, self._recorder.dialect))

    scalars = scalar


def run_offline(
    runtime: BindRuntime,
    scripts: Sequence[Script],
    *,
    tag: str | None = None,
    x_arguments: Sequence[str] | None = None,
) -> Iterable[tuple[Script, Seen]]:
    """Run each script's ``upgrade()`` in offline mode on the bind's dialect."""
    import contextlib

    from alembic.runtime.environment import EnvironmentContext

    from . import _alembic_compat as compat
    from .environment import context_options
    from .environment import with_x_arguments

    buffer = _Statements()
    recorder = _Recorder(buffer, runtime.bind.engine.dialect)
    config = with_x_arguments(runtime.config, x_arguments)
    env = EnvironmentContext(config, runtime.script, as_sql=True, tag=tag)
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
        context = env.get_context()
        # Every way to the connection: op.get_bind(), op.get_context().bind and
        # .connection, context.get_bind().
        offline = _OfflineBind(context.impl.connection, recorder)
        vars(context.impl)["connection"] = offline
        vars(context)["connection"] = offline
        with compat.recording_operations(context, recorder):
            transactional = bool(context.impl.transactional_ddl)
            for script in scripts:
                seen = recorder.start()
                buffer.autocommit = not transactional
                try:
                    # What a revision prints, on import or while it runs, is not the
                    # linter's output (--json).
                    with contextlib.redirect_stdout(io.StringIO()):
                        seen.module = script.module
                        seen.allow = getattr(seen.module, "lint_allow", None)
                        seen.module.upgrade()
                except (Exception, SystemExit) as exc:
                    seen.error = exc
                recorder.loose()
                yield script, seen
