"""A bind's runtime: its view of the scripts, its context options, its Alembic environment.

Also what a bind's connection needs before migrations run on it: real transactions on
SQLite, and a guard on SQLite's foreign keys.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from typing import cast
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .registry import Bind
from .registry import Neighbourhood

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

__all__ = [
    "BindRuntime",
    "ForeignKeyViolation",
    "SQLiteForeignKeys",
    "context_options",
    "environment",
    "sqlite_transactions",
    "with_x_arguments",
]


def with_x_arguments(config: Config, x_arguments: Sequence[str] | None) -> Config:
    """``config`` with ``x_arguments`` as the ``-x`` options of the command line, which
    migrations read with ``context.get_x_argument()``; ``config`` itself when there are none."""
    if not x_arguments:
        return config
    if isinstance(x_arguments, str):
        x_arguments = [x_arguments]  # one argument, as Flask-Migrate's x_arg="k=v" is
    import argparse
    import copy

    changed = copy.copy(config)
    options = vars(config.cmd_opts) if config.cmd_opts is not None else {}
    changed.cmd_opts = argparse.Namespace(**{**options, "x": list(x_arguments)})
    return changed


@dataclass(frozen=True)
class BindRuntime:
    """What the executor needs of a bind: the bind and its view of the script directory."""

    bind: Bind
    script: ScriptDirectory
    config: Config


def context_options(
    bind: Bind, neighbourhood: Neighbourhood | None = None, **overrides: Any
) -> dict[str, Any]:
    """The options for ``EnvironmentContext.configure`` for ``bind``.

    :param neighbourhood: what autogenerate must not see in the bind's database (other
        binds' tables, schemas the bind does not use), or it would propose dropping them.
    """
    options: dict[str, Any] = {"transaction_per_migration": True}
    options.update(bind.context_options)
    options.update(
        target_metadata=bind.target_metadata,
        version_table=bind.version_table,
        version_table_schema=bind.version_table_schema,
    )
    if neighbourhood is not None:
        options["include_name"] = _own_names_only(neighbourhood, options.get("include_name"))
    options["include_object"] = _no_version_tables(options.get("include_object"))
    # Options that only mean something offline (--sql); the offline path sets its own.
    for name in _OFFLINE_ONLY:
        options.pop(name, None)
    options.update(overrides)
    return options


_OFFLINE_ONLY = ("literal_binds", "output_buffer", "starting_rev", "url", "dialect_name")


def _no_version_tables(user_filter: Any) -> Callable[..., bool]:
    """An ``include_object`` hook hiding every Alembic version table that no model
    describes (a table whose only column is ``version_num``), then asking the user's hook.

    Such a table records another history: another tool's (Flask-Migrate's with a custom
    ``version_table``, or a plain Alembic project's), or an older setting of this one.
    Dropping it would lose that record, so autogenerate never proposes it.
    """

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if (
            type_ == "table"
            and reflected
            and compare_to is None
            and [column.name for column in obj.columns] == ["version_num"]
        ):
            return False
        return bool(user_filter(obj, name, type_, reflected, compare_to)) if user_filter else True

    return include_object


def _own_names_only(names: Neighbourhood, user_filter: Any) -> Callable[..., bool]:
    """An ``include_name`` hook hiding what is not the bind's, then asking the user's hook.

    With ``include_schemas``, Alembic compares every schema of the database (on MySQL,
    every database of the server, its system tables included): only the schemas the
    bind's models use are compared.
    """

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema" and names.hides_schema(name):
            return False
        if type_ == "table" and names.hides_table(parent_names.get("schema_name"), name or ""):
            return False
        return bool(user_filter(name, type_, parent_names)) if user_filter else True

    return include_name


@contextmanager
def environment(
    runtime: BindRuntime,
    connection: sa.Connection | None = None,
    *,
    neighbourhood: Neighbourhood | None = None,
    **env_options: Any,
) -> Iterator[EnvironmentContext]:
    """An Alembic environment for one bind, configured and installed as ``alembic.context``."""
    from alembic.runtime.environment import EnvironmentContext

    env = EnvironmentContext(runtime.config, runtime.script, **env_options)
    with env:
        env.configure(connection=connection, **context_options(runtime.bind, neighbourhood))
        yield env


def sqlite_transactions(connection: sa.Connection, options: dict[str, Any]) -> None:
    """Give SQLite migrations real transactions on ``connection``, as its engine allows.

    SQLite can roll back schema changes, but Python's ``sqlite3`` driver, in its default
    ("legacy") mode, sends no ``BEGIN`` before DDL: each ``CREATE``/``ALTER``/``DROP``
    commits on its own, so a migration failing half way leaves its first half behind.
    Here, on this one connection, every transaction SQLAlchemy begins starts with a real
    ``BEGIN`` (the recipe in SQLAlchemy's SQLite documentation), and Alembic is told the
    DDL is transactional. A migration, and its version-table update, then commit or roll
    back as one. ``transactional_ddl=False`` in ``ALEMBIC_CONTEXT`` keeps the driver's
    behaviour; an engine in ``AUTOCOMMIT`` mode, or a driver connection already in
    Python 3.12's explicit ``autocommit`` mode, is left as configured.
    """
    if connection.dialect.name != "sqlite" or options.get("transactional_ddl") is False:
        return
    import sqlite3

    legacy = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)  # Python 3.12+
    driver = connection.connection.driver_connection
    mode = getattr(driver, "autocommit", legacy)
    if mode is False:  # Python 3.12+: sqlite3 already begins every transaction itself
        options.setdefault("transactional_ddl", True)
        return
    if (
        connection.dialect.driver != "pysqlite"
        or mode != legacy
        or getattr(driver, "isolation_level", None) is None  # AUTOCOMMIT: never BEGIN
    ):
        return
    options.setdefault("transactional_ddl", True)
    sa.event.listen(connection, "begin", _begin_sqlite)


def _begin_sqlite(connection: sa.Connection) -> None:
    driver = connection.connection.driver_connection
    # None while Alembic's ``autocommit_block()`` (or any AUTOCOMMIT level) is in effect.
    level = getattr(driver, "isolation_level", None)
    if level is not None and not getattr(driver, "in_transaction", True):
        connection.exec_driver_sql(f"BEGIN {level}".rstrip())


class SQLiteForeignKeys:
    """Keeps SQLite's foreign keys honest while one bind's migrations run.

    ``PRAGMA foreign_keys`` does nothing inside a transaction, and every migration runs
    in one: a revision that turns foreign keys off there, then rebuilds a table (Alembic's
    batch mode copies, drops and renames it), would have ``ON DELETE CASCADE`` delete the
    rows that reference it. SQLite's authorizer, which sees each statement as SQLite
    itself understands it, refuses such a PRAGMA, so the step fails and rolls back before
    anything is lost. The refusal fails the step even when the migration catches it.
    A step that, with foreign keys on, drops (or rebuilds) a table that another table
    still references with an ``ON DELETE`` action fails the same way.

    With the bind's ``sqlite_foreign_keys`` option set to ``False``, foreign keys are
    turned off on the connection before the first transaction (SQLite's own procedure
    for altering a table), checked with ``PRAGMA foreign_key_check`` after each step's
    code, before its commit (only rows the step left broken count), and turned back on
    when the run ends.
    """

    def __init__(self, bind: Bind, connection: sa.Connection, stack: ExitStack) -> None:
        import sqlite3

        self.bind = bind
        self.connection = connection
        self.driver = cast(Any, connection.connection.driver_connection)
        #: The value a migration tried to give ``PRAGMA foreign_keys`` in a transaction.
        self.refused: str | None = None
        self._allow = sqlite3.SQLITE_OK
        self._deny = sqlite3.SQLITE_DENY
        self._pragma = sqlite3.SQLITE_PRAGMA
        self._drop = sqlite3.SQLITE_DROP_TABLE
        #: Whether foreign keys are on now, as the running step left them.
        self._enforcing = False
        #: ``(database, table)``, lower case: what the step dropped with foreign keys on.
        self._dropped: set[tuple[str, str]] = set()
        #: ``PRAGMA foreign_key_check`` rows from before the running step.
        self._orphans: set[tuple[Any, ...]] = set()
        # Reads PRAGMA values as SQLite does ("0x1" is on, "256" off) where the
        # authorizer cannot ask the migration's own connection.
        self._scratch = sqlite3.connect(":memory:", isolation_level=None)
        stack.callback(self._scratch.close)
        self.restore = False
        if bind.sqlite_foreign_keys is False:
            if self.driver.execute("PRAGMA foreign_keys").fetchone()[0]:
                self.driver.execute("PRAGMA foreign_keys=OFF")
                self.restore = True
            stack.callback(self._restore)
        self.driver.set_authorizer(self._authorize)
        stack.callback(self.driver.set_authorizer, None)

    @property
    def checking(self) -> bool:
        return self.bind.sqlite_foreign_keys is False

    def _authorize(
        self, action: int, name: str | None, value: str | None, database: str | None, *_: str | None
    ) -> int:
        # Called while SQLite compiles a statement: it may not use the connection.
        if action == self._pragma and value is not None and (name or "").lower() == "foreign_keys":
            if self.driver.in_transaction:
                self.refused = value
                return int(self._deny)
            self._enforcing = self._reads_as_on(value)
        elif action == self._drop and name is not None and self._enforcing:
            self._dropped.add(((database or "main").lower(), name.lower()))
        return int(self._allow)

    def _reads_as_on(self, value: str) -> bool:
        quoted = value.replace("'", "''")
        self._scratch.execute(f"PRAGMA foreign_keys='{quoted}'")
        return bool(self._scratch.execute("PRAGMA foreign_keys").fetchone()[0])

    def before_step(self) -> None:
        """Note what a step starts from: foreign keys on or off, rows already broken."""
        self.refused = None
        self._dropped.clear()
        self._enforcing = bool(self.connection.exec_driver_sql("PRAGMA foreign_keys").scalar())
        if self.checking:
            self._orphans = self._foreign_key_check()

    def after_step(self) -> None:
        """Fail the step, before it commits, if it put rows at risk."""
        if self.refused is not None:  # raised even if the migration caught the refusal
            raise ForeignKeyViolation(self.refusal())
        if self._dropped:
            self._check_dropped()
        self.check()

    def refusal(self) -> str:
        """Why the step failed, and how to run such a migration safely."""
        return (
            f"it sets PRAGMA foreign_keys={self.refused} inside the migration's "
            "transaction, where SQLite ignores it (a table rebuilt by batch_alter_table "
            "would then lose the rows that reference it through ON DELETE CASCADE); "
            "the step was rolled back. Remove that PRAGMA and set "
            f"ALEMBIC_BINDS[{self.bind.name!r}] = {{'sqlite_foreign_keys': False}}, which "
            "turns foreign keys off before each migration's transaction and checks them "
            "before it commits"
        )

    def _check_dropped(self) -> None:
        """Fail if a table dropped with foreign keys on has a table's ``ON DELETE`` on it."""
        # A foreign key refers to a table of its own database: main, or an attached one.
        rows: list[tuple[Any, ...]] = []
        for database in {database for database, _ in self._dropped}:
            quoted = database.replace('"', '""')
            rows.extend(
                (database, *row)
                for row in self.connection.exec_driver_sql(
                    f'SELECT m.name, f."table", f.on_delete FROM "{quoted}".sqlite_master AS m, '
                    "pragma_foreign_key_list(m.name, ?) AS f WHERE m.type = 'table'",
                    (database,),
                ).fetchall()
            )
        at_risk = sorted(
            (parent, child, action.upper())
            for database, child, parent, action in rows
            if (database, parent.lower()) in self._dropped and action.upper() in _ON_DELETE_ACTIONS
        )
        if not at_risk:
            return
        parent, child, action = at_risk[0]
        fix = (
            "Leave foreign keys off until the migration has ended"
            if self.checking
            else f"Set ALEMBIC_BINDS[{self.bind.name!r}] = {{'sqlite_foreign_keys': False}} "
            "to run such a migration with foreign keys off and checked before it commits"
        )
        raise ForeignKeyViolation(
            f"it dropped or rebuilt table {parent!r} while foreign keys are on, so ON DELETE "
            f"{action} on table {child!r} would have deleted or changed its rows; the step "
            f"was rolled back. {fix}"
        )

    def _foreign_key_check(self) -> set[tuple[Any, ...]]:
        rows = self.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        return {tuple(row) for row in rows}

    def check(self) -> None:
        """Fail the step if it left rows pointing at rows that do not exist.

        Rows broken before the step began (inserted while foreign keys were off) are not
        the step's doing, and do not fail it.
        """
        if not self.checking:
            return
        found = self._foreign_key_check() - self._orphans
        if found:
            tables = sorted({f"{row[0]} -> {row[2]}" for row in found})
            raise ForeignKeyViolation(
                f"PRAGMA foreign_key_check found {len(found)} row(s) referencing rows that "
                f"do not exist ({', '.join(tables)}); the step was rolled back"
            )

    def _restore(self) -> None:
        if self.connection.in_transaction():
            self.connection.rollback()
        if self.restore:
            self.driver.execute("PRAGMA foreign_keys=ON")


_ON_DELETE_ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})


class ForeignKeyViolation(Exception):
    """A step broke, or put at risk, rows that a foreign key links; the message says how."""
