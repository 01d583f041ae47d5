"""Per-database migration locks, so concurrent ``upgrade`` runs take turns.

- PostgreSQL: a session-level advisory lock, on a connection of its own.
- MySQL / MariaDB: ``GET_LOCK`` on a connection of its own.
- SQLite: an exclusive ``flock`` on a lock file named after the database file.
- In-memory SQLite and other dialects: no lock (nothing else can see the database, or
  there is no portable way to take one).

Every lock dies with its holder: the server drops a session's locks when its connection
goes away, and the kernel drops a file lock when its process dies, SIGKILL included.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from .errors import LockTimeoutError
from .identity import DatabaseIdentity
from .identity import Identities
from .registry import Bind

__all__ = ["DEFAULT_TIMEOUT", "lock_binds", "lock_name"]

#: Seconds to wait for another process's migration before giving up.
DEFAULT_TIMEOUT = 300.0
_POLL = 0.05


def lock_name(bind: Bind, identity: DatabaseIdentity) -> str:
    """A stable name for the lock guarding ``bind``'s version table.

    It comes from the database's identity, as its server gives it, so processes that
    spell the URL differently still take the same lock.
    """
    key = identity.version_table_key(bind.version_table_schema, bind.version_table)
    text = "|".join(key)
    return "flask_alembic:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def lock_binds(
    binds: Iterable[Bind],
    timeout: float | None,
    identities: Identities,
    *,
    on_wait: Callable[[Bind], None] | None = None,
) -> Iterator[None]:
    """Hold the migration lock of every bind, taken in one fixed order to avoid deadlocks.

    Each lock's connection is opened first and tells the database's identity (recorded
    in ``identities``), which names the lock. ``on_wait`` is called once per bind whose
    lock is held by someone else.
    """
    wait = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    with ExitStack() as stack:
        unique: dict[str, tuple[Bind, sa.Connection | None, DatabaseIdentity]] = {}
        for bind in binds:
            connection, identity = _open(bind, identities, stack)
            unique.setdefault(lock_name(bind, identity), (bind, connection, identity))
        # Sorting by lock name gives every process the same order, whatever binds it names.
        for name in sorted(unique):
            bind, connection, identity = unique[name]
            notify = _Notify(bind, on_wait)
            stack.enter_context(_lock(bind, connection, identity, name, wait, notify))
        yield


def _open(
    bind: Bind, identities: Identities, stack: ExitStack
) -> tuple[sa.Connection | None, DatabaseIdentity]:
    """The connection a bind's lock is held on (none for a file lock), and the identity."""
    if bind.backend in {"postgresql", "mysql"}:
        connection = stack.enter_context(bind.connect())
        return connection, identities.read(bind.engine, connection)
    return None, bind.identity(identities)


def _lock(
    bind: Bind,
    connection: sa.Connection | None,
    identity: DatabaseIdentity,
    name: str,
    timeout: float,
    notify: _Notify,
) -> contextlib.AbstractContextManager[None]:
    if connection is not None and bind.backend == "postgresql":
        return _postgresql_lock(bind, connection, name, timeout, notify)
    if connection is not None and bind.backend == "mysql":
        return _mysql_lock(bind, connection, name, timeout, notify)
    if bind.backend == "sqlite" and identity.path is not None:
        return _file_lock(bind, name, timeout, notify)
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
) -> Iterator[None]:
    key = _advisory_key(name)
    deadline = time.monotonic() + timeout
    while True:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
        # Leave no transaction open: the lock is held by the session, not a transaction.
        conn.commit()
        if got:
            break
        if time.monotonic() >= deadline:
            holder = _postgresql_holder(conn, key)
            raise _timeout_error(bind, timeout, holder)
        notify()
        time.sleep(_POLL)
    try:
        yield
    finally:
        _release(conn, "SELECT pg_advisory_unlock(:key)", {"key": key})


def _release(conn: sa.Connection, statement: str, params: dict[str, object]) -> None:
    """Release a server lock; one whose connection is gone was released by the server."""
    with contextlib.suppress(sa.exc.DBAPIError):
        conn.execute(sa.text(statement), params)
        conn.commit()


def _postgresql_holder(conn: sa.Connection, key: int) -> str:
    row = conn.execute(
        sa.text(
            "SELECT a.pid, a.application_name, a.backend_start, a.client_addr "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = ((:key >> 32) & 4294967295)::oid "
            "AND l.objid = (:key & 4294967295)::oid LIMIT 1"
        ),
        {"key": key},
    ).first()
    conn.commit()
    if row is None:
        return ""
    app = f", application {row.application_name!r}" if row.application_name else ""
    client = f", client {row.client_addr}" if row.client_addr else ""
    since = f"{row.backend_start:%Y-%m-%d %H:%M:%S}"
    return f"held by PostgreSQL backend pid {row.pid}{app}{client}, connected since {since}"


@contextmanager
def _mysql_lock(
    bind: Bind, conn: sa.Connection, name: str, timeout: float, notify: _Notify
) -> Iterator[None]:
    lock = name[:64]
    deadline = time.monotonic() + timeout
    while True:
        # Short waits in a loop keep the timeout exact and the process interruptible.
        wait = max(0, min(1, int(deadline - time.monotonic())))
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:name, :wait)"), {"name": lock, "wait": wait}
        ).scalar()
        conn.commit()
        if got == 1:
            break
        if time.monotonic() >= deadline:
            raise _timeout_error(bind, timeout, _mysql_holder(conn, lock))
        notify()
        if wait == 0:
            time.sleep(_POLL)
    try:
        yield
    finally:
        _release(conn, "SELECT RELEASE_LOCK(:name)", {"name": lock})


def _mysql_holder(conn: sa.Connection, lock: str) -> str:
    holder = conn.execute(sa.text("SELECT IS_USED_LOCK(:name)"), {"name": lock}).scalar()
    if holder is None:
        return ""
    row = conn.execute(
        sa.text("SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = :id"),
        {"id": holder},
    ).first()
    conn.commit()
    if row is None:
        return f"held by connection {holder}"
    return f"held by connection {holder} ({row.USER}@{row.HOST}, busy for {row.TIME}s)"


@contextmanager
def _file_lock(bind: Bind, name: str, timeout: float, notify: _Notify) -> Iterator[None]:
    # The lock file lives in the temporary folder, not beside the database: opening and
    # closing the database file itself would drop SQLite's own POSIX locks.
    path = Path(tempfile.gettempdir()) / f"{name.replace(':', '-')}.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the lock
    try:
        deadline = time.monotonic() + timeout
        while not _try_flock(handle):
            if time.monotonic() >= deadline:
                owner = path.read_text().strip() if path.exists() else ""
                raise _timeout_error(
                    bind, timeout, f"held by process {owner} (lock file {path})" if owner else ""
                )
            notify()
            time.sleep(_POLL)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            _unflock(handle)
    finally:
        handle.close()


def _try_flock(handle: IO[str]) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unflock(handle: IO[str]) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
