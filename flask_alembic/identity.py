"""Which database a bind reaches, as the server says, not as its URL is spelled.

``postgresql://u@db/x`` and ``postgresql://u@db:5432/x`` are one database; so are
``mysql://`` and ``mariadb://`` URLs of one server, two host names of one machine, a TCP
address and a Unix socket, or a SQLite file reached through a hard link. Only the server
can tell, so the identity is read once per app context from a connection that is opened
anyway (the lock's, or the one that reads the version table):

- PostgreSQL: when the postmaster started and the port it listens on (any role may read
  both, over TCP or a socket alike), the database and the current schema;
- MariaDB: ``@@server_uid``; MySQL: ``@@server_uuid``; with the current schema
  (``DATABASE()``), which on these servers is the database, and whether the server folds
  table names to lower case (``@@lower_case_table_names``);
- SQLite: the device and inode of the file the connection opened; SQLite ignores case in
  table and schema names.

When the server cannot say (the query is refused, the dialect is unknown, the bind is
unreachable), the identity falls back to the URL with its spelling normalised, which is
what two identities are then compared by.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

__all__ = ["DatabaseIdentity", "Identities", "backend_of", "read_identity", "url_key"]


class DatabaseIdentity:
    """The database behind a connection; a value (a plain class: every ``flask`` command
    of the app imports this module, and defining a dataclass costs about a millisecond)."""

    __slots__ = ("backend", "database", "default_schema", "fold_case", "path", "server", "url_key")

    def __init__(
        self,
        backend: str,
        url_key: str,
        *,
        server: str | None = None,
        database: str = "",
        default_schema: str | None = None,
        path: str | None = None,
        fold_case: bool = False,
    ) -> None:
        #: ``postgresql``, ``mysql`` (MariaDB included), ``sqlite`` or another backend name.
        self.backend = backend
        #: The URL, normalised: what identifies the database when the server cannot.
        self.url_key = url_key
        #: The server's own identifier; ``None`` when it could not be read.
        self.server = server
        #: The database on that server (PostgreSQL), or the current schema (MySQL).
        self.database = database
        #: Where an unqualified table goes: ``current_schema()``, ``DATABASE()``, ``main``.
        self.default_schema = default_schema
        #: The database file (SQLite).
        self.path = path
        #: Whether the database ignores case in table and schema names.
        self.fold_case = fold_case or backend == "sqlite"

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"DatabaseIdentity({fields})"

    @property
    def known(self) -> bool:
        """Whether the server said who it is (else only the URL identifies it)."""
        return self.server is not None

    def comparable(self, other: DatabaseIdentity) -> bool:
        """Whether both servers answered in the same terms, so their word decides.

        A PostgreSQL role that may not read the postmaster's start time answers with the
        server's address instead: two such answers cannot be compared.
        """
        if not (self.known and other.known) or self.backend != other.backend:
            return False
        mine, theirs = str(self.server), str(other.server)
        return mine.split(" ", 1)[0] == theirs.split(" ", 1)[0]

    def same_server(self, other: DatabaseIdentity) -> bool:
        """Whether ``other`` is on this server (where a schema of one database may be
        reached from the other: on MySQL, every database of the server)."""
        if self.comparable(other):
            return self.server == other.server
        return self.url_key.rpartition("/")[0] == other.url_key.rpartition("/")[0]

    def same_database(self, other: DatabaseIdentity) -> bool:
        """Whether ``other`` is this database (by the servers' word when both could tell)."""
        if self.comparable(other):
            return (self.server, self.database) == (other.server, other.database)
        return self.url_key == other.url_key

    def apart_from(self, other: DatabaseIdentity) -> bool:
        """Whether the servers say ``other`` holds none of this database's tables.

        On MySQL and MariaDB every database of a server is reachable as a schema, so only
        another server is apart. When the servers cannot be compared, nothing is apart.
        """
        if not self.comparable(other):
            return False
        if self.backend == "mysql":
            return not self.same_server(other)
        return not self.same_database(other)

    def lock_key(self, schema: str | None, table: str) -> tuple[str, ...]:
        """What names a version table within its server, for the server's own lock.

        PostgreSQL's advisory locks and MySQL's named locks live in one server, so the
        server's own identifier is not needed: every role can compute the same key.
        """
        resolved, table = self.name(schema or self.default_schema or ""), self.name(table)
        if self.backend == "postgresql" and self.database:
            return (self.backend, self.database, resolved, table)
        if self.backend == "mysql" and self.default_schema:
            return (self.backend, resolved, table)
        return self.version_table_key(schema, table)

    def version_table_key(self, schema: str | None, table: str) -> tuple[str, ...]:
        """A key that two version tables share exactly when they are the same table.

        An unset schema is the one the server puts unqualified tables in, so
        ``version_table_schema="public"`` on PostgreSQL is the same table as no schema.
        """
        if not self.known:
            return self.url_version_table_key(schema, table)
        assert self.server is not None
        resolved, table = self.name(schema or self.default_schema or ""), self.name(table)
        if self.backend == "mysql":  # a schema is a database: the server is the namespace
            return (self.backend, self.server, resolved, table)
        return (self.backend, self.server, self.database, resolved, table)

    def url_version_table_key(self, schema: str | None, table: str) -> tuple[str, ...]:
        return ("url", self.url_key, self.name(schema or ""), self.name(table))

    def name(self, name: str) -> str:
        """A table or schema name as this database compares it."""
        return name.lower() if self.fold_case else name


def same_version_table(
    first: DatabaseIdentity,
    first_table: tuple[str | None, str],
    second: DatabaseIdentity,
    second_table: tuple[str | None, str],
) -> bool:
    """Whether two ``(schema, table)`` version tables of two identities are one table."""
    if first.comparable(second):
        return first.version_table_key(*first_table) == second.version_table_key(*second_table)
    return first.url_version_table_key(*first_table) == second.url_version_table_key(*second_table)


def backend_of(url: sa.URL) -> str:
    """The backend family: ``mariadb://`` and ``mysql://`` are the same servers."""
    backend = url.get_backend_name()
    return "mysql" if backend == "mariadb" else backend


def url_key(url: sa.URL, engine: sa.Engine | None = None) -> str:
    """The database ``url`` names, normalised as far as the spelling allows.

    The driver, the user, the password and the query are left out; a missing port is the
    backend's default and ``localhost`` is ``127.0.0.1``. An in-memory SQLite database is
    private to its engine, so its key names the engine.
    """
    backend = backend_of(url)
    if backend == "sqlite":
        database = url.database or ""
        if database in {"", ":memory:"} or url.query.get("mode") == "memory":
            if database.startswith("file:") and database not in {"file::memory:"}:
                return f"sqlite-memory:{database}"
            return f"sqlite-memory:engine-{id(engine)}"
        if database.startswith("file:"):
            database = database[len("file:") :].partition("?")[0]
        return f"sqlite:{Path(database).resolve()}"
    host = (url.host or "").lower()
    if host in {"localhost", "::1", "[::1]"}:
        host = "127.0.0.1"
    port = url.port or _DEFAULT_PORTS.get(backend) or ""
    return f"{backend}://{host}:{port}/{url.database or ''}"


_DEFAULT_PORTS: dict[str, int] = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "oracle": 1521}


def read_identity(connection: sa.Connection, engine: sa.Engine) -> DatabaseIdentity:
    """Ask the server behind ``connection`` who it is.

    The connection is left as it was found: the queries run in a transaction of their own,
    rolled back. A server that refuses a query is not an error: the identity then rests
    on the URL.
    """
    url = engine.url
    fallback = DatabaseIdentity(backend_of(url), url_key(url, engine))
    reader = _READERS.get(fallback.backend)
    if reader is None:
        return fallback
    began = not connection.in_transaction()
    try:
        found = reader(connection, fallback)
    except sa.exc.DBAPIError:
        found = fallback
    finally:
        if began and connection.in_transaction():
            connection.rollback()
    return found


def _postgresql(connection: sa.Connection, fallback: DatabaseIdentity) -> DatabaseIdentity:
    # The postmaster's start time (as an epoch: no time zone in it) and port name one
    # running server for every role and every way in; pg_control_system() would need a
    # privilege, and inet_server_addr() is empty over a Unix socket.
    try:
        server, database, schema = connection.execute(
            sa.text(
                "SELECT 'postmaster ' || extract(epoch FROM pg_postmaster_start_time())::text"
                " || ' port ' || current_setting('port'), current_database(), current_schema()"
            )
        ).one()
    except sa.exc.DBAPIError:
        # Withheld from this role too: the server's address still tells two host names
        # apart. No savepoint: an engine in AUTOCOMMIT mode has no transaction to hold one.
        connection.rollback()
        server, database, schema = connection.execute(
            sa.text(
                "SELECT 'address ' || host(inet_server_addr()) || ':' || inet_server_port(), "
                "current_database(), current_schema()"
            )
        ).one()
    # A Unix socket has no address: the server stays unknown, the database does not.
    return DatabaseIdentity(
        fallback.backend,
        fallback.url_key,
        server=None if server is None else str(server),
        database=str(database),
        default_schema=schema,
    )


def _mysql(connection: sa.Connection, fallback: DatabaseIdentity) -> DatabaseIdentity:
    # MariaDB has no @@server_uuid; its @@server_uid is derived from the machine and port.
    variable = (
        "@@server_uid" if getattr(connection.dialect, "is_mariadb", False) else "@@server_uuid"
    )
    server, database, lower = connection.execute(
        sa.text(f"SELECT {variable}, DATABASE(), @@lower_case_table_names")
    ).one()
    schema = str(database) if database is not None else None
    return DatabaseIdentity(
        fallback.backend,
        fallback.url_key,
        server=str(server) if server else None,
        database=schema or "",
        default_schema=schema,
        fold_case=bool(int(lower or 0)),
    )


def _sqlite(connection: sa.Connection, fallback: DatabaseIdentity) -> DatabaseIdentity:
    # On the driver's connection: through SQLAlchemy, this statement would cost more
    # than reading the version table, and it changes nothing.
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute("PRAGMA database_list")
        rows = cursor.fetchall()
    except connection.dialect.loaded_dbapi.Error:
        return fallback
    finally:
        cursor.close()
    path = next((row[2] for row in rows if row[1] == "main"), "")
    if not path:  # in memory, or a temporary database: private to its connection
        return fallback
    try:
        stat = os.stat(path)
    except OSError:
        return fallback
    return DatabaseIdentity(
        fallback.backend,
        fallback.url_key,
        server=f"file {stat.st_dev}:{stat.st_ino}",
        default_schema="main",
        path=os.path.realpath(path),
    )


_READERS: dict[str, Callable[[sa.Connection, DatabaseIdentity], DatabaseIdentity]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
    "sqlite": _sqlite,
}


class Identities:
    """Each engine's database identity, read at most once (kept for one app context)."""

    def __init__(self) -> None:
        self._known: dict[int, DatabaseIdentity] = {}

    def get(self, engine: sa.Engine) -> DatabaseIdentity | None:
        """The identity already read for ``engine``, if any."""
        return self._known.get(id(engine))

    def read(self, engine: sa.Engine, connection: sa.Connection) -> DatabaseIdentity:
        """The identity of ``engine``'s database, read on ``connection`` the first time."""
        found = self._known.get(id(engine))
        if found is None:
            found = self._known[id(engine)] = read_identity(connection, engine)
        return found

    def remember_unreachable(self, engine: sa.Engine) -> DatabaseIdentity:
        """Record that ``engine`` could not be reached: only its URL identifies it."""
        found = self._known.get(id(engine))
        if found is None:
            url = engine.url
            found = self._known[id(engine)] = DatabaseIdentity(
                backend_of(url), url_key(url, engine)
            )
        return found
