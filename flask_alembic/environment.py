"""A bind's runtime: its view of the scripts, its context options, its Alembic environment.

Also what a bind's connection needs before migrations run on it: real transactions on
SQLite, and a guard on SQLite's foreign keys.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from typing import cast
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .registry import Bind

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
]


@dataclass(frozen=True)
class BindRuntime:
    """What the executor needs of a bind: the bind and its view of the script directory."""

    bind: Bind
    script: ScriptDirectory
    config: Config


def context_options(
    bind: Bind, neighbour_tables: frozenset[str] = frozenset(), **overrides: Any
) -> dict[str, Any]:
    """The options for ``EnvironmentContext.configure`` for ``bind``.

    :param neighbour_tables: tables of other binds in the same database, which
        autogenerate must not see (or it would propose dropping them).
    """
    options: dict[str, Any] = {"transaction_per_migration": True}
    options.update(bind.context_options)
    options.update(
        target_metadata=bind.target_metadata,
        version_table=bind.version_table,
        version_table_schema=bind.version_table_schema,
    )
    if neighbour_tables:
        options["include_name"] = _skip_tables(neighbour_tables, options.get("include_name"))
    # Options that only mean something offline (--sql); the offline path sets its own.
    for name in _OFFLINE_ONLY:
        options.pop(name, None)
    options.update(overrides)
    return options


_OFFLINE_ONLY = ("literal_binds", "output_buffer", "starting_rev", "url", "dialect_name")


def _skip_tables(tables: frozenset[str], user_filter: Any) -> Callable[..., bool]:
    """An ``include_name`` hook hiding other binds' tables, then asking the user's hook."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table" and name in tables:
            return False
        return bool(user_filter(name, type_, parent_names)) if user_filter else True

    return include_name


@contextmanager
def environment(
    runtime: BindRuntime,
    connection: sa.Connection | None = None,
    *,
    neighbour_tables: frozenset[str] = frozenset(),
    **env_options: Any,
) -> Iterator[EnvironmentContext]:
    """An Alembic environment for one bind, configured and installed as ``alembic.context``."""
    from alembic.runtime.environment import EnvironmentContext

    env = EnvironmentContext(runtime.config, runtime.script, **env_options)
    with env:
        env.configure(connection=connection, **context_options(runtime.bind, neighbour_tables))
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
    anything is lost.

    With the bind's ``sqlite_foreign_keys`` option set to ``False``, foreign keys are
    turned off on the connection before the first transaction (SQLite's own procedure
    for altering a table), checked with ``PRAGMA foreign_key_check`` after each step's
    code, before its commit, and turned back on when the run ends.
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

    def _authorize(self, action: int, name: str | None, value: str | None, *_: str | None) -> int:
        if (
            action == self._pragma
            and value is not None
            and (name or "").lower() == "foreign_keys"
            and self.driver.in_transaction
        ):
            self.refused = value
            return int(self._deny)
        return int(self._allow)

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

    def check(self) -> None:
        """Fail the step if it left rows pointing at rows that do not exist."""
        if not self.checking:
            return
        found = self.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
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


class ForeignKeyViolation(Exception):
    """A step left rows that break a foreign key (found while foreign keys were off)."""
