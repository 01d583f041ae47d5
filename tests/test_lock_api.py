"""The migration locks in-process (flask_alembic.locking and lockfile), on every dialect.

tests/test_locks.py and tests/test_concurrency.py prove the locks with real processes;
those processes are not measured by coverage. Here the same functions run in the test's
own process: a second lock, even in one process, waits for the first (a server lock is
held by a connection; a file lock by an open file), so one process can play both sides.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeApp
from conftest import MakeURL
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic import lockfile
from flask_alembic.errors import LockLostError
from flask_alembic.errors import LockTimeoutError
from flask_alembic.identity import Identities
from flask_alembic.locking import HeldLocks
from flask_alembic.locking import lock_binds
from flask_alembic.locking import lock_holder
from flask_alembic.registry import Bind
from flask_alembic.revision_cache import CACHE_NAME


def holder_prefix(dialect: str) -> str:
    """How each database names the holder of a lock (the rest varies)."""
    return {
        "sqlite": f"held by process {os.getpid()} (lock file ",
        "postgresql": "held by PostgreSQL backend pid ",
        "mysql": "held by connection ",
    }[dialect]


@contextmanager
def bind_of(make_app: MakeApp, url: str) -> Iterator[tuple[Flask, Alembic, Bind]]:
    app, alembic = make_app(url, sa.MetaData(), ALEMBIC_BINDS={"default": {"include": True}})
    with app.app_context():
        yield app, alembic, alembic.registry["default"]


def who_holds(bind: Bind) -> str | None:
    """lock_holder, asked from a connection of its own."""
    identities = Identities()
    with bind.engine.connect() as connection:
        identity = identities.read(bind.engine, connection)
        return lock_holder(bind, identity, connection)


def test_second_lock_waits_then_times_out(
    make_app: MakeApp, database_url: str, dialect: str
) -> None:
    """A lock held elsewhere: on_wait is told once, the wait ends in LockTimeoutError naming
    the bind and the holder; once released, the lock is had at once and nobody holds it."""
    with bind_of(make_app, database_url) as (_, _, bind):
        assert who_holds(bind) is None
        waited: list[str] = []
        with lock_binds([bind], 5, Identities()) as held:
            held.check("default")  # still held: no error
            holder = who_holds(bind)
            assert holder is not None
            assert holder.startswith(holder_prefix(dialect))
            with (
                pytest.raises(LockTimeoutError) as info,
                lock_binds([bind], 0.3, Identities(), on_wait=lambda b: waited.append(b.name)),
            ):
                pass
            assert waited == ["default"]
            assert info.value.bind == "default"
            assert info.value.message.startswith(
                "Timed out after 0.3s waiting for the migration lock of bind 'default' "
                f"({holder_prefix(dialect)}"
            )
            assert info.value.message.endswith("): another process is migrating it.")
        assert who_holds(bind) is None
        with lock_binds([bind], 0, Identities()) as again:
            again.check("default")
    if dialect == "sqlite":  # the holder removes its lock file
        folder = Path(sa.make_url(database_url).database or "").parent
        assert list(folder.glob("flask_alembic-*.lock")) == []


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_lost_server_lock_is_seen(make_app: MakeApp, make_url: MakeURL, server: str) -> None:
    """A lock whose connection the server killed: a ping says nothing, the next check
    raises LockLostError for the bind, and leaving the block does not fail."""
    url = make_url(server)
    with bind_of(make_app, url) as (_, _, bind), lock_binds([bind], 5, Identities()) as held:
        lock = held._by_bind["default"]
        lock.ping()
        session: int = lock.connection.execute(
            sa.text(
                "SELECT pg_backend_pid()" if server == "postgresql" else "SELECT CONNECTION_ID()"
            )
        ).scalar_one()
        lock.connection.commit()
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                if server == "postgresql":
                    connection.execute(
                        sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": session}
                    )
                else:
                    connection.execute(sa.text(f"KILL {session:d}"))
        finally:
            admin.dispose()
        lock.ping()  # fails quietly: the check below asks the server
        with pytest.raises(LockLostError) as info:
            held.check("default")
        assert info.value.bind == "default"
        assert info.value.message.startswith("Lost the migration lock of bind 'default': ")
        assert not lock.held()  # stays lost
    assert who_holds(bind) is None


def test_held_locks_without_server_locks() -> None:
    """A run holding only file locks has nothing to check and no keepalive thread."""
    with HeldLocks() as held:
        held.check("anything")
        assert held._thread is None


def test_sqlite_lock_file_says_who_and_what(make_app: MakeApp, make_url: MakeURL) -> None:
    """While a SQLite migration holds the lock, its file names the process and the bind and
    version table it guards; readers of the file learn both without taking the lock."""
    url = make_url()
    database = sa.make_url(url).database or ""
    with bind_of(make_app, url) as (_, _, bind):
        with bind.engine.connect():
            pass  # the file exists
        path = lockfile.sqlite_lock_path(database, None, "alembic_version")
        assert lockfile.sqlite_migration(database) is None
        with lock_binds([bind], 0, Identities()):
            holder = f"held by process {os.getpid()} (lock file {path})"
            assert lockfile.holder(database, None, "alembic_version") == holder
            assert lockfile.sqlite_migration(database) == (
                "bind 'default' (version table alembic_version)",
                holder,
            )
        assert lockfile.holder(database, None, "alembic_version") is None
        assert not path.exists()


def test_sqlite_lock_file_of_an_earlier_version(make_app: MakeApp, make_url: MakeURL) -> None:
    """A lock file held by another host's process that says only who holds it: the holder
    is named with its host, and no migration of another version table is guessed."""
    url = make_url()
    database = sa.make_url(url).database or ""
    with bind_of(make_app, url) as (_, _, bind):
        with bind.engine.connect():
            pass  # the file exists
        path = lockfile.sqlite_lock_path(database, None, "alembic_version")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"4242 another-host\n")
            fcntl.flock(fd, fcntl.LOCK_EX)
            holder = f"held by process 4242 on host another-host (lock file {path})"
            assert lockfile.holder(database, None, "alembic_version") == holder
            assert lockfile.sqlite_migration(database) is None
            with pytest.raises(LockTimeoutError) as info, lock_binds([bind], 0.1, Identities()):
                pass
            assert info.value.message == (
                f"Timed out after 0.1s waiting for the migration lock of bind 'default' "
                f"({holder}): another process is migrating it."
            )
        finally:
            os.close(fd)
            path.unlink()


def test_sqlite_lock_path_not_a_lock_file(make_app: MakeApp, make_url: MakeURL) -> None:
    """A directory where the lock file goes: refused with a DatabaseError naming the path."""
    from flask_alembic.errors import DatabaseError

    url = make_url()
    database = sa.make_url(url).database or ""
    with bind_of(make_app, url) as (_, _, bind):
        with bind.engine.connect():
            pass
        path = lockfile.sqlite_lock_path(database, None, "alembic_version")
        path.mkdir()
        assert lockfile.holder(database, None, "alembic_version") is None
        with pytest.raises(DatabaseError) as info, lock_binds([bind], 0, Identities()):
            pass
        assert info.value.message == (
            f"Cannot use the migration lock file {path} of bind 'default': it is a directory."
        )
        path.rmdir()


def _aged_cache(project_root: Path) -> None:
    """Make the revision cache look written long after the files, as on a server."""
    cache = project_root / "migrations" / "__pycache__" / CACHE_NAME
    header, sep, rest = cache.read_text().partition("\n")
    content = json.loads(header)
    content["written_ns"] += 10**12
    cache.write_text(json.dumps(content) + sep + rest)


def test_noop_upgrade_answers_from_trusted_folders_without_the_lock(
    make_app: MakeApp, database_url: str, project: Path, dialect: str
) -> None:
    """With the default check and an unchanged folder, a database at its heads is
    "nothing to do" without taking the lock (on SQLite, a directory planted at the lock
    file's path, which any lock would refuse, is left alone); while another process
    holds the lock, the no-op waits for it, and a pending step does too, changing
    nothing."""
    app, alembic = make_app(
        database_url, sa.MetaData(), ALEMBIC_BINDS={"default": {"include": True}}
    )
    with app.app_context():
        first = alembic.revision("a", empty=True)[0]
        alembic.revision("b", empty=True)
        alembic.upgrade()
        bind = alembic.registry["default"]
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "status"]).exit_code == 0  # writes the cache
    _aged_cache(project)
    planted = None
    if dialect == "sqlite":
        planted = lockfile.sqlite_lock_path(
            str(sa.make_url(database_url).database), None, "alembic_version"
        )
        planted.mkdir()
    result = runner.invoke(args=["db", "upgrade", "--lock-timeout", "0"])
    assert result.exit_code == 0, result.output
    assert result.output == "Nothing to do: default up to date.\n"
    if planted is not None:
        planted.rmdir()

    def upgrade_times_out() -> None:
        with app.app_context(), lock_binds([bind], 5, Identities()):
            result = runner.invoke(args=["db", "upgrade", "--lock-timeout", "0.3"])
        assert result.exit_code == 1, result.output
        assert "Timed out after 0.3s waiting for the migration lock of bind 'default'" in (
            result.output
        )

    upgrade_times_out()  # at its heads, but the holder may be half way through a change
    with app.app_context():
        alembic.downgrade(first.revision)
        before = alembic.context.get_current_heads()
    upgrade_times_out()  # a step pending
    with app.app_context():
        assert alembic.context.get_current_heads() == before


def test_upgrade_locks_the_binds_every_file_says(
    make_app: MakeApp, make_url: MakeURL, project: Path, dialect: str
) -> None:
    """A trusted folder's graph may miss a dependency written into a non-head file in
    place: the binds to lock come from a graph with every file checked, so upgrading
    'analytics' waits for the lock of 'default', which its pending revision depends on."""
    urls = {"default": make_url(dialect), "analytics": make_url(dialect)}
    include = {name: {"include": True} for name in urls}
    app, alembic = make_app(urls, {n: sa.MetaData() for n in urls}, ALEMBIC_BINDS=include)
    with app.app_context():
        alembic.revision("d1", bind="default", empty=True, rev_id="dddd0001")
        alembic.revision("a1", bind="analytics", empty=True, rev_id="aaaa0001")
        middle = Path(
            alembic.revision("a2", bind="analytics", empty=True, rev_id="aaaa0002")[0].path
        )
        alembic.revision("a3", bind="analytics", empty=True, rev_id="aaaa0003")
        alembic.upgrade("dddd0001", bind="default")
        alembic.upgrade("aaaa0001", bind="analytics")
        alembic.revision("d2", bind="default", empty=True, rev_id="dddd0002")
        default = alembic.registry["default"]
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "status"]).exit_code == 0  # writes the cache
    _aged_cache(project)
    text = middle.read_text()
    old = "depends_on: str | Sequence[str] | None = None"
    assert old in text
    with middle.open("r+") as handle:  # in place: the folder's signature does not change
        handle.truncate()
        handle.write(text.replace(old, "depends_on = 'dddd0002'"))
    with app.app_context(), lock_binds([default], 5, Identities()):
        result = runner.invoke(
            args=["db", "upgrade", "--bind", "analytics", "--lock-timeout", "0.3"]
        )
    assert result.exit_code == 1, result.output
    assert "waiting for the migration lock of bind 'default'" in result.output
    assert version_rows(urls["default"]) == {"dddd0001"}
    assert version_rows(urls["analytics"]) == {"aaaa0001"}
