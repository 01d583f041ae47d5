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
import json
import os
import stat
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa

from .errors import DatabaseError
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
    "sqlite_lock_path",
    "sqlite_migration",
]

#: Seconds to wait for another process's migration before giving up.
DEFAULT_TIMEOUT = 300.0
#: Seconds between two pings of a held lock's connection.
KEEPALIVE_INTERVAL = 5.0
_POLL = 0.05
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


def sqlite_lock_path(database: str, schema: str | None, table: str) -> Path:
    """The lock file of version table ``table`` in the SQLite file ``database``.

    It lives beside the database, where SQLite writes its journal, so every process
    reaching the file (from another container sharing the volume, too) finds it. Its
    name comes from the file's inode, not its name, so symlinks, relative paths and hard
    links share it, and from the version table, so two version tables in one file have a
    lock each. The device is left out: it differs between hosts mounting one volume.
    """
    real = os.path.realpath(database)
    return Path(real).parent / _lock_file_name(os.stat(real).st_ino, schema, table)


def _lock_file_name(inode: int, schema: str | None, table: str) -> str:
    key = f"{inode}|{(schema or 'main').lower()}|{table.lower()}"
    return f"flask_alembic-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"


def sqlite_migration(database: str) -> tuple[str, str] | None:
    """A migration another process runs now on the SQLite file ``database``, of any version
    table: what it migrates (``"bind 'x' (version table t)"``) and who holds its lock.

    Each lock file held is asked what it guards, and counts only if its name is the one
    that version table of this file has. Nothing is waited for or kept locked.
    """
    real = os.path.realpath(database)
    try:
        inode = os.stat(real).st_ino
        candidates = sorted(Path(real).parent.glob("flask_alembic-*.lock"))
    except OSError:
        return None
    for path in candidates:
        try:
            fd = _open_existing(path, os.O_RDONLY)
        except (OSError, _NotALockFile):
            continue
        try:
            if _try_flock(fd, shared=True):
                _unflock(fd)
                continue
            words, guarded = _read_lock_file(fd)
        finally:
            os.close(fd)
        if guarded is None:
            continue
        bind, schema, table = guarded
        if _lock_file_name(inode, schema, table) == path.name:
            shown = table if schema is None else f"{schema}.{table}"
            return f"bind {bind!r} (version table {shown})", _describe_holder(words, path)
    return None


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
    name = lock_name(bind, identity)
    if bind.backend in _SERVERS:
        try:
            if bind.backend == "postgresql":
                return _postgresql_holder(connection, _advisory_key(name))
            return _mysql_holder(connection, name[:64])
        except sa.exc.DBAPIError:
            connection.rollback()
            return None
    if bind.backend == "sqlite" and identity.path is not None:
        try:
            path = sqlite_lock_path(identity.path, bind.version_table_schema, bind.version_table)
            fd = _open_existing(path, os.O_RDONLY)
        except (OSError, _NotALockFile):  # none: nobody holds it; or no usable one (see upgrade)
            return None
        try:
            if _try_flock(fd, shared=True):
                _unflock(fd)
                return None
            return _file_holder(fd, path)
        finally:
            os.close(fd)
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
        return _file_lock(bind, identity.path, timeout, notify)
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
            raise _timeout_error(bind, timeout, _postgresql_holder(conn, key) or "")
        notify()
        time.sleep(_POLL)
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
        wait = max(0, min(1, int(deadline - time.monotonic())))
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:name, :wait)"), {"name": lock_id, "wait": wait}
        ).scalar()
        conn.commit()
        if got == 1:
            break
        if time.monotonic() >= deadline:
            raise _timeout_error(bind, timeout, _mysql_holder(conn, lock_id) or "")
        notify()
        if wait == 0:
            time.sleep(_POLL)
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


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Not on Windows, where there are neither symlinks an unprivileged user can plant nor FIFOs.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@contextmanager
def _file_lock(bind: Bind, database: str, timeout: float, notify: _Notify) -> Iterator[None]:
    # Not the database file itself: opening and closing it would drop SQLite's own POSIX
    # locks. The lock file is removed by its holder on release, while still holding it;
    # so a process that locks a file must check that it is still the one at ``path``.
    try:
        path = sqlite_lock_path(database, bind.version_table_schema, bind.version_table)
    except OSError as exc:  # the file went away since its identity was read
        raise bind.database_error("find the file of", exc, "Check the database's path.") from None
    deadline = time.monotonic() + timeout
    fd, writable = _open_lock_file(bind, path)
    try:
        while True:
            if _try_flock(fd):
                if _still_at(fd, path):
                    break
                os.close(fd)  # a released lock's file: try the one there now
                fd = -1  # so that a failing open below does not close it twice
                fd, writable = _open_lock_file(bind, path)
                continue
            if time.monotonic() >= deadline:
                raise _timeout_error(bind, timeout, _file_holder(fd, path))
            notify()
            time.sleep(_POLL)
        if writable:
            # The second line says what the lock guards, for readers of the other version
            # tables of the file (see sqlite_migration).
            guarded = {
                "bind": bind.name,
                "schema": bind.version_table_schema,
                "table": bind.version_table,
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()} {_host()}\n{json.dumps(guarded)}\n".encode())
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # a folder that is not writable keeps it
                os.unlink(path)
            _unflock(fd)
    finally:
        if fd >= 0:
            os.close(fd)


def _open_lock_file(bind: Bind, path: Path) -> tuple[int, bool]:
    """Open (or create) the lock file: its descriptor, and whether it could be written.

    A file left by another user may be read-only to this one; ``flock`` works on it all
    the same. A new file gets the permissions its folder gives (group-writable in a
    group-writable folder), whatever the umask. Anything but a regular file of its own
    (planted by whoever can write to the folder) is refused: see :func:`_open_existing`.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _lock_file_error(bind, path, exc, create=True) from None
        else:
            mode = 0o666 & stat.S_IMODE(os.stat(path.parent).st_mode)
            with contextlib.suppress(OSError):
                # On the descriptor: the path may be a symlink by now.
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)
                else:  # pragma: no cover - Windows before Python 3.13
                    os.chmod(path, mode)
            return fd, True
        for flags, writable in ((os.O_RDWR, True), (os.O_RDONLY, False)):
            try:
                return _open_existing(path, flags), writable
            except FileNotFoundError:
                break  # released and removed in between: create it again
            except PermissionError as exc:
                if not writable:
                    raise _lock_file_error(bind, path, exc, create=False) from None
            except OSError as exc:
                raise _lock_file_error(bind, path, exc, create=False) from None
            except _NotALockFile as exc:
                raise _not_a_lock_file_error(bind, path, exc.kind) from None


class _NotALockFile(Exception):
    """Something other than a regular file of its own is at a lock file's path."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        #: What it is: ``"a symbolic link"``, ``"a directory"``...
        self.kind = kind


def _open_existing(path: Path, flags: int) -> int:
    """Open an existing lock file, refusing anything a lock file is not.

    The lock file is truncated and written, so a symlink is not followed (it could point
    to any file the user can write), and a file with other hard links is refused (it is
    another file's data). ``O_NONBLOCK`` keeps a FIFO from blocking the open; it changes
    nothing for a regular file. Any owner is accepted: a stale lock file of another
    user is the usual case, and it can only be written where its mode allows.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError:
        # ELOOP (a symlink), EISDIR, ENXIO (a socket)...: say what is there, if odd.
        try:
            kind = _odd_kind(os.lstat(path))
        except OSError:
            kind = None
        if kind is not None:
            raise _NotALockFile(kind) from None
        raise
    kind = _odd_kind(os.fstat(fd))
    if kind is not None:
        os.close(fd)
        raise _NotALockFile(kind)
    return fd


def _odd_kind(info: os.stat_result) -> str | None:
    """What a file that cannot be a lock file is (``None``: a regular file of its own)."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return f"a file with {info.st_nlink} hard links" if info.st_nlink > 1 else None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"  # pragma: no cover - no other kinds on Linux


def _still_at(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the file ``fd`` has open (its holder may have removed it)."""
    try:
        here = os.lstat(path)  # a symlink to the file is not the file
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _host() -> str:
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def _read_lock_file(fd: int) -> tuple[list[str], tuple[str, str | None, str] | None]:
    """What a lock file's holder wrote: its process id and host (as words), and the bind,
    schema and version table it guards (``None`` if not said, by an earlier version)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        first, _, rest = os.read(fd, 4096).decode(errors="replace").partition("\n")
    except OSError:
        return [], None
    try:
        said = json.loads(rest)
        bind, schema, table = said["bind"], said["schema"], said["table"]
    except (ValueError, TypeError, KeyError):
        return first.split(), None
    if isinstance(bind, str) and isinstance(schema, str | None) and isinstance(table, str):
        return first.split(), (bind, schema, table)
    return first.split(), None


def _file_holder(fd: int, path: Path) -> str:
    """The holder a lock file names: process id and host, as its holder wrote them."""
    words, _ = _read_lock_file(fd)
    return _describe_holder(words, path)


def _describe_holder(words: list[str], path: Path) -> str:
    if not words:
        return f"held by a process (lock file {path})"
    host = f" on host {words[1]}" if len(words) > 1 and words[1] != _host() else ""
    return f"held by process {words[0]}{host} (lock file {path})"


def _lock_file_error(bind: Bind, path: Path, exc: OSError, *, create: bool) -> DatabaseError:
    reason = exc.strerror or str(exc)
    if create:
        return DatabaseError(
            f"Cannot create the migration lock file {path} of bind {bind.name!r}: {reason}.",
            bind=bind.name,
            path=str(path),
            hint=(
                f"Give the user running the migration write access to {path.parent}, where "
                "the database is (SQLite writes its journal there too)."
            ),
        )
    return DatabaseError(
        f"Cannot open the migration lock file {path} of bind {bind.name!r}: {reason}.",
        bind=bind.name,
        path=str(path),
        hint=(
            "Remove it once no other user's migration is running (it is left by an earlier "
            "run, perhaps as another user), or give the user running the migration read "
            "access to it."
        ),
    )


def _not_a_lock_file_error(bind: Bind, path: Path, kind: str) -> DatabaseError:
    return DatabaseError(
        f"Cannot use the migration lock file {path} of bind {bind.name!r}: it is {kind}.",
        bind=bind.name,
        path=str(path),
        hint=(
            "Remove it: a lock file is a regular file of its own, which Flask-Alembic creates "
            "and removes, and nothing is written through a link or into another kind of file."
        ),
    )


def _try_flock(fd: int, *, shared: bool = False) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unflock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _timeout_error(bind: Bind, timeout: float, holder: str) -> LockTimeoutError:
    who = f" ({holder})" if holder else ""
    return LockTimeoutError(
        f"Timed out after {timeout:g}s waiting for the migration lock of bind {bind.name!r}"
        f"{who}: another process is migrating it.",
        bind=bind.name,
        hint=(
            "Wait for it to finish, or raise the wait with --lock-timeout / ALEMBIC_LOCK_TIMEOUT."
        ),
    )
