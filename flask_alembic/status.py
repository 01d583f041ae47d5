"""Where each bind's database stands: reading version tables, and the status rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import Command
from .errors import DatabaseError
from .errors import FlaskAlembicError
from .errors import RevisionError
from .identity import Identities
from .loader import Loader
from .loader import QuickGraph
from .registry import Bind

if TYPE_CHECKING:
    from .history import BindHistory

__all__ = [
    "STATES",
    "BindStatus",
    "HeadsReader",
    "State",
    "current_heads",
    "read_status",
    "unlocked_heads",
    "version_table_name",
]


class State(StrEnum):
    """Where a bind stands, from best to worst; its value is the word ``status`` prints."""

    UP_TO_DATE = "up to date"
    PENDING = "pending"
    MULTIPLE_HEADS = "multiple heads"
    #: Another process holds the bind's migration lock: where it will stand is not known yet.
    MIGRATING = "migrating"
    UNKNOWN_REVISION = "ahead/unknown revision"
    UNREACHABLE = "unreachable"
    #: A bind that is not migrated at all (no models, or excluded): never connected to.
    NOT_MANAGED = "not managed"


#: The states ``status()`` reports, from best to worst, as strings.
STATES = tuple(State)


@dataclass(frozen=True, kw_only=True)
class BindStatus:
    """Where one bind's database stands against its scripts."""

    bind: str
    #: The database URL with the password hidden.
    url: str
    version_table: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    #: Steps an upgrade to heads would run; ``None`` when it cannot be known.
    pending: int | None
    state: State = State.UP_TO_DATE
    #: Why the state is ``unreachable`` or ``ahead/unknown revision``, in one line; for
    #: ``migrating``, who holds the lock, where the database can say; for ``pending``,
    #: that the version table is probably misconfigured (``VersionTableMismatchError``).
    error: FlaskAlembicError | None = None
    #: Why the bind is managed or not (for a bind that is not: why it is left alone).
    reason: str = "it has models"

    @property
    def up_to_date(self) -> bool:
        return self.state == State.UP_TO_DATE

    @property
    def managed(self) -> bool:
        """Whether Flask-Alembic migrates this bind."""
        return self.state != State.NOT_MANAGED


#: How long (ms) a reader that does not wait gives a SQLite file's writer to finish.
SHORT_BUSY_TIMEOUT = 200


class HeadsReader:
    """Reads version tables on short-lived connections, one per bind; each read once.

    The first connection to each database also tells its identity. A reader that does
    not ``wait`` (for ``status``) gives up on a SQLite file that a writer locks after
    :data:`SHORT_BUSY_TIMEOUT`, not after the connection's busy timeout (5 s by default).
    """

    def __init__(self, stack: ExitStack, identities: Identities, *, wait: bool = True) -> None:
        self.stack = stack
        self.identities = identities
        self.wait = wait
        self._connections: dict[str, sa.Connection] = {}
        self._heads: dict[str, tuple[str, ...] | DatabaseError] = {}
        #: The binds whose SQLite file another connection's write lock kept from being read.
        self._locked: set[str] = set()

    def connection(self, bind: Bind) -> sa.Connection:
        """The bind's reading connection, opened the first time, which also reads the
        database's identity (:class:`DatabaseError` if it cannot be connected to)."""
        connection = self._connections.get(bind.name)
        if connection is None:
            connection = self.stack.enter_context(bind.connect())
            self._connections[bind.name] = connection
            self.identities.read(bind.engine, connection)
        return connection

    def holder(self, bind: Bind) -> str | None:
        """Who holds ``bind``'s migration lock, when another process migrates it now.

        Asked without waiting (see :func:`locking.lock_holder`); ``None``: nobody.
        """
        from . import locking

        connection = self.connection(bind)
        identity = self.identities.read(bind.engine, connection)
        return locking.lock_holder(bind, identity, connection)

    def file_migration(self, bind: Bind) -> tuple[str, str] | None:
        """When a write lock kept ``bind``'s SQLite file from being read: the migration of
        the file that holds it, as :func:`lockfile.sqlite_migration` finds it."""
        from . import lockfile

        if bind.name not in self._locked:
            return None
        identity = self.identities.read(bind.engine, self.connection(bind))
        return None if identity.path is None else lockfile.sqlite_migration(identity.path)

    def heads(self, bind: Bind) -> tuple[str, ...]:
        found = self._heads.get(bind.name)
        if found is None:
            found = self._heads[bind.name] = self._read_heads(bind)
        if isinstance(found, DatabaseError):
            raise found
        return found

    def _read_heads(self, bind: Bind) -> tuple[str, ...] | DatabaseError:
        connection = self.connection(bind)
        try:
            if self.wait or bind.backend != "sqlite":
                return _read_version_table(bind, connection)
            with _short_busy_timeout(connection):
                return _read_version_table(bind, connection)
        except sa.exc.DBAPIError as exc:
            if bind.backend == "sqlite" and _busy(exc):
                self._locked.add(bind.name)
                return bind.database_error(
                    "read the version table of",
                    exc,
                    "The database file is locked by another connection (a long write "
                    "transaction, or a migration run without the lock): try again once it "
                    "has finished.",
                )
            return bind.database_error(
                "read the version table of",
                exc,
                "Check the bind's 'version_table' and 'version_table_schema' settings.",
            )

    @classmethod
    @contextmanager
    def open(cls, identities: Identities, *, wait: bool = True) -> Iterator[HeadsReader]:
        """A reader whose connections close when the block ends."""
        with ExitStack() as stack:
            yield cls(stack, identities, wait=wait)


@contextmanager
def _short_busy_timeout(connection: sa.Connection) -> Iterator[None]:
    """Wait at most :data:`SHORT_BUSY_TIMEOUT` for the file's writer; the connection comes
    from the app's pool, so its own timeout is restored afterwards.

    Set on the driver's connection directly: three statements per bind through
    SQLAlchemy cost more than reading the version table.
    """
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("PRAGMA busy_timeout")
        row = cursor.fetchone()
        previous = int(row[0] or 0) if row else 0
        cursor.execute(f"PRAGMA busy_timeout = {min(previous, SHORT_BUSY_TIMEOUT)}")
        try:
            yield
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {previous}")
    finally:
        cursor.close()


def _read_version_table(bind: Bind, connection: sa.Connection) -> tuple[str, ...]:
    """What :meth:`Bind.read_heads` reads, on a reading connection of its own: the
    ``SELECT`` first, and whether the table exists only once it has failed (a missing
    table: no heads; any other failure: the ``SELECT``'s error, as before).

    The statement is the one SQLAlchemy would compile, written out with the dialect's
    quoting: an engine compiles each statement once, and each bind has an engine of its
    own. A failed statement is rolled back (PostgreSQL refuses any other statement in the
    transaction until then): only on a connection that holds nothing else.
    """
    schema, name = bind.version_table_schema, bind.version_table
    quote = connection.dialect.identifier_preparer
    table = quote.format_table(sa.table(name, schema=schema))
    statement = f"SELECT {quote.quote('version_num')} FROM {table}"
    try:
        # The quoting doubles a '%' where the driver's paramstyle needs it, as compiling does.
        return tuple(row[0] for row in connection.exec_driver_sql(statement))
    except sa.exc.DBAPIError as exc:
        connection.rollback()
        if bind.backend == "sqlite" and _busy(exc):
            raise  # asking whether the table exists would wait for the writer again
        if sa.inspect(connection).has_table(name, schema=schema):
            raise
        return ()


def _busy(exc: sa.exc.DBAPIError) -> bool:
    """Whether SQLite said ``SQLITE_BUSY``: another connection locks the file."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == 5  # the primary code, whatever the extended one
    return "database is locked" in str(exc.orig)


def current_heads(
    loader: Loader, identities: Identities, binds: Iterable[Bind]
) -> dict[str, tuple[str, ...]]:
    """Each bind's heads, once no two binds turn out to share a version table."""
    binds = list(binds)
    with HeadsReader.open(identities) as reader:
        heads = {b.name: reader.heads(b) for b in binds}
    loader.registry.check_version_tables(binds, identities)
    return heads


def unlocked_heads(
    loader: Loader, identities: Identities, binds: Iterable[Bind]
) -> dict[str, tuple[str, ...]] | None:
    """Each bind's heads as :func:`current_heads` reads them, before any lock is taken.

    ``None`` when a version table could not be read (a SQLite file locked by a writer, a
    table the role may not read...) or two binds may share one: the caller then locks
    and reads again, and fails exactly as it always did if the failure lasts. A bind
    that cannot be connected to fails here, as it would while its lock is taken.

    ``None`` too when another process holds a bind's migration lock just before or just
    after its version table is read: a migration under way may have changed the schema
    ahead of its version table (MySQL commits each DDL statement at once; so do
    ``autocommit_block()`` and SQLite without transactions), and on PostgreSQL the read
    would wait behind its table locks with no regard for the lock timeout. The caller
    then waits for the lock, as before.
    """
    from .locking import lock_holder

    binds = list(binds)
    with HeadsReader.open(identities) as reader:
        heads = {}
        for b in binds:
            connection = reader.connection(b)
            identity = identities.read(b.engine, connection)
            if lock_holder(b, identity, connection) is not None:
                return None
            try:
                heads[b.name] = reader.heads(b)
            except DatabaseError:
                return None
            if lock_holder(b, identity, connection) is not None:
                return None
    try:
        loader.registry.check_version_tables(binds, identities)
    except FlaskAlembicError:
        return None
    return heads


def read_status(loader: Loader, identities: Identities, binds: Iterable[Bind]) -> list[BindStatus]:
    """Where each of ``binds`` stands; a failing bind does not hide the others.

    Binds that are not managed are listed too, with the reason, and never connected to.
    """
    everything = list(binds)
    managed = [b for b in everything if b.managed]
    rows = {b.name: _unmanaged_row(b) for b in everything if not b.managed}
    if managed:
        quick = loader.quick_graph()
        # A reader that does not wait, shared: what the quick rows read is not read again.
        with HeadsReader.open(identities, wait=False) as reader:
            found = (
                None if quick is None else _quick_rows(loader, identities, managed, quick, reader)
            )
            if (
                found is not None
                and quick is not None
                and not quick.exact
                and any(not row.up_to_date for row in found)
            ):
                # Folders trusted whole answer "up to date", nothing more: the heads of a
                # migrating bind come from a graph with every file checked.
                exact = loader.quick_graph(exact=True)
                found = (
                    None
                    if exact is None
                    else _quick_rows(loader, identities, managed, exact, reader)
                )
            if found is None:
                histories = loader.histories
                found = [
                    _bind_row(loader, identities, b, histories[b.name], reader) for b in managed
                ]
        rows.update((row.bind, row) for row in found)
    return [rows[b.name] for b in everything]


def _row(
    bind: Bind,
    *,
    current: tuple[str, ...] = (),
    heads: tuple[str, ...] = (),
    pending: int | None = None,
    state: State = State.UP_TO_DATE,
    error: FlaskAlembicError | None = None,
) -> BindStatus:
    """A bind's status row, with what the bind itself says filled in."""
    return BindStatus(
        bind=bind.name,
        url=bind.display_url,
        version_table=version_table_name(bind),
        current=current,
        heads=heads,
        pending=pending,
        state=state,
        error=error,
        reason=bind.reason,
    )


def _unmanaged_row(bind: Bind) -> BindStatus:
    """The status row of a bind that is not migrated: nothing is read from its database."""
    return _row(bind, state=State.NOT_MANAGED)


def _quick_rows(
    loader: Loader,
    identities: Identities,
    binds: list[Bind],
    quick: QuickGraph,
    reader: HeadsReader,
) -> list[BindStatus] | None:
    """Status rows from the cache when every bind is at its single head, or migrating."""
    rows = []
    for b in binds:
        try:
            current, migrating = _read(reader, b)
        except DatabaseError:
            return None
        if migrating is not None:
            rows.append(_migrating_row(b, current, quick.heads.get(b.name, ()), migrating))
        elif quick.at_heads(b.name, current, single=True):
            rows.append(_row(b, current=current, heads=current, pending=0))
        else:
            return None
    loader.registry.check_version_tables(binds, identities)
    return rows


def _read(reader: HeadsReader, bind: Bind) -> tuple[tuple[str, ...], FlaskAlembicError | None]:
    """The bind's heads, and, while another process migrates its database, why they are
    what they are (``None``: nobody does).

    A server shows the last committed revision at once. A SQLite reader would wait for
    the migrating writer: the version table is not read while the bind's lock is held,
    and a file that a migration of another of its version tables locks makes the bind
    migrating too.
    """
    holder = reader.holder(bind)
    if holder is not None:
        current = () if bind.backend == "sqlite" else reader.heads(bind)
        return current, _migrating_error(bind, holder)
    try:
        return reader.heads(bind), None
    except DatabaseError:
        found = reader.file_migration(bind)
        if found is None:
            raise
    migrated, holder = found
    return (), _migrating_error(bind, holder, other=migrated)


def _migrating_error(bind: Bind, holder: str, *, other: str | None = None) -> FlaskAlembicError:
    """Why a bind another process is migrating shows what it shows; ``other`` names
    what is migrated when it is another version table of the bind's SQLite file."""
    who = f" ({holder})" if holder else ""
    if other is not None:
        message = (
            f"Another process is migrating {other} in the same database file now{who}; the "
            f"version table of bind {bind.name!r} cannot be read until it has finished."
        )
    elif bind.backend == "sqlite":
        message = (
            f"Another process is migrating bind {bind.name!r} now{who}; its version table "
            "is not read while the migration may lock the file."
        )
    else:
        message = (
            f"Another process is migrating bind {bind.name!r} now{who}; the current revision "
            "shown is the last one committed."
        )
    return FlaskAlembicError(
        message, bind=bind.name, hint=("Run ", Command("status"), " again once it has finished.")
    )


def _migrating_row(
    bind: Bind, current: tuple[str, ...], heads: tuple[str, ...], error: FlaskAlembicError
) -> BindStatus:
    """The row of a bind another process is migrating: its pending steps are not known."""
    return _row(
        bind, current=current, heads=heads, pending=None, state=State.MIGRATING, error=error
    )


def _bind_row(
    loader: Loader, identities: Identities, b: Bind, history: BindHistory, reader: HeadsReader
) -> BindStatus:
    heads = history.heads
    try:
        current, migrating = _read(reader, b)
    except DatabaseError as exc:
        return _row(b, heads=heads, state=State.UNREACHABLE, error=exc)
    loader.registry.check_version_tables([b], identities)
    if migrating is not None:
        return _migrating_row(b, current, heads, migrating)
    from .planner import bind_steps

    row = _row(b, heads=heads, current=current)
    try:
        # Only this bind's own steps count; dependencies on other binds do not.
        steps = bind_steps("upgrade", history, current, "heads", owner_of=loader.owner_of)
    except RevisionError as exc:
        return dataclasses.replace(row, state=State.UNKNOWN_REVISION, error=exc)
    error: FlaskAlembicError | None = None
    if steps:
        from .drift import mismatch

        # Suggesting an upgrade would be harmful if the tables it creates exist already.
        connection = reader.connection(b)
        identity = reader.identities.read(b.engine, connection)
        error = mismatch(b, history, current, connection, identity)
    if len(heads) > 1 and _diverged(history, heads):
        return dataclasses.replace(row, pending=len(steps), state=State.MULTIPLE_HEADS, error=error)
    state = State.PENDING if steps else State.UP_TO_DATE
    return dataclasses.replace(row, pending=len(steps), state=state, error=error)


def _diverged(history: BindHistory, heads: tuple[str, ...]) -> bool:
    """Whether two of ``heads`` grew from one revision (a branch to merge), rather than
    being the heads of independent branches (Flask-Alembic 3's ``--branch``), each from
    base."""
    seen: set[str] = set()
    for head in heads:
        below = history.applied([head])
        if below & seen:
            return True
        seen |= below
    return False


def version_table_name(bind: Bind) -> str:
    """The bind's version table, with its schema when it has one."""
    if bind.version_table_schema:
        return f"{bind.version_table_schema}.{bind.version_table}"
    return bind.version_table
