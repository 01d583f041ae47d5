"""Red team, issue 18: what the no-op upgrade's unlocked read and the default check got
wrong when they were first written, pinned (each failed on that code)."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeApp
from conftest import MakeURL
from conftest import version_rows
from test_cache import _age
from test_cache import run

from flask_alembic.errors import LockTimeoutError
from flask_alembic.identity import Identities
from flask_alembic.locking import lock_binds


@pytest.mark.postgresql
def test_unlocked_read_does_not_outwait_the_lock_timeout(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    """Another process migrates the bind and its transaction holds the version table's
    ACCESS EXCLUSIVE lock (a migration that widens ``version_num``, as many projects
    have). An upgrade with something to do and ``lock_timeout=0`` fails at once with
    LockTimeoutError, naming the holder: the read before the lock is not even tried while
    the migration lock is held (when first written, its ``SELECT`` waited for that
    transaction, however long, and ``--lock-timeout 1`` waited 11 s, silently)."""
    url = make_url("postgresql")
    app, alembic = make_app(url)
    with app.app_context():
        alembic.revision("first", empty=True)
        alembic.upgrade()
        alembic.revision("second", empty=True)
        bind = alembic.registry["default"]
    holder = sa.create_engine(url, poolclass=sa.NullPool)
    outcome: list[BaseException | None] = []

    def upgrade() -> None:
        with app.app_context():
            try:
                alembic.upgrade(lock_timeout=0)
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

    waited = False
    try:
        with lock_binds([bind], 5, Identities()), holder.connect() as conn:
            conn.execute(sa.text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
            thread = threading.Thread(target=upgrade)
            thread.start()
            with holder.connect() as watch:
                while thread.is_alive() and not waited:
                    waited = bool(
                        watch.execute(
                            sa.text(
                                "SELECT count(*) FROM pg_stat_activity WHERE "
                                "datname = current_database() AND wait_event_type = 'Lock' "
                                "AND query LIKE '%version_num%'"
                            )
                        ).scalar()
                    )
                    watch.rollback()
                    time.sleep(0.05)
            conn.rollback()  # the other migration commits: the version table is free
            thread.join()
    finally:
        holder.dispose()
    assert not waited, "the upgrade waited on the version table's lock, not the migration lock"
    assert isinstance(outcome[0], LockTimeoutError)


def test_noop_sees_a_symlinked_revision_replaced_by_a_rename(
    make_app: MakeApp, make_url: MakeURL, project: Path, tmp_path: Path
) -> None:
    """A revision file that is a symbolic link to a file kept elsewhere (a shared
    folder, another checkout). Its target is replaced the way ``git checkout`` and most
    editors save, through a new file and a rename, which performance.md says the default
    check notices. The migrations folder does not change, and the link is not a head: a
    folder holding a link is never trusted whole, so the no-op ``status`` and ``upgrade``
    see that b no longer follows a (a is a second head, a step pending), as the "files"
    check does (when first written, they answered "up to date", "Nothing to do")."""
    url = make_url("sqlite")
    app, alembic = make_app(url)
    with app.app_context():
        paths = [
            Path(alembic.revision(name, empty=True, rev_id=f"{name * 4}000{n}")[0].path)
            for n, name in enumerate("abc", start=1)
        ]
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / paths[1].name
    paths[1].rename(target)
    paths[1].symlink_to(target)
    assert run(app, "upgrade").exit_code == 0
    _age(project / "migrations" / "__pycache__" / "flask_alembic.revisions.json")
    text = re.sub(r"^down_revision.*$", "down_revision = None", target.read_text(), flags=re.M)
    replacement = shared / "new.py"
    replacement.write_text(text)
    os.replace(replacement, target)  # as git checkout writes a file
    status = run(app, "status")
    upgrade = run(app, "upgrade")
    assert "state=pending" in status.output, status.output
    assert upgrade.exit_code == 0, upgrade.output
    assert version_rows(url) == {"aaaa0001", "cccc0003"}


@pytest.mark.mysql
def test_noop_does_not_trust_a_version_table_mid_migration_on_mariadb(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    """MariaDB commits each DDL statement at once, and Alembic writes the version table
    only after a revision's function returns. While another process holds the migration
    lock and is half way through downgrading the head (its table ``user`` already dropped, the
    version row still at the head), the upgrade waits for the lock (here: LockTimeoutError)
    instead of answering from the version table, and with a longer timeout re-applies the
    head once the downgrade has finished. When first written, it answered "Nothing to do"
    at once (seen with real processes: ``flask db downgrade -1`` whose downgrade drops t2
    then sleeps; ``flask db upgrade`` meanwhile printed "Nothing to do: default up to
    date." with t2 gone, and the database ended at the old revision)."""
    url = make_url("mysql")
    app, alembic = make_app(url)
    with app.app_context():
        alembic.revision("first")  # creates the table "user"
        alembic.upgrade()
        bind = alembic.registry["default"]
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            with lock_binds([bind], 5, Identities()):
                # The other process's downgrade, half done: DDL committed, version row not.
                with engine.begin() as conn:
                    conn.execute(sa.text("DROP TABLE `user`"))
                with pytest.raises(LockTimeoutError):
                    alembic.upgrade(lock_timeout=0)
        finally:
            engine.dispose()
