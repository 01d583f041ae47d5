"""Test databases for an app's binds: created, emptied and dropped; those a killed
session left behind swept.

A bind gets a temporary SQLite file, or a new database on a PostgreSQL, MariaDB or MySQL
server the project names (``flask_alembic_servers``). Nothing here connects to the app's
own databases; their URLs are only read, to know which binds share a database.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import FlaskAlembicError
from .identity import backend_of
from .identity import url_key
from .redact import describe_exception
from .redact import safe_url
from .redact import url_secrets

if TYPE_CHECKING:
    from .registry import Bind

__all__ = [
    "DATABASE_PREFIX",
    "FOLDER_PREFIX",
    "Databases",
    "parse_servers",
    "refuse_other_databases",
]


#: The prefix of every database this module creates on a server (dropped at the end).
DATABASE_PREFIX = "fa_test_"


#: The prefix of the temporary folder of a session's SQLite files, then its process id.
FOLDER_PREFIX = "flask-alembic-"


def parse_servers(lines: Iterable[str]) -> dict[str, sa.URL]:
    """``flask_alembic_servers`` lines, ``BIND = ADMIN_URL`` (``*`` for every other bind),
    as a mapping of bind name to the URL the test databases are created with."""
    servers: dict[str, sa.URL] = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, url = line.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise FlaskAlembicError(
                f"flask_alembic_servers: {_safe_line(line)!r} is not 'BIND = URL'.",
                hint="Write one bind per line, e.g. analytics = "
                "postgresql+psycopg://postgres@127.0.0.1/postgres.",
            )
        try:
            parsed = sa.make_url(url.strip())
        except (sa.exc.ArgumentError, ValueError) as exc:
            # The '=' may be a password's, with the real separator missing: show the
            # whole line, its passwords hidden, rather than a "bind" holding half of one.
            raise FlaskAlembicError(
                f"flask_alembic_servers: the URL in {_safe_line(line)!r} is not a database URL.",
                hint="Write a SQLAlchemy URL, e.g. mysql+pymysql://root@127.0.0.1/mysql.",
            ) from exc
        if parsed.get_backend_name() not in ("postgresql", "mysql", "mariadb"):
            raise FlaskAlembicError(
                f"flask_alembic_servers: bind {name.strip()!r} names a "
                f"{parsed.get_backend_name()} server; only PostgreSQL, MariaDB and MySQL "
                "servers get a database per session.",
                bind=name.strip(),
                hint="Leave SQLite binds out: they get a temporary file.",
            )
        servers[name.strip()] = parsed
    return servers


def _safe_line(line: str) -> str:
    """A servers line for an error, the password of any URL in it hidden; after a URL
    that does not parse, nothing is shown (its password may be anywhere in the rest)."""
    shown: list[str] = []
    for word in line.split():
        try:
            url = sa.make_url(word)
        except (sa.exc.ArgumentError, ValueError):
            if "://" in word:
                shown.append(word.split("://", 1)[0] + "://(the rest hidden)")
                break
            shown.append(word)
        else:
            shown.append(safe_url(url))
    return " ".join(shown)


@dataclass
class _Database:
    """One test database: a temporary SQLite file or a database on a server."""

    url: sa.URL
    engine: sa.Engine
    #: The server to create and drop it on; ``None`` for a SQLite file.
    admin: sa.URL | None


class Databases:
    """Fresh, empty databases for an app's binds, created now and dropped by :meth:`close`.

    Binds whose app URLs name one database share one test database, as they share one
    in the app. A bind named in ``servers`` (or ``*`` there) gets a new database on that
    server; the others a temporary SQLite file.
    """

    def __init__(
        self,
        urls: Mapping[str, sa.URL],
        servers: Mapping[str, sa.URL],
        *,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        self._folder: str | None = None
        self._databases: dict[str, _Database] = {}
        self._swept: set[str] = set()
        self.by_bind: dict[str, _Database] = {}
        try:
            for name, url in urls.items():
                # Which database the app's URL names, however spelled (no password in it).
                key = (keys or {}).get(name) or url_key(url)
                admin = servers.get(name, servers.get("*"))
                if admin is not None:
                    key = f"{key} on {url_key(admin)} as {admin.username}"
                if key not in self._databases:
                    self._databases[key] = self._create(name, admin)
                self.by_bind[name] = self._databases[key]
        except BaseException:
            self.close()
            raise

    @property
    def engines(self) -> dict[str, sa.Engine]:
        return {name: db.engine for name, db in self.by_bind.items()}

    def url(self, bind: str) -> sa.URL:
        """The URL of ``bind``'s test database."""
        return self.by_bind[bind].url

    def _create(self, bind: str, admin: sa.URL | None) -> _Database:
        if admin is None:
            if self._folder is None:
                _sweep_folders()
                self._folder = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
            path = Path(self._folder) / f"{len(self._databases)}-{_file_name(bind)}.db"
            url = sa.URL.create("sqlite", database=str(path))
            engine = sa.create_engine(url)
            # A throwaway file: no fsync at each commit (most of a step's time otherwise).
            sa.event.listen(engine, "connect", _no_sync)
            return _Database(url, engine, None)
        _check_driver(admin)
        self._sweep(admin)
        name = f"{DATABASE_PREFIX}{_MACHINE}_{os.getpid()}_{secrets.token_hex(4)}"
        url = admin.set(database=name)
        database = _Database(url, sa.create_engine(url), admin)
        self._server("create", database)
        return database

    def _sweep(self, admin: sa.URL) -> None:
        """Drop the test databases a killed session left on ``admin``'s server: those
        this machine made (same host name, boot and machine ids, process namespace) for a
        process that no longer runs. Once per server; nothing else is looked at, nothing
        fails here."""
        key = f"{url_key(admin)} as {admin.username}"
        if key in self._swept:
            return
        self._swept.add(key)
        if admin.get_backend_name() == "postgresql":
            query = "SELECT datname FROM pg_database"
        else:
            query = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        try:
            with contextlib.suppress(sa.exc.SQLAlchemyError), engine.connect() as connection:
                for (name,) in connection.execute(sa.text(query)).all():
                    if _left_behind(name):
                        with contextlib.suppress(sa.exc.SQLAlchemyError):
                            connection.execute(sa.text(_drop_statement(admin, name)))
        finally:
            engine.dispose()

    def _server(self, action: str, database: _Database) -> None:
        assert database.admin is not None
        name = database.url.database
        if action == "create":
            statements = [f"CREATE DATABASE {name}"]
        else:
            statements = [_drop_statement(database.admin, str(name))]
        if action == "reset":
            statements.append(f"CREATE DATABASE {name}")
        admin = sa.create_engine(
            database.admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )
        try:
            with admin.connect() as connection:
                for statement in statements:
                    connection.execute(sa.text(statement))
        except sa.exc.SQLAlchemyError as exc:
            raise FlaskAlembicError(
                f"Could not {action} the test database {name} on "
                f"{safe_url(database.admin)}: "
                f"{describe_exception(exc, url_secrets(database.admin))}",
                hint="Check the server in flask_alembic_servers is up and the user may "
                "create databases.",
            ) from None
        finally:
            admin.dispose()

    def reset(self) -> None:
        """Empty every test database: delete the SQLite file; on PostgreSQL drop every
        schema (``public`` made again), as creating a database takes a checkpoint; on
        MariaDB/MySQL drop the database and create it again."""
        for database in self._databases.values():
            database.engine.dispose()
            if database.admin is None:
                _remove_sqlite(database.url)
            elif database.url.get_backend_name() == "postgresql":
                self._empty_postgresql(database)
            else:
                self._server("reset", database)

    def _empty_postgresql(self, database: _Database) -> None:
        engine = sa.create_engine(database.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                schemas = connection.execute(sa.text(_PG_SCHEMAS)).scalars().all()
                if schemas == ["public"] and not connection.execute(sa.text(_PG_ANYTHING)).first():
                    return  # empty already
                quote = connection.dialect.identifier_preparer.quote
                for schema in schemas:
                    connection.execute(sa.text(f"DROP SCHEMA {quote(schema)} CASCADE"))
                connection.execute(sa.text("CREATE SCHEMA public"))
        except sa.exc.SQLAlchemyError as exc:
            raise FlaskAlembicError(
                f"Could not empty the test database {database.url.database}: "
                f"{describe_exception(exc, url_secrets(database.url))}",
                hint="Close the connections a test left open to it.",
            ) from None
        finally:
            engine.dispose()

    def close(self) -> None:
        """Drop every test database and remove the temporary folder."""
        errors: list[BaseException] = []
        for database in self._databases.values():
            database.engine.dispose()
            if database.admin is not None:
                try:
                    self._server("drop", database)
                except FlaskAlembicError as exc:
                    errors.append(exc)
        self._databases.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        if errors:
            raise errors[0]


def _machine() -> str:
    """This machine and process namespace, in a few characters: the processes whose
    ids a test database's name holds can be looked for here, and only here."""
    import hashlib
    import socket

    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):  # Linux: the process namespace, and this boot
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    for path in ("/proc/sys/kernel/random/boot_id", "/etc/machine-id"):
        with contextlib.suppress(OSError):
            parts.append(Path(path).read_text().strip())
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


_MACHINE = _machine()


def _sweep_folders() -> None:
    """Remove the temporary folders of SQLite test files that a killed session of this
    machine left (``flask-alembic-PID-...``, the process gone)."""
    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            pid, _, _ = entry.name.removeprefix(FOLDER_PREFIX).partition("-")
            if entry.name.startswith(FOLDER_PREFIX) and pid.isdigit() and _ended(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _ended(pid: int) -> bool:
    """Whether no process ``pid`` runs here (one of another user's counts as running)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def refuse_other_databases(binds: Iterable[Bind], servers: Mapping[str, sa.URL]) -> None:
    """Refuse a bind tested on MariaDB/MySQL that names a schema: there, a schema is
    another database of the server, which the tests would change (a real one, maybe)."""
    for bind in binds:
        server = servers.get(bind.name, servers.get("*"))
        if server is None or backend_of(server) != "mysql":
            continue
        named = [
            bind.version_table_schema,
            *(t.schema for m in bind.metadatas for t in m.tables.values()),
        ]
        schemas = {schema for schema in named if schema is not None}
        if schemas:
            raise FlaskAlembicError(
                f"Bind {bind.name!r} names schema {', '.join(map(repr, sorted(schemas)))}, "
                "which on MariaDB/MySQL is another database on the server: its tests "
                "would create, change and drop tables there, outside the test database.",
                bind=bind.name,
                hint="Test this bind on PostgreSQL (where a schema lives in the test "
                "database) or SQLite; or leave it out of flask_alembic_servers.",
            )


def _check_driver(url: sa.URL) -> None:
    """Refuse, in one line, a server URL whose driver is not installed."""
    try:
        sa.create_engine(url, poolclass=sa.NullPool).dispose()
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise FlaskAlembicError(
            f"flask_alembic_servers: the driver of {safe_url(url)} is not installed "
            f"({type(exc).__name__}: {exc}).",
            hint="Install it (pip install 'Flask-Alembic[postgres]' or "
            "'Flask-Alembic[mysql]'), or name an installed one in the URL, e.g. "
            "mysql+pymysql://.",
        ) from None


def _left_behind(name: str) -> bool:
    """Whether test database ``name`` was made here by a process that has ended."""
    if not name.startswith(DATABASE_PREFIX):
        return False
    machine, _, rest = name.removeprefix(DATABASE_PREFIX).partition("_")
    pid, _, _ = rest.partition("_")
    return machine == _MACHINE and pid.isdigit() and _ended(int(pid))


#: PostgreSQL's schemas that migrations may have filled (all but the system's).
_PG_SCHEMAS = (
    "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', "
    "'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg\\_temp\\_%' "
    "AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' ORDER BY nspname"
)


#: Anything in ``public``: a relation (table, view, sequence, index), a type, a function.
_PG_ANYTHING = (
    "SELECT 1 FROM pg_class WHERE relnamespace = 'public'::regnamespace "
    "UNION ALL SELECT 1 FROM pg_type WHERE typnamespace = 'public'::regnamespace "
    "UNION ALL SELECT 1 FROM pg_proc WHERE pronamespace = 'public'::regnamespace LIMIT 1"
)


def _drop_statement(admin: sa.URL, name: str) -> str:
    if admin.get_backend_name() == "postgresql":
        return f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    return f"DROP DATABASE IF EXISTS {name}"


def _no_sync(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.close()


def _file_name(bind: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in bind) or "bind"


def _remove_sqlite(url: sa.URL) -> None:
    path = url.database
    if path:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)
