"""SQLite migrations run in real transactions: a failed step leaves nothing behind.

Python's ``sqlite3`` driver sends no ``BEGIN`` before DDL, so under plain Alembic each
``CREATE``/``ALTER`` commits on its own. Flask-Alembic begins the transaction itself on
its migration connection (and only there), unless the engine or the config says not to.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic

REVISION = '''\
"""{rev}"""

import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def write_chain(app: Flask, *bodies: str) -> list[str]:
    """One revision per body, each on the previous one; return their ids."""
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    ids: list[str] = []
    for number, body in enumerate(bodies):
        rev = f"rev{number:03d}"
        (folder / f"{rev}_step.py").write_text(
            REVISION.format(
                rev=rev,
                down=ids[-1] if ids else None,
                labels=None if ids else ("default",),
                body=textwrap.indent(textwrap.dedent(body).strip(), "    "),
            )
        )
        ids.append(rev)
    return ids


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


CREATE_THEN_FAIL = """
    op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO no_such_table VALUES (1)")
"""


def test_failed_step_leaves_nothing(make_app: MakeApp, tmp_path: Path) -> None:
    """A step that fails after its CREATE TABLE is rolled back whole; earlier steps stay."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, _ = make_app(url)
    ids = write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        CREATE_THEN_FAIL,
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "no_such_table" in result.stderr
    assert "kept by" not in result.stderr
    assert "Steps applied before it are kept" in result.stderr
    assert table_names(url) == {"alembic_version", "first"}
    assert version_rows(url) == {ids[0]}


def test_first_step_failure_leaves_no_version_table(make_app: MakeApp, tmp_path: Path) -> None:
    """From an empty database, the version table is created in the first step's transaction."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, _ = make_app(url)
    write_chain(app, CREATE_THEN_FAIL)
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "Nothing was applied" in result.stderr
    assert table_names(url) == set()


def test_one_transaction_for_all_steps(make_app: MakeApp, tmp_path: Path) -> None:
    """With transaction_per_migration off, a failure undoes every step of the run."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, alembic = make_app(url, ALEMBIC_CONTEXT={"transaction_per_migration": False})
    write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        'op.create_table("second", sa.Column("id", sa.Integer, primary_key=True))',
        CREATE_THEN_FAIL,
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "Nothing was applied" in result.stderr
    assert table_names(url) == set()
    with app.app_context():
        assert alembic.current() == ()


def test_transactional_ddl_off_keeps_driver_behaviour(make_app: MakeApp, tmp_path: Path) -> None:
    """``transactional_ddl=False`` gives the driver's autocommitted DDL, and says so."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, _ = make_app(url, ALEMBIC_CONTEXT={"transactional_ddl": False})
    ids = write_chain(app, CREATE_THEN_FAIL)
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert (
        f"revision {ids[0]} failed at statement 2 (INSERT INTO no_such_table VALUES (1)); "
        "statement 1 (CREATE TABLE half"
    ) in result.stderr
    assert "was kept by the database and not recorded in the version table" in result.stderr
    assert "Nothing was applied" not in result.stderr
    assert "half" in table_names(url)
    assert version_rows(url) == set()


def test_autocommit_engine_is_left_alone(tmp_path: Path) -> None:
    """An engine in AUTOCOMMIT mode gets no BEGIN; a failure is reported as partial."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    app = Flask("autocommit", root_path=str(tmp_path))
    Alembic(app, engines=engine, metadatas=sa.MetaData())
    ids = write_chain(app, CREATE_THEN_FAIL)
    try:
        result = run(app, "upgrade")
    finally:
        engine.dispose()
    assert result.exit_code == 1
    assert f"revision {ids[0]} failed at statement 2" in result.stderr
    assert "statement 1 (CREATE TABLE half" in result.stderr
    assert "was kept by the database" in result.stderr
    assert "half" in table_names(url)


def test_autocommit_block_runs_outside_the_transaction(make_app: MakeApp, tmp_path: Path) -> None:
    """``autocommit_block()`` still works: VACUUM refuses to run inside a transaction."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, _ = make_app(url)
    ids = write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        """
        with op.get_context().autocommit_block():
            op.execute("VACUUM")
        op.create_table("second", sa.Column("id", sa.Integer, primary_key=True))
        """,
        'op.create_table("third", sa.Column("id", sa.Integer, primary_key=True))',
    )
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert table_names(url) == {"alembic_version", "first", "second", "third"}
    assert version_rows(url) == {ids[-1]}


def test_vacuum_inside_a_step_is_a_clear_error(make_app: MakeApp, tmp_path: Path) -> None:
    """Without autocommit_block(), the database's own refusal is reported; nothing changes."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, _ = make_app(url)
    ids = write_chain(app, 'op.execute("VACUUM")')
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert f"failed at revision {ids[0]}" in result.stderr
    assert "cannot VACUUM from within a transaction" in result.stderr
    assert table_names(url) == set()


def test_application_connections_keep_driver_defaults(make_app: MakeApp, tmp_path: Path) -> None:
    """Only the migration connection is changed: the app's own connections are not."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, alembic = make_app(url)
    write_chain(app, 'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))')
    with app.app_context():
        alembic.upgrade()
        engine = alembic.registry["default"].engine
    with engine.connect() as conn:
        # The driver's legacy mode: DDL commits at once, even when rolled back after.
        conn.exec_driver_sql("CREATE TABLE app_made (id INTEGER)")
        conn.rollback()
    assert "app_made" in table_names(url)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sqlite3's autocommit is Python 3.12+")
def test_explicit_autocommit_false_driver(tmp_path: Path) -> None:
    """With ``autocommit=False`` (Python 3.12+), sqlite3 begins transactions itself."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url, connect_args={"autocommit": False})
    app = Flask("explicit", root_path=str(tmp_path))
    Alembic(app, engines=engine, metadatas=sa.MetaData())
    ids = write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        CREATE_THEN_FAIL,
    )
    try:
        result = run(app, "upgrade")
    finally:
        engine.dispose()
    assert result.exit_code == 1
    assert "kept by" not in result.stderr
    assert table_names(url) == {"alembic_version", "first"}
    assert version_rows(url) == {ids[0]}


VACUUM_THEN_FAIL = """
    op.create_table("before_block", sa.Column("id", sa.Integer, primary_key=True))
    with op.get_context().autocommit_block():
        op.execute("VACUUM")
    op.create_table("after_block", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO no_such_table VALUES (1)")
"""


def test_autocommit_block_then_failure_is_reported_partial(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """What ran before an autocommit_block() is committed: the error says the step is partial."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, _ = make_app(url)
    ids = write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        VACUUM_THEN_FAIL,
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert (
        f"revision {ids[1]} failed at statement 4 (INSERT INTO no_such_table VALUES (1)) after "
        "committing part of its work (autocommit_block())"
    ) in result.stderr
    assert table_names(url) == {"alembic_version", "first", "before_block"}
    assert version_rows(url) == {ids[0]}


def test_single_transaction_reports_what_an_early_commit_kept(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """With one transaction per bind, a step's autocommit_block() commits the steps before
    it; after a later failure the result says so, from the version table."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, alembic = make_app(url, ALEMBIC_CONTEXT={"transaction_per_migration": False})
    ids = write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        """
        with op.get_context().autocommit_block():
            op.execute("VACUUM")
        op.create_table("second", sa.Column("id", sa.Integer, primary_key=True))
        """,
        CREATE_THEN_FAIL,
    )
    from flask_alembic.errors import MigrationFailedError

    with app.app_context(), pytest.raises(MigrationFailedError) as caught:
        alembic.upgrade()
    result = caught.value.result
    assert result is not None
    applied = [step.revision for step in result.applied]
    after = result.binds[0].after
    # The block committed the first step (with its version row); the rest was rolled back.
    assert applied == [ids[0]]
    assert after == (ids[0],)
    assert version_rows(url) == {ids[0]}
    assert table_names(url) == {"alembic_version", "first"}


def test_recipe_engine_with_transactional_ddl(tmp_path: Path) -> None:
    """An engine that already runs SQLAlchemy's BEGIN recipe, with transactional_ddl=True
    set, is trusted: no second BEGIN, and a failure leaves nothing behind, without a note."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    app = Flask("recipe", root_path=str(tmp_path))
    app.config["ALEMBIC_CONTEXT"] = {"transactional_ddl": True}
    Alembic(app, engines=engine, metadatas=sa.MetaData())
    ids = write_chain(
        app,
        'op.create_table("first", sa.Column("id", sa.Integer, primary_key=True))',
        CREATE_THEN_FAIL,
    )
    try:
        result = run(app, "upgrade")
    finally:
        engine.dispose()
    assert result.exit_code == 1
    assert "kept by" not in result.stderr
    assert table_names(url) == {"alembic_version", "first"}
    assert version_rows(url) == {ids[0]}
