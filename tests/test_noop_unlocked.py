"""A no-op upgrade to heads reads the version tables before any lock (issue 18, many binds).

When every bind is at its heads and nobody holds its migration lock, the answer needs no
lock: it is given at once. Anything else (a bind behind, a lock held by a migration under
way, a version table that cannot be read, a SQLite file locked by a writer) locks and
reads again as before, so it waits, and fails with the errors it always had. The version
table is read with its ``SELECT`` first; whether the table exists is asked only when that
fails.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeApp
from conftest import MakeURL
from conftest import version_rows

from flask_alembic.errors import DatabaseError
from flask_alembic.errors import LockTimeoutError
from flask_alembic.identity import Identities
from flask_alembic.locking import lock_binds
from flask_alembic.revision_cache import holds_revisions
from flask_alembic.status import State


def test_noop_upgrade_waits_for_a_holder(
    make_app: MakeApp, database_url: str, dialect: str
) -> None:
    """At its heads with nobody migrating, the upgrade answers at once and the CLI says
    what it always said. While the lock is held elsewhere (a migration under way may have
    changed the schema ahead of its version table), it waits for the lock as before, here
    until the timeout; so does one step behind."""
    app, alembic = make_app(database_url)
    with app.app_context():
        first = alembic.revision("first")[0].revision
        alembic.upgrade()
        bind = alembic.registry["default"]
        assert alembic.upgrade(lock_timeout=0).applied == ()
        result = app.test_cli_runner().invoke(args=["db", "upgrade", "--lock-timeout", "0"])
        assert result.exit_code == 0, result.output
        assert result.output == "Nothing to do: default up to date.\n"
        with lock_binds([bind], 5, Identities()):
            with pytest.raises(LockTimeoutError):
                alembic.upgrade(lock_timeout=0)
            # Any other target than heads takes the lock first, as before.
            with pytest.raises(LockTimeoutError):
                alembic.upgrade(first, lock_timeout=0)
            second = alembic.revision("second", empty=True)[0].revision
            with pytest.raises(LockTimeoutError) as info:
                alembic.upgrade(lock_timeout=0)
            assert info.value.bind == "default"
            assert version_rows(database_url) == {first}
        assert [s.revision for s in alembic.upgrade().applied] == [second]


def test_many_binds_noop_without_locks(make_app: MakeApp, make_url: MakeURL) -> None:
    """Several binds at their heads, nobody migrating: nothing is locked (a path at each
    lock file's place that no lock could use is left alone). One bind behind makes the
    whole command lock, and wait for that bind's lock."""
    from flask_alembic.lockfile import sqlite_lock_path

    names = ["default", "b1", "b2"]
    urls = {name: make_url("sqlite") for name in names}
    app, alembic = make_app(urls)
    with app.app_context():
        alembic.revision("first")
        alembic.upgrade()
        planted = []
        for name in names:
            path = sqlite_lock_path(str(sa.make_url(urls[name]).database), None, "alembic_version")
            path.mkdir()  # a lock would refuse it: the no-op does not lock
            planted.append(path)
        assert alembic.upgrade(lock_timeout=0).applied == ()
        for path in planted:
            path.rmdir()
        alembic.revision("second", empty=True, bind="b2")
        with lock_binds([alembic.registry["b2"]], 5, Identities()):
            with pytest.raises(LockTimeoutError) as info:
                alembic.upgrade(lock_timeout=0)
            assert info.value.bind == "b2"
        assert [s.bind for s in alembic.upgrade().applied] == ["b2"]


def test_sqlite_file_locked_by_a_writer_falls_back_to_the_lock(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    """A writer holding the SQLite file while the version table is read without the lock:
    the upgrade then takes the lock (here held elsewhere: it times out, as it always did);
    once the lock is free it reads again, and fails as before while the writer stays."""
    url = make_url("sqlite")
    app, alembic = make_app(url + "?timeout=0.1")
    with app.app_context():
        alembic.revision("first")
        alembic.upgrade()
        writer = sqlite3.connect(sa.make_url(url).database or "", isolation_level=None)
        try:
            writer.execute("BEGIN EXCLUSIVE")
            with (
                lock_binds([alembic.registry["default"]], 5, Identities()),
                pytest.raises(LockTimeoutError),
            ):
                alembic.upgrade(lock_timeout=0)
            with pytest.raises(DatabaseError) as info:
                alembic.upgrade(lock_timeout=0)
            assert info.value.message.startswith("Cannot read the version table of bind 'default'")
            assert "database is locked" in info.value.message
        finally:
            writer.rollback()
            writer.close()
        assert alembic.upgrade().applied == ()


def test_version_table_that_cannot_be_read(
    make_app: MakeApp, database_url: str, dialect: str
) -> None:
    """A version table without its column: the database's own error, as before, from
    upgrade and status alike (on PostgreSQL the failed SELECT is rolled back before the
    table is looked for, or that question would fail instead)."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("first")
        engine = sa.create_engine(database_url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE alembic_version (other VARCHAR(32))"))
        finally:
            engine.dispose()
        with pytest.raises(DatabaseError) as info:
            alembic.upgrade()
        message = info.value.message
        assert message.startswith("Cannot read the version table of bind 'default'")
        assert "version_num" in message
        assert "Check the bind's 'version_table'" in str(info.value)
        [row] = alembic.status()
        assert row.state == State.UNREACHABLE
        assert row.error is not None
        assert row.error.message == message


def test_missing_version_table_then_odd_name(make_app: MakeApp, database_url: str) -> None:
    """A version table named with a space, capitals and '%': missing at first (no heads),
    then created by the upgrade and read by the no-op and by status, on every dialect."""
    table = "Odd % Versions"
    app, alembic = make_app(database_url, ALEMBIC_BINDS={"default": {"version_table": table}})
    with app.app_context():
        alembic.revision("first")
        [row] = alembic.status()
        assert (row.current, row.state) == ((), State.PENDING)
        [step] = alembic.upgrade().applied
        assert alembic.upgrade().applied == ()
        [row] = alembic.status()
        assert (row.current, row.state) == ((step.revision,), State.UP_TO_DATE)


def test_holds_revisions_reads_every_form(tmp_path: Path) -> None:
    """A bind's folder holds revisions when a file assigns both names at its top level:
    plainly, or in any other form the full walk finds; not in a function or a string."""
    cases = {
        "plain": ("revision = 'a'\ndown_revision = None\n", True),
        "nested": ("if True:\n    revision = 'a'\n    down_revision = None\n", True),
        "tuple": ("revision, down_revision = 'a', None\n", True),
        "annotated": ("revision: str = 'a'\ndown_revision: str | None = None\n", True),
        "one only": ("revision = 'a'\n", False),
        "in a function": ("def f():\n    revision = 'a'\n    down_revision = None\n", False),
        "in a string": ('"""\nrevision = \'a\'\ndown_revision = None\n"""\n', False),
    }
    for name, (source, expected) in cases.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        (folder / "a_step.py").write_text(source)
        assert holds_revisions(folder) is expected, name
