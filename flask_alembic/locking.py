"""Per-database migration locks, so concurrent ``upgrade`` runs take turns.

- PostgreSQL: a session-level advisory lock, on a connection of its own.
- MySQL / MariaDB: ``GET_LOCK`` on a connection of its own.
- SQLite: an exclusive ``flock`` on a lock file beside the database file.
- In-memory SQLite and other dialects: no lock (nothing else can see the database, or
  there is no portable way to take one).

Every lock dies with its holder: the server drops a session's locks when its connection
goes away, and the kernel drops a file lock when its process dies, SIGKILL included.

That is also how a server lock can be lost under a running migration: a server, proxy or
firewall closing the lock's idle connection. So the lock's connection comes from a pool
of its own (the app's pool may have no slot to spare), the server's idle timeouts are
turned off for its session, a keepalive thread pings it, and :meth:`HeldLocks.check`
asks the server, before each step and before each version row is written, whether this
session still holds the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from contextlib import ExitStack

import sqlalchemy as sa

from . import lockfile
from .errors import LockLostError
from .errors import LockTimeoutError
from .identity import DatabaseIdentity
from .identity import Identities
from .registry import Bind

__all__ = [
    "DEFAULT_TIMEOUT",
    "KEEPALIVE_INTERVAL",
    "HeldLocks",
    "lock_binds",
    "lock_holder",
    "lock_name",
]

#: Seconds to wait for another process's migration before giving up.
DEFAULT_TIMEOUT = 300.0
#: Seconds between two pings of a held lock's connection.
KEEPALIVE_INTERVAL = 5.0
_SERVERS = frozenset({"postgresql", "mysql"})


def lock_name(bind: Bind, identity: DatabaseIdentity) -> str:
    """A stable name for the lock guarding ``bind``'s version table.

    A server's locks live in that server, so the name needs only what names the version
    table there (the database, the schema it resolves to, the table), as the server says
    it: processes that spell the URL differently, or connect as roles that the server
    answers differently, still take the same lock.
    """
    key = identity.lock_key(bind.version_table_schema, bind.version_table)
    text = "|".join(key)
    return "flask_alembic:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class _ServerLock:
    """A lock held by a server session: its connection, checked and kept alive.

    ``mutex`` keeps the keepalive thread and the checks from using the connection at once.
    """

    __slots__ = ("connection", "done", "lost", "mutex", "params", "query")

    def __init__(self, connection: sa.Connection, query: str, params: dict[str, object]) -> None:
        self.connection = connection
        self.query = sa.text(query)
        self.params = params
        self.mutex = threading.Lock()
        #: Whether the server no longer counts this session as the holder.
        self.lost = False
        #: Whether the lock was released: nothing may use the connection any more.
        self.done = False

    def held(self) -> bool:
        """Whether the server says this session still holds the lock.

        A connection that fails means the lock is lost: the server drops a session's
        locks with its connection, and a reconnected session holds none.
        """
        with self.mutex:
            if not self.lost and not self.done:
                try:
                    held = bool(self.connection.execute(self.query, self.params).scalar())
                    self.connection.commit()
                except sa.exc.SQLAlchemyError:
                    held = False
                self.lost = not held
            return not self.lost

    def ping(self) -> None:
        """Use the connection, so that nothing between here and the server sees it idle."""
        with self.mutex:
            if self.lost or self.done:
                return
            try:
                self.connection.execute(sa.text("SELECT 1"))
                self.connection.commit()
            except sa.exc.SQLAlchemyError:
                # The next check asks the server, on a new connection if need be.
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    self.connection.rollback()

    def release(self, statement: str, params: dict[str, object]) -> None:
        """Release the lock; one whose connection is gone was released by the server."""
        with self.mutex:
            self.done = True
            if self.lost:
                return
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.connection.execute(sa.text(statement), params)
                self.connection.commit()


class HeldLocks(AbstractContextManager["HeldLocks"]):
    """The migration locks a run holds; :meth:`check` says whether a bind's still is.

    While server locks are held, a daemon thread pings their connections every
    :data:`KEEPALIVE_INTERVAL` seconds. File locks cannot be lost and are not checked.
    """

    def __init__(self) -> None:
        self._by_bind: dict[str, _ServerLock] = {}
        self._locks: list[_ServerLock] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self, bind: str) -> None:
        """Raise :class:`LockLostError` unless ``bind``'s server lock is still held.

        A bind with a file lock, or none, has nothing to check.
        """
        lock = self._by_bind.get(bind)
        if lock is not None and not lock.held():
            raise LockLostError.for_bind(bind)

    def _add(self, binds: Iterable[str], lock: _ServerLock) -> None:
        self._by_bind.update(dict.fromkeys(binds, lock))
        self._locks.append(lock)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._keep_alive, name="flask-alembic-lock-keepalive", daemon=True
            )
            self._thread.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(KEEPALIVE_INTERVAL):
            for lock in tuple(self._locks):
                lock.ping()

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextmanager
def lock_binds(
    binds: Iterable[Bind],
    timeout: float | None,
    identities: Identities,
    *,
    on_wait: Callable[[Bind], None] | None = None,
) -> Iterator[HeldLocks]:
    """Hold the migration lock of every bind, taken in one fixed order to avoid deadlocks.

    Each lock's connection is opened first and tells the database's identity (recorded
    in ``identities``), which names the lock. ``on_wait`` is called once per bind whose
    lock is held by someone else. Yields the :class:`HeldLocks`, to check while the
    steps run.
    """
    wait = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    with ExitStack() as stack:
        unique: dict[str, tuple[Bind, sa.Connection | None, DatabaseIdentity]] = {}
        sharing: dict[str, list[str]] = {}
        for bind in binds:
            connection, identity = _open(bind, identities, stack)
            name = lock_name(bind, identity)
            unique.setdefault(name, (bind, connection, identity))
            sharing.setdefault(name, []).append(bind.name)
        # Entered before the locks, so the keepalive stops once they are released.
        held = stack.enter_context(HeldLocks())
        # Sorting by lock name gives every process the same order, whatever binds it names.
        for name in sorted(unique):
            bind, connection, identity = unique[name]
            notify = _Notify(bind, on_wait)
            lock = stack.enter_context(_lock(bind, connection, identity, name, wait, notify))
            if lock is not None:
                held._add(sharing[name], lock)
        yield held


def lock_holder(bind: Bind, identity: DatabaseIdentity, connection: sa.Connection) -> str | None:
    """Who holds ``bind``'s migration lock, when another process does; else ``None``.

    Asked without waiting and without taking the lock: PostgreSQL's ``pg_locks``,
    MySQL's ``IS_USED_LOCK()``, or a shared, non-blocking ``flock`` of the SQLite lock
    file, released at once. The answer names the holder as far as the database can
    (an empty string when it cannot).
    """
    if bind.backend in _SERVERS:
        name = lock_name(bind, identity)
        try:
            if bind.backend == "postgresql":
                return _postgresql_holder(connection, _advisory_key(name))
            return _mysql_holder(connection, name[:64])
        except sa.exc.DBAPIError:
            connection.rollback()
            return None
    if bind.backend == "sqlite" and identity.path is not None:
        table = bind.version_table
        return lockfile.holder(identity.path, bind.version_table_schema, table, resolved=True)
    return None


_CONNECT_HINT = "Check that the server is running and that the URL and credentials are right."


def _open(
    bind: Bind, identities: Identities, stack: ExitStack
) -> tuple[sa.Connection | None, DatabaseIdentity]:
    """The connection a bind's lock is held on (none for a file lock), and the identity.

    A server lock's connection comes from a pool of its own: the app's pool may be too
    small to lend one for the whole run. ``pool.recreate()`` keeps the engine's connect
    arguments (in the pool's creator) and its connect event listeners.
    """
    if bind.backend not in _SERVERS:
        return None, bind.identity(identities)
    engine = sa.create_engine(bind.engine.url, pool=bind.engine.pool.recreate())
    stack.callback(engine.dispose)
    try:
        connection = stack.enter_context(engine.connect())
    except sa.exc.DBAPIError as exc:
        raise bind.database_error("connect to", exc, _CONNECT_HINT) from None
    identity = identities.read(bind.engine, connection)
    _no_idle_timeouts(bind.backend, connection)
    return connection, identity


def _no_idle_timeouts(backend: str, connection: sa.Connection) -> None:
    """Keep the server from closing the lock's session while it waits between steps."""
    if backend == "postgresql":
        # Only the settings this server has (idle_session_timeout is PostgreSQL 14+).
        statement = (
            "SELECT set_config(name, '0', false) FROM pg_settings "
            "WHERE name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout')"
        )
    else:
        statement = "SET SESSION wait_timeout = 31536000"  # a year: the largest allowed
    try:
        connection.execute(sa.text(statement))
        connection.commit()
    except sa.exc.DBAPIError:  # refused: the keepalive still keeps the session busy
        connection.rollback()


def _lock(
    bind: Bind,
    connection: sa.Connection | None,
    identity: DatabaseIdentity,
    name: str,
    timeout: float,
    notify: _Notify,
) -> contextlib.AbstractContextManager[_ServerLock | None]:
    if connection is not None and bind.backend == "postgresql":
        return _postgresql_lock(bind, connection, name, timeout, notify)
    if connection is not None and bind.backend == "mysql":
        return _mysql_lock(bind, connection, name, timeout, notify)
    if bind.backend == "sqlite" and identity.path is not None:
        return lockfile.file_lock(bind, identity.path, timeout, notify)
    return contextlib.nullcontext()


class _Notify:
    """Calls the caller's ``on_wait`` once, the first time a lock is busy."""

    def __init__(self, bind: Bind, callback: Callable[[Bind], None] | None) -> None:
        self.bind = bind
        self.callback = callback

    def __call__(self) -> None:
        if self.callback is not None:
            callback, self.callback = self.callback, None
            callback(self.bind)


@contextmanager
def _postgresql_lock(
    bind: Bind, conn: sa.Connection, name: str, timeout: float, notify: _Notify
) -> Iterator[_ServerLock]:
    key = _advisory_key(name)
    deadline = time.monotonic() + timeout
    while True:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        # Leave no transaction open: the lock is held by the session, not a transaction.
        conn.commit()
        if got:
            break
        if time.monotonic() >= deadline:
            raise LockTimeoutError.for_bind(bind.name, timeout, _postgresql_holder(conn, key) or "")
        notify()
        time.sleep(lockfile.POLL)
    lock = _ServerLock(
        conn,
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND pid = pg_backend_pid() AND classid = ((:key >> 32) & 4294967295)::oid "
        "AND objid = (:key & 4294967295)::oid AND objsubid = 1)",
        {"key": key},
    )
    try:
        yield lock
    finally:
        lock.release("SELECT pg_advisory_unlock(:key)", {"key": key})


def _postgresql_holder(conn: sa.Connection, key: int) -> str | None:
    """Who else holds the advisory lock ``key`` in this database (``None``: nobody)."""
    row = conn.execute(
        sa.text(
            "SELECT l.pid, a.application_name, a.backend_start, a.client_addr "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = ((:key >> 32) & 4294967295)::oid "
            "AND l.objid = (:key & 4294967295)::oid AND l.objsubid = 1 LIMIT 1"
        ),
        {"key": key},
    ).first()
    conn.commit()
    if row is None:
        return None
    app = f", application {row.application_name!r}" if row.application_name else ""
    client = f", client {row.client_addr}" if row.client_addr else ""
    since = f", connected since {row.backend_start:%Y-%m-%d %H:%M:%S}" if row.backend_start else ""
    return f"held by PostgreSQL backend pid {row.pid}{app}{client}{since}"


@contextmanager
def _mysql_lock(
    bind: Bind, conn: sa.Connection, name: str, timeout: float, notify: _Notify
) -> Iterator[_ServerLock]:
    lock_id = name[:64]
    deadline = time.monotonic() + timeout
    while True:
        # Short waits in a loop keep the timeout exact and the process interruptible.
        wait = int(max(0.0, min(1.0, deadline - time.monotonic())))  # inf waits forever
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:name, :wait)"), {"name": lock_id, "wait": wait}
        ).scalar()
        conn.commit()
        if got == 1:
            break
        if time.monotonic() >= deadline:
            raise LockTimeoutError.for_bind(bind.name, timeout, _mysql_holder(conn, lock_id) or "")
        notify()
        if wait == 0:
            time.sleep(lockfile.POLL)
    lock = _ServerLock(conn, "SELECT IS_USED_LOCK(:name) = CONNECTION_ID()", {"name": lock_id})
    try:
        yield lock
    finally:
        lock.release("SELECT RELEASE_LOCK(:name)", {"name": lock_id})


def _mysql_holder(conn: sa.Connection, lock: str) -> str | None:
    """Who holds the named lock ``lock`` (``None``: nobody)."""
    holder = conn.execute(sa.text("SELECT IS_USED_LOCK(:name)"), {"name": lock}).scalar()
    if holder is None:
        conn.commit()
        return None
    row = conn.execute(
        sa.text("SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = :id"),
        {"id": holder},
    ).first()
    conn.commit()
    if row is None:
        return f"held by connection {holder}"
    return f"held by connection {holder} ({row.USER}@{row.HOST}, busy for {row.TIME}s)"
