"""Testing an app's migrations: fresh databases per bind and the checks the pytest plugin runs.

Nothing here imports pytest: :mod:`flask_alembic.pytest_plugin` turns these checks into
tests, and a project may call them from any test runner. Every database touched here is
one this module created (a temporary SQLite file, or a new database on a server the
project named) and dropped again; the app's own URLs are only read, to know which binds
share a database.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask

from .errors import Command
from .errors import DEFAULT_GROUP
from .errors import FlaskAlembicError
from .errors import MigrationFailedError
from .identity import backend_of
from .identity import url_key
from .redact import describe_exception
from .redact import safe_url
from .redact import url_secrets

if TYPE_CHECKING:
    from alembic.script import Script

    from .api import AlembicAPI
    from .plan import MigrationResult
    from .plan import Step
    from .registry import Bind

__all__ = [
    "CheckFailed",
    "Databases",
    "Migrations",
    "Skipped",
    "Walk",
    "load_app",
    "module_of",
    "parse_servers",
]

_IRREVERSIBLE_HINT = (
    ". A revision that cannot be downgraded says so in its file, irreversible = "
    '"the reason", or sits below a revision named in flask_alembic_minimum_revisions.'
)

_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}

#: The prefix of every database this module creates on a server (dropped at the end).
DATABASE_PREFIX = "fa_test_"
#: The prefix of the temporary folder of a session's SQLite files, then its process id.
FOLDER_PREFIX = "flask-alembic-"
#: The message of the revision a hint suggests, quoted so that the command runs as shown.
_DESCRIBE = '"describe the change"'


class CheckFailed(AssertionError):
    """A migration check failed; the message names the bind, the revision and its file."""


@dataclass(frozen=True)
class Skipped:
    """A revision whose downgrade was not tested, and why."""

    bind: str
    revision: str
    path: str
    reason: str


def load_app(import_path: str, root: str | os.PathLike[str] | None = None) -> Flask:
    """The app that ``import_path`` names, as ``flask --app`` finds it: ``module``,
    ``module:app`` or ``module:create_app`` (a factory, called without arguments).

    ``root`` (the project's folder) is put first on ``sys.path`` for the import.
    """
    from flask.cli import ScriptInfo

    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    path = import_path.split(":", 1)[0]
    folder = root if root is not None and ("/" in path or path.endswith(".py")) else None
    try:
        with contextlib.chdir(folder or os.getcwd()):  # a path is relative to the project
            return ScriptInfo(app_import_path=import_path, set_debug_flag=False).load_app()
    except Exception as exc:
        raise FlaskAlembicError(
            f"Could not load the app {import_path!r}: {exc}",
            hint="Name a module and an app or factory in it, as 'flask --app' takes, "
            "e.g. flask_alembic_app = myapp:create_app.",
        ) from exc


def module_of(import_path: str, root: str | os.PathLike[str] | None = None) -> str:
    """The module ``import_path`` names, as ``flask --app`` reads it: ``pkg.mod:app`` is
    ``pkg.mod``, a path such as ``src/pkg:create_app`` is ``pkg`` (its folder on
    ``sys.path``)."""
    from flask.cli import prepare_import

    path = import_path.split(":", 1)[0]
    if "/" not in path and os.sep not in path and not path.endswith(".py"):
        return path
    with contextlib.chdir(root or os.getcwd()):
        return prepare_import(path)


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

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for db in self._databases.values() for s in url_secrets(db.url))

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
        this machine made (same host name and process namespace) for a process that no
        longer runs. Once per server; nothing else is looked at, nothing fails here."""
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


def _refuse_other_databases(binds: Iterable[Bind], servers: Mapping[str, sa.URL]) -> None:
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


# -- the harness ----------------------------------------------------------------------


class Migrations:
    """An app's migrations run on fresh test databases, with the Alembic API's calls
    made in an app context of their own and one revision graph for the whole session.

    While it is open, the extension's calls on this app (``alembic.upgrade()`` in a test)
    reach the test databases; :meth:`close` points them back at the app's own.
    """

    def __init__(
        self,
        app: Flask,
        *,
        servers: Mapping[str, sa.URL] | None = None,
        minimum_revisions: Iterable[str] = (),
        import_path: str | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        from .api import AlembicAPI

        alembic = app.extensions.get("alembic")
        if not isinstance(alembic, AlembicAPI):
            raise FlaskAlembicError(
                f"The app {app.name!r} has no Flask-Alembic extension.",
                hint="Call Alembic().init_app(app) in the app factory.",
            )
        self.app = app
        self.alembic: AlembicAPI = alembic
        with app.app_context():
            every = alembic.registry.all
        binds = [b for b in every if b.managed]
        urls = {b.name: b.engine.url for b in every}
        self.binds: tuple[str, ...] = tuple(b.name for b in binds)
        #: The app's own engines: no migration run here may reach them (see _guard).
        self._app_engines = list({id(b.engine): b.engine for b in every}.values())
        self._migrating = False
        unknown = sorted(set(servers or {}) - {"*"} - set(urls))
        if unknown:
            raise FlaskAlembicError(
                f"flask_alembic_servers names {', '.join(map(repr, unknown))}, which the app "
                f"has no bind for; its binds are {', '.join(map(repr, urls))}.",
                bind=unknown[0],
                hint="Spell the bind as the app names it, or write * for every bind.",
            )
        _refuse_other_databases(binds, servers or {})
        keys = {b.name: url_key(b.engine.url, b.engine) for b in every}
        self.databases = Databases(urls, servers or {}, keys=keys)
        try:
            alembic._use_engines(app, self.databases.engines)
            self._tables = _bind_tables(alembic, app)
            for engine in self._app_engines:
                # Before a new connection is made (an SQLite file would be created), and
                # when a pooled one is handed out.
                sa.event.listen(engine, "do_connect", self._guard)
                sa.event.listen(engine, "checkout", self._guard)
        except BaseException:
            self.databases.close()
            raise
        self._backends = {
            name: (backend_of(url), backend_of(self.databases.url(name)))
            for name, url in urls.items()
        }
        self._minimum = tuple(minimum_revisions)
        self._upgrade: tuple[MigrationResult | None, str | None] | None = None
        self._walks: dict[str, Walk] = {}
        #: Whether the up/down walk also compares schemas (for the no-trace check, which
        #: shares it); the plugin turns it off when that test is not run.
        self.compare_schemas = True
        #: SQLite tables already reflected, by their schema text (see :func:`_snapshot`).
        self._reflected: dict[Any, Any] = {}
        self._registration: dict[str, list[str]] | None = None
        #: Where the app came from, for the registration check's own process.
        self.import_path = import_path
        self.root = root

    def close(self) -> None:
        """Point the app back at its own databases and drop the test databases."""
        try:
            for engine in self._app_engines:
                for event in ("do_connect", "checkout"):
                    if sa.event.contains(engine, event, self._guard):
                        sa.event.remove(engine, event, self._guard)
            self.alembic._use_engines(self.app, None)
        finally:
            self.databases.close()

    def _guard(self, *args: Any) -> None:
        """Refuse the app's own database while a migration runs here: a revision that
        reaches it (through Flask-SQLAlchemy's ``db.session``, or an engine of its own
        from the app) would change the real data, not the test database's."""
        if self._migrating:
            raise FlaskAlembicError(
                "A migration reached the app's own database through the app's engine "
                "(db.session or db.engine?), not the test database it runs on.",
                hint="In a revision, use op.get_bind() (or alembic.context) for SQL and "
                "data, never the app's session or engines.",
            )

    @contextlib.contextmanager
    def _running(self) -> Iterator[AlembicAPI]:
        """An app context for a migration, with the app's own engines refused."""
        with self._context() as alembic:
            self._migrating = True
            try:
                yield alembic
            finally:
                self._migrating = False

    def __enter__(self) -> Migrations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _context(self) -> Iterator[AlembicAPI]:
        with self.app.app_context():
            yield self.alembic

    # -- moving the databases -----------------------------------------------------------

    def reset(self) -> None:
        """Empty every bind's test database."""
        self._upgrade = None
        self.databases.reset()

    def upgrade(
        self, target: str | Sequence[str] = "heads", bind: str | None = None
    ) -> MigrationResult:
        """Upgrade (every bind, or ``bind``) to ``target``, its dependencies included.

        No migration lock is taken: no other process knows the test databases.
        """
        with self._running() as alembic:
            return alembic.upgrade(target, bind, with_dependencies=True, lock=False)

    def downgrade(self, target: str | Sequence[str], bind: str) -> MigrationResult:
        """Downgrade ``bind`` to ``target`` (``"base"``, an id or several ids)."""
        with self._running() as alembic:
            return alembic.downgrade(target, bind, lock=False)

    def migrate_to(self, target: str) -> MigrationResult:
        """Bring one bind to a revision, up or down: ``"analytics@abc123"``, ``"abc123"``
        (its bind is found), ``"analytics@head"``, ``"analytics@base"``, or a step
        count, ``"analytics@+1"`` (the next revision) or ``"analytics@-1"``."""
        bind, revision = self._split(target)
        if revision == "base":
            return self.downgrade("base", bind)
        if revision in ("head", "heads"):
            return self.upgrade("heads", bind)
        if revision[:1] in "+-" and revision[1:].isdigit():
            move = self.upgrade if revision[0] == "+" else self.downgrade
            return move(f"{bind}@{revision}", bind)
        current = self.current(bind)
        with self._context() as alembic:
            full = alembic.show(revision, bind).revision
            below = {
                rev.revision
                for head in current
                for rev in alembic.script.revision_map.iterate_revisions(head, "base")
            }
        if full in below:
            return self.downgrade(full, bind)
        return self.upgrade(full, bind)

    def _split(self, target: str) -> tuple[str, str]:
        name, sep, revision = target.partition("@")
        if sep and name in self.binds:
            return name, revision
        if sep:
            raise FlaskAlembicError(
                f"migrate_to({target!r}): there is no bind {name!r}; the binds are "
                f"{', '.join(map(repr, self.binds))}.",
                bind=name,
                hint="Write BIND@REVISION, e.g. migrate_to('default@head').",
            )
        with self._context() as alembic:
            return alembic.bind_of(target), target

    def current(self, bind: str) -> tuple[str, ...]:
        """The revisions ``bind``'s test database is at."""
        with self._context() as alembic:
            return tuple(s.revision for s in alembic.current(bind))

    # -- reaching the data --------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, bind: str) -> Iterator[sa.Connection]:
        """A connection to ``bind``'s test database, in a transaction committed at the end."""
        with self.databases.by_bind[bind].engine.begin() as connection:
            yield connection

    def table(self, bind: str, name: str, schema: str | None = None) -> sa.Table:
        """``name`` as it is in ``bind``'s test database now (reflected)."""
        with self.connect(bind) as connection:
            try:
                return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
            except sa.exc.NoSuchTableError:
                pass
        at = ", ".join(self.current(bind)) or "base (no revision applied)"
        raise FlaskAlembicError(
            f"Bind {bind!r} has no table {name!r} at {at}.",
            bind=bind,
            hint=f"Bring the bind to a revision that has it first: migrate_to('{bind}@REVISION').",
        )

    def insert(
        self, bind: str, table: str, rows: Iterable[Mapping[str, Any]], schema: str | None = None
    ) -> None:
        """Insert ``rows`` into ``table`` as the table is at the current revision; a key
        that is no column of it is refused (rather than silently left out)."""
        reflected = self.table(bind, table, schema)
        values = [dict(row) for row in rows]
        unknown = sorted({key for row in values for key in row} - set(reflected.columns.keys()))
        if unknown:
            at = ", ".join(self.current(bind)) or "base"
            raise FlaskAlembicError(
                f"Table {table!r} of bind {bind!r} has no column "
                f"{', '.join(map(repr, unknown))} at {at}; its columns are "
                f"{', '.join(reflected.columns.keys())}.",
                bind=bind,
                hint="Spell the rows' keys as the table's columns at this revision.",
            )
        with self.connect(bind) as connection:
            connection.execute(reflected.insert(), values)

    def rows(self, bind: str, table: str, schema: str | None = None) -> list[dict[str, Any]]:
        """Every row of ``table`` in ``bind``'s test database, ordered by its primary key."""
        reflected = self.table(bind, table, schema)
        order = list(reflected.primary_key.columns) or list(reflected.columns)
        with self.connect(bind) as connection:
            result = connection.execute(sa.select(reflected).order_by(*order))
            return [dict(row._mapping) for row in result]

    # -- the checks ---------------------------------------------------------------------

    def _describe(self, revision: str) -> str:
        with self._context() as alembic:
            script = alembic.script.get_revision(revision)
        return f"{revision} ({_path(script)})"

    def _elsewhere(self, bind: str) -> str:
        """A note for a failure on SQLite of a bind the app keeps on a server."""
        app, test = self._backends[bind]
        if test != "sqlite" or app == "sqlite":
            return ""
        return (
            f" (bind {bind!r} is tested on SQLite, the app uses {_NAMES.get(app, app)}: "
            "name a server for it in flask_alembic_servers)"
        )

    def _command(self, *args: str) -> str:
        """A command of the app's group, as a hint spells it (quoted for a shell)."""
        import shlex

        group = getattr(self.alembic, "command_name", "") or DEFAULT_GROUP
        return Command(*(a if a.startswith('"') else shlex.quote(a) for a in args)).render(group)

    def check_single_head(self, bind: str) -> None:
        """``bind``'s history has exactly one head."""
        with self._context() as alembic:
            heads = alembic.heads(bind)
        if len(heads) == 1:
            return
        if not heads:
            raise CheckFailed(
                f"bind {bind!r} has no revisions. Write its first: "
                f"{self._command('revision', '--bind', bind, 'initial')}."
            )
        listed = "; ".join(f"{s.revision} ({_path(s)})" for s in heads)
        raise CheckFailed(
            f"bind {bind!r} has {len(heads)} heads: {listed}. Merge them: "
            f"{self._command('merge', '--bind', bind, 'heads')}."
        )

    def upgrade_from_empty(self) -> tuple[MigrationResult | None, str | None]:
        """Every bind upgraded from empty databases to its heads, together, in the
        planner's order; run once, the result kept."""
        if self._upgrade is None:
            self.reset()
            try:
                self._upgrade = (self.upgrade(), None)
            except MigrationFailedError as exc:
                self._upgrade = (exc.result, str(exc))
            except FlaskAlembicError as exc:
                self._upgrade = (None, str(exc))
        return self._upgrade

    def check_upgrade(self, bind: str) -> None:
        """``bind`` reached its heads when every bind was upgraded from empty."""
        result, error = self.upgrade_from_empty()
        if result is None:
            raise CheckFailed(f"bind {bind!r}: the upgrade from empty databases failed: {error}")
        if result.failed is not None:
            first = result.failed
            if first.bind == bind:
                raise CheckFailed(_step_failure(bind, first, result.error) + self._elsewhere(bind))
            mine = next((r for r in result.binds if r.bind == bind), None)
            if mine is None or mine.failed is None:
                heads = self._heads(bind)
                if mine is not None and set(mine.after) == set(heads):
                    return
                raise CheckFailed(
                    f"bind {bind!r} was not upgraded to its heads: the upgrade stopped "
                    f"when bind {first.bind!r} failed at revision {first.revision} "
                    f"({_relative(first.path or '?')}): {result.error}"
                )
            raise CheckFailed(_step_failure(bind, mine.failed, mine.error) + self._elsewhere(bind))
        if error is not None:
            raise CheckFailed(f"bind {bind!r}: the upgrade from empty databases failed: {error}")

    def _heads(self, bind: str) -> tuple[str, ...]:
        with self._context() as alembic:
            return tuple(s.revision for s in alembic.heads(bind))

    def check_models_match(self, bind: str) -> None:
        """After the upgrade, autogenerate proposes nothing for ``bind``."""
        self.check_upgrade(bind)
        from alembic.autogenerate import render_python_code

        with self._context() as alembic:
            if not alembic.registry.select(bind)[0].has_models:
                return
            ops = alembic.produce_migrations(bind).upgrade_ops
            if ops is None or ops.is_empty():
                return
            code = render_python_code(ops)
        written = "\n".join(
            f"    {line.strip()}"
            for line in code.splitlines()
            if line.strip() and not line.strip().startswith("#")
        )
        heads = ", ".join(self._describe(h) for h in self._heads(bind))
        where = (
            f"the database upgraded to {heads}" if heads else "its empty database (no revisions)"
        )
        raise CheckFailed(
            f"bind {bind!r}: the models differ from {where}; "
            f"autogenerate would write:\n{written}\n"
            f"Write a revision: {self._command('revision', '--bind', bind, _DESCRIBE)}."
        )

    def walk(self, bind: str, *, compare: bool = True) -> Walk:
        """Every revision of ``bind`` upgraded, downgraded and upgraded again, one at a
        time from empty databases; with ``compare``, the schema compared around each
        downgrade. Kept: walked again only to compare what was not compared."""
        walk = self._walks.get(bind)
        if walk is None or (compare and not walk.compared):
            walk = self._walks[bind] = self._walk(bind, compare)
        return walk

    def _walk(self, bind: str, compare: bool) -> Walk:
        walk = Walk(bind, compared=compare)
        with self._context() as alembic:
            scripts = list(reversed(alembic.log(bind=bind)))
            tested = _minimum_filter(scripts, self._minimum, alembic)
        self.reset()
        for script in scripts:
            rev = script.revision
            reason = _irreversible(script)
            try:
                if rev not in tested:
                    walk.skipped.append(Skipped(bind, rev, _path(script), tested.reason(rev)))
                    self.upgrade(rev, bind)
                    continue
                if reason is not None:
                    walk.skipped.append(
                        Skipped(bind, rev, _path(script), f"irreversible: {reason}")
                    )
                    self.upgrade(rev, bind)
                    continue
                self._dependencies_of(script, bind)  # theirs are not this revision's
                schema = self.schema(bind) if compare else {}
                self.upgrade(rev, bind)
                walk.step = "downgrade"
                self.downgrade(_below(script), bind)
                after = self.schema(bind) if compare else {}
                if after != schema:
                    walk.traces.append((rev, _path(script), _schema_diff(schema, after)))
                walk.step = "upgrade again"
                self.upgrade(rev, bind)
                walk.step = "upgrade"
            except FlaskAlembicError as exc:
                walk.failure = (rev, _path(script), walk.step, _error_text(exc))
                return walk
            walk.checked.append(rev)
        return walk

    def _dependencies_of(self, script: Script, bind: str) -> None:
        """Upgrade the other binds' revisions ``script`` depends on, so that what they
        create is there before the schema is read (a shared database would show it)."""
        from .plan import to_tuple

        for dependency in to_tuple(script.dependencies):
            with self._context() as alembic:
                found = [s.revision for s in alembic.script.get_revisions(dependency) if s]
                owners = {rev: alembic.bind_of(rev) for rev in found}
            for rev, owner in owners.items():
                if owner != bind:
                    self.upgrade(rev, owner)

    def check_up_down(self, bind: str) -> list[Skipped]:
        """Each revision of ``bind`` upgrades, downgrades and upgrades again."""
        walk = self.walk(bind, compare=self.compare_schemas)
        if walk.failure is not None:
            rev, path, step, error = walk.failure
            raise CheckFailed(
                f"bind {bind!r}: revision {rev} ({path}) failed to {step} "
                f"(up/down/up, one revision at a time from empty): {error}"
                + self._elsewhere(bind)
                + (_IRREVERSIBLE_HINT if step == "downgrade" else "")
            )
        return walk.skipped

    def check_no_trace(self, bind: str) -> list[Skipped]:
        """Downgrading each revision of ``bind`` gives back the schema from before it."""
        walk = self.walk(bind)
        if walk.traces:
            rev, path, diff = walk.traces[0]
            more = (
                f" ({len(walk.traces) - 1} more revisions leave traces)"
                if len(walk.traces) > 1
                else ""
            )
            raise CheckFailed(
                f"bind {bind!r}: downgrading revision {rev} ({path}) does not give back the "
                f"schema from before it{more}:\n{diff}"
            )
        if walk.failure is not None:
            rev, path, _, _ = walk.failure
            raise CheckFailed(
                f"bind {bind!r}: checked up to revision {rev} ({path}) only: it failed "
                "the up/down walk (see the up/down test)."
            )
        return walk.skipped

    def schema(self, bind: str) -> dict[str, Any]:
        """What ``bind``'s test database holds: tables, columns, keys, indexes, views
        (the version table left out), as plain values to compare."""
        with self._context() as alembic:
            b = alembic.registry.select(bind)[0]
        schemas = {None} | {t.schema for m in b.metadatas for t in m.tables.values()}
        with self.connect(bind) as connection:
            return _snapshot(
                connection, schemas, (b.version_table_schema, b.version_table), self._reflected
            )

    def registration(self, packages: Iterable[str]) -> dict[str, list[str]]:
        """Tables that importing every module of ``packages`` adds to a bind's models:
        models the app never imports, so its metadata does not know them. Once.

        With :attr:`import_path` set (the app named in the ini file) this runs in a new
        Python process, where nothing but the app has been imported; otherwise here,
        against the tables the app had when this object was made.
        """
        if self._registration is None:
            if self.import_path is not None:
                self._registration = registration_in_subprocess(
                    self.import_path, self.root, packages
                )
            else:
                try:
                    self._registration = unregistered_tables(
                        self.app, self.alembic, self._tables, packages
                    )
                except Exception as exc:
                    raise CheckFailed(
                        _import_failure(packages, f"{type(exc).__name__}: {exc}")
                    ) from exc
        return self._registration

    def check_models_registered(self, bind: str, packages: Iterable[str]) -> None:
        """No model of ``packages`` adds a table to ``bind`` only once its module is imported."""
        missing = self.registration(packages).get(bind)
        if missing:
            heads = ", ".join(self._describe(h) for h in self._heads(bind)) or "no revisions"
            raise CheckFailed(
                f"bind {bind!r} (head {heads}): {'; '.join(missing)}, but the app never "
                "imports it, so autogenerate does not see it (and would drop its table). "
                "Import the module where the app is created."
            )


@dataclass
class Walk:
    """What walking a bind's revisions up, down and up again found."""

    bind: str
    #: Whether the schema was compared around each downgrade (:attr:`traces`).
    compared: bool = True
    checked: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Revisions whose downgrade left the schema changed: (revision, path, difference).
    traces: list[tuple[str, str, str]] = field(default_factory=list)
    #: The revision that failed: (revision, path, step, error).
    failure: tuple[str, str, str, str] | None = None
    step: str = "upgrade"


class _Tested:
    """The revisions whose downgrade is tested: those from each minimum on."""

    def __init__(self, ids: set[str], reasons: dict[str, str]) -> None:
        self.ids = ids
        self.reasons = reasons

    def __contains__(self, rev: object) -> bool:
        return rev in self.ids

    def reason(self, rev: str) -> str:
        return self.reasons.get(rev, "")


def _minimum_filter(scripts: list[Script], minimum: Sequence[str], alembic: AlembicAPI) -> _Tested:
    ids = {s.revision for s in scripts}
    reasons: dict[str, str] = {}
    for wanted in minimum:
        try:
            floor = alembic.script.get_revision(wanted)
        except Exception as exc:  # Alembic's own lookup errors (unknown or ambiguous id)
            raise CheckFailed(
                f"flask_alembic_minimum_revisions names {wanted!r}, which is no revision: {exc}"
            ) from None
        if floor is None or floor.revision not in ids:
            continue  # another bind's
        below = {
            r.revision
            for r in alembic.script.revision_map.iterate_revisions(floor.revision, "base")
        } - {floor.revision}
        for rev in below & ids:
            ids.discard(rev)
            reasons[rev] = f"below the minimum revision {floor.revision}"
    return _Tested(ids, reasons)


def _below(script: Script) -> str:
    """The downgrade target that takes away ``script`` alone: one step down its branch
    (not its siblings'), or for a merge one of its parents (the others stay: they are
    not below it)."""
    from .plan import to_tuple

    parents = to_tuple(script.down_revision)
    if len(parents) > 1:
        return str(parents[0])
    return f"{script.revision}@-1"


def _irreversible(script: Script) -> str | None:
    """The reason a revision gives for not being downgradable (``irreversible = "..."``)."""
    value = getattr(script.module, "irreversible", None)
    if value is None or value is False:
        return None
    return value if isinstance(value, str) and value else "marked irreversible"


def _path(script: Script) -> str:
    try:
        return os.path.relpath(script.path)
    except ValueError:
        return script.path


def _step_failure(bind: str, step: Step, error: str | None) -> str:
    return (
        f"bind {bind!r}: upgrading revision {step.revision} ({_relative(step.path or '?')}) "
        f"from an empty database failed: {error}"
    )


def _error_text(exc: FlaskAlembicError) -> str:
    result = getattr(exc, "result", None)
    if result is not None and result.error:
        return str(result.error)
    return str(exc)


def _snapshot(
    connection: sa.Connection,
    schemas: Iterable[str | None],
    version: tuple[str | None, str],
    cache: dict[Any, Any],
) -> dict[str, Any]:
    """Every table (columns, keys, indexes, checks, comment), view, sequence and enum
    type of ``schemas`` as plain values; on PostgreSQL every schema, function and
    extension too.

    Tables are reflected with the inspector's ``get_multi_*`` calls (a few queries for
    all tables on PostgreSQL). On SQLite a table whose schema text (its ``CREATE`` and
    its indexes' in ``sqlite_master``) is the one seen before is not reflected again:
    ``cache`` keeps what it gave.
    """
    inspector = sa.inspect(connection)
    found: dict[str, Any] = {}
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        # Every schema of the database counts, not only the models': a downgrade must
        # drop the schema (and what is in it) that its upgrade made.
        default = inspector.default_schema_name
        others = [
            name
            for name in inspector.get_schema_names()
            if name != default and name != "information_schema" and not name.startswith("pg_")
        ]
        found.update({f"schema {name}": "present" for name in others})
        schemas = {None, *others}
        found.update(_pg_routines(connection))
    for schema in sorted(schemas, key=lambda s: s or ""):
        if schema is not None and not inspector.has_schema(schema):
            continue  # not created (yet): nothing in it
        names = [
            name
            for name in inspector.get_table_names(schema=schema)
            if not (name == version[1] and schema in (None, version[0]))
        ]
        texts = _fingerprints(connection, schema)
        if texts is None:  # no cheap way to tell a table unchanged: reflect them all
            texts = {}
            cache.clear()
        wanted = [n for n in names if (schema, n, texts.get(n)) not in cache]
        if wanted:
            for name, detail in _reflect(inspector, schema, wanted).items():
                cache[(schema, name, texts.get(name))] = detail
        for name in sorted(names):
            key = f"{schema}.{name}" if schema else name
            found[f"table {key}"] = cache[(schema, name, texts.get(name))]
        prefix = f"{schema}." if schema else ""
        with contextlib.suppress(NotImplementedError):
            for view in inspector.get_view_names(schema=schema):
                found[f"view {prefix}{view}"] = True
        with contextlib.suppress(NotImplementedError):
            for sequence in inspector.get_sequence_names(schema=schema):
                found[f"sequence {prefix}{sequence}"] = True
        get_enums: Callable[..., list[dict[str, Any]]] | None
        get_enums = getattr(inspector, "get_enums", None)
        if get_enums is not None:
            for enum in get_enums(schema=schema or "public"):
                found[f"type {prefix}{enum['name']}"] = tuple(enum["labels"])
    return found


#: Per table, everything MariaDB/MySQL say about its definition, in four queries.
_MYSQL_FINGERPRINT = (
    "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, "
    "COLUMN_DEFAULT, EXTRA, COLLATION_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
    "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART "
    "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION, COLUMN_NAME, "
    "REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME "
    "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
    "SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE "
    "FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE())",
)


#: PostgreSQL's functions, procedures and extensions outside the system's schemas.
_PG_ROUTINES = (
    "SELECT 'function ' || n.nspname || '.' || p.proname || "
    "'(' || pg_get_function_identity_arguments(p.oid) || ')', md5(pg_get_functiondef(p.oid)) "
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e' "
    "WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' "
    "AND p.prokind IN ('f', 'p') AND d.objid IS NULL "
    "UNION ALL SELECT 'extension ' || extname, extversion FROM pg_extension "
    "WHERE extname <> 'plpgsql'"
)

#: Per table of a PostgreSQL schema, a digest of its columns (with defaults), its
#: constraints, its indexes and its comment, as the catalogs give them.
_PG_FINGERPRINT = (
    "SELECT c.relname, md5(concat_ws('|', "
    "(SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' "
    "|| a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' "
    "|| coalesce(col_description(c.oid, a.attnum), ''), ',' ORDER BY a.attname) "
    "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
    "AND d.adnum = a.attnum WHERE a.attrelid = c.oid AND a.attnum > 0 "
    "AND NOT a.attisdropped), "
    "(SELECT string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid), ',' "
    "ORDER BY k.conname) FROM pg_constraint k WHERE k.conrelid = c.oid), "
    "(SELECT string_agg(pg_get_indexdef(x.indexrelid), ',' ORDER BY x.indexrelid::regclass::text) "
    "FROM pg_index x WHERE x.indrelid = c.oid), "
    "obj_description(c.oid, 'pg_class'))) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname = COALESCE(:schema, current_schema())"
)


def _pg_routines(connection: sa.Connection) -> dict[str, Any]:
    return {str(name): str(digest) for name, digest in connection.execute(sa.text(_PG_ROUTINES))}


def _fingerprints(connection: sa.Connection, schema: str | None) -> dict[str, Any] | None:
    """Per table, a value that changes whenever its definition does, read in a few
    queries: SQLite's schema text (``sqlite_master``: the table's ``CREATE`` and its
    indexes'), PostgreSQL's catalogs (one query), MariaDB/MySQL's ``information_schema``
    rows. ``None`` elsewhere."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    quote = connection.dialect.identifier_preparer.quote
    if connection.dialect.name == "sqlite":
        master = f"{quote(schema)}.sqlite_master" if schema else "sqlite_master"
        for row in connection.exec_driver_sql(f"SELECT tbl_name, type, name, sql FROM {master}"):
            rows.setdefault(row[0], []).append(tuple(row[1:]))
    elif connection.dialect.name == "postgresql":
        found = connection.execute(sa.text(_PG_FINGERPRINT), {"schema": schema})
        return {str(name): str(digest) for name, digest in found}
    elif connection.dialect.name in ("mysql", "mariadb"):
        for number, query in enumerate(_MYSQL_FINGERPRINT):
            for row in connection.execute(sa.text(query), {"schema": schema}):
                rows.setdefault(row[0], []).append((number, *map(str, row[1:])))
    else:
        return None
    return {name: tuple(sorted(found, key=repr)) for name, found in rows.items()}


def _reflect(inspector: sa.Inspector, schema: str | None, names: list[str]) -> dict[str, Any]:
    def multi(method: Callable[..., Mapping[tuple[str | None, str], Any]]) -> dict[str, Any]:
        return {key[1]: value for key, value in method(schema=schema, filter_names=names).items()}

    columns = multi(inspector.get_multi_columns)
    keys = multi(inspector.get_multi_pk_constraint)
    foreign = multi(inspector.get_multi_foreign_keys)
    indexes = multi(inspector.get_multi_indexes)
    uniques = multi(inspector.get_multi_unique_constraints)
    checks: dict[str, Any] = {}
    comments: dict[str, Any] = {}
    with contextlib.suppress(NotImplementedError):
        checks = multi(inspector.get_multi_check_constraints)
    with contextlib.suppress(NotImplementedError):
        comments = multi(inspector.get_multi_table_comment)
    return {
        name: _table_detail(
            columns.get(name, ()),
            keys.get(name) or {},
            foreign.get(name, ()),
            indexes.get(name, ()),
            uniques.get(name, ()),
        )
        | {
            f"check {c.get('name') or c['sqltext']}": str(c["sqltext"])
            for c in checks.get(name, ())
        }
        | ({"comment": comments[name]["text"]} if (comments.get(name) or {}).get("text") else {})
        for name in names
    }


def _table_detail(
    columns: Iterable[Mapping[str, Any]],
    key: Mapping[str, Any],
    foreign: Iterable[Mapping[str, Any]],
    indexes: Iterable[Mapping[str, Any]],
    uniques: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """One table as named parts to compare: the order of its columns does not count (a
    column dropped and added back comes last, the same column)."""
    detail: dict[str, Any] = {}
    for c in columns:
        default = c.get("default")
        detail[f"column {c['name']}"] = (
            f"{c['type']}, {'NULL' if c['nullable'] else 'NOT NULL'}"
            + (f", DEFAULT {default}" if default is not None else "")
        )
    if key.get("constrained_columns"):
        detail["primary key"] = f"({', '.join(key['constrained_columns'])})"
    for f in foreign:
        referred = (
            f"{f['referred_schema']}.{f['referred_table']}"
            if f.get("referred_schema")
            else f["referred_table"]
        )
        detail[
            f"foreign key ({', '.join(f['constrained_columns'])}) -> "
            f"{referred} ({', '.join(f['referred_columns'])})"
        ] = "present"
    for i in indexes:
        columns_of = ", ".join(map(str, i["column_names"]))
        detail[f"index {i['name']}"] = f"{'UNIQUE ' if i['unique'] else ''}({columns_of})"
    for u in uniques:
        columns_of = ", ".join(map(str, u["column_names"]))
        detail[f"unique constraint {u['name'] or f'({columns_of})'}"] = f"({columns_of})"
    return detail


def _schema_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What differs, object by object; inside a table, part by part."""
    lines: list[str] = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            lines.append(f"  + {key} is left behind")
        elif key not in after:
            lines.append(f"  - {key} is gone")
        elif before[key] != after[key]:
            old, new = before[key], after[key]
            lines.append(f"  ~ {key}:")
            if not isinstance(old, dict):
                lines.append(f"      {old} before, {new} after")
                continue
            for part in sorted(set(old) | set(new)):
                if part not in old:
                    lines.append(f"      + {part} ({new[part]}) is left behind")
                elif part not in new:
                    lines.append(f"      - {part} ({old[part]}) is gone")
                elif old[part] != new[part]:
                    lines.append(f"      ~ {part}: {old[part]} before, {new[part]} after")
    return "\n".join(lines)


def _bind_tables(alembic: AlembicAPI, app: Flask) -> dict[str, set[str]]:
    with app.app_context():
        return {b.name: {k for m in b.metadatas for k in m.tables} for b in alembic.registry.all}


def unregistered_tables(
    app: Flask, alembic: AlembicAPI, before: Mapping[str, set[str]], packages: Iterable[str]
) -> dict[str, list[str]]:
    """Per bind, the tables importing every module of ``packages`` adds to its metadata."""
    with app.app_context():
        metadatas = {b.name: b.metadatas for b in alembic.registry.all}
    modules_before = set(sys.modules)
    for package in packages:
        _import_all(package)
    new_modules = [sys.modules[n] for n in set(sys.modules) - modules_before if n in sys.modules]
    found: dict[str, list[str]] = {}
    for name, items in metadatas.items():
        for metadata in items:
            for key, table in metadata.tables.items():
                if key not in before.get(name, set()):
                    found.setdefault(name, []).append(_declared_by(table, new_modules))
    return found


def registration_in_subprocess(
    import_path: str, root: str | os.PathLike[str] | None, packages: Iterable[str]
) -> dict[str, list[str]]:
    """:func:`unregistered_tables` for the app ``import_path`` names, in a new process."""
    import json
    import subprocess

    command = [
        sys.executable,
        "-c",
        "from flask_alembic.testing import _registration_main; _registration_main()",
        import_path,
        str(root or ""),
        *packages,
    ]
    # The modules this process can import (pytest's pythonpath and rootdir included).
    path = [entry for entry in sys.path if entry]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CheckFailed(_import_failure(packages, last))
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _import_failure(packages: Iterable[str], error: str) -> str:
    return (
        f"importing every module of {', '.join(packages)} (to find models the app never "
        f"imports) failed: {error}. Name the packages that hold models in "
        "flask_alembic_models."
    )


def _registration_main() -> None:
    """The registration check's own process: ``APP ROOT PACKAGE...`` in ``sys.argv``."""
    import json

    import_path, root, *packages = sys.argv[1:]
    app = load_app(import_path, root or None)
    alembic = app.extensions["alembic"]
    before = _bind_tables(alembic, app)
    with contextlib.redirect_stdout(sys.stderr):
        found = unregistered_tables(app, alembic, before, packages)
    print(json.dumps(found))


def _import_all(package: str) -> None:
    """Import ``package`` and every module under it (not ``__main__`` ones); a module
    that fails to import is named in the error."""

    def load(name: str) -> Any:
        try:
            return importlib.import_module(name)
        except Exception as exc:
            raise ImportError(f"module {name}: {type(exc).__name__}: {exc}") from exc

    def failed(name: str) -> None:
        load(name)  # walk_packages could not import a package: say which, and why

    paths = getattr(load(package), "__path__", None)
    if paths is None:
        return
    for info in pkgutil.walk_packages(paths, prefix=f"{package}.", onerror=failed):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            load(info.name)


def _declared_by(table: sa.Table, modules: Iterable[Any]) -> str:
    """``table 'x' (model pkg.mod.Model, in pkg/mod.py)`` for a table a new module declared."""
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and getattr(value, "__table__", None) is table:
                where = getattr(module, "__file__", None) or module.__name__
                return (
                    f"table {table.name!r} of model {module.__name__}.{value.__name__} "
                    f"(in {_relative(where)}) is declared"
                )
    return f"table {table.name!r} is declared"


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path
