"""SQLite foreign keys while migrations run: no step loses rows to ON DELETE unnoticed.

Every SQLite migration runs in one transaction, where ``PRAGMA foreign_keys`` does
nothing; a table rebuilt by ``batch_alter_table`` (copied, dropped, renamed) then has
``ON DELETE`` actions delete or change the rows that reference it. These tests run real
migrations on SQLite files whose connections turn foreign keys on, through the CLI.
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeURL
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic

FIRST = '''
"""parent and child"""
import sqlalchemy as sa
from alembic import op

revision = "fk000001"
down_revision = None
branch_labels = ("default",)
depends_on = None


def upgrade():
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", ondelete={ondelete!r})),
    )
    op.execute("INSERT INTO parent (id) VALUES (1), (2)")
    op.execute("INSERT INTO child (id, parent_id) VALUES (10, 1), (11, 1), (12, 2)")


def downgrade():
    pass
'''

NEXT = '''
"""step {number}"""
import sqlalchemy as sa
from alembic import op

revision = "fk00000{number}"
down_revision = "fk00000{previous}"
branch_labels = None
depends_on = None


def upgrade():
{body}

def downgrade():
    pass
'''

REBUILD = """
with op.batch_alter_table("parent", recreate="always") as batch:
    batch.add_column(sa.Column("name", sa.String(20)))
"""

MakeProject = Callable[..., tuple[Flask, str]]


@pytest.fixture
def fk_project(project: Path, make_url: MakeURL) -> Iterator[MakeProject]:
    """An app on a SQLite file whose connections turn foreign keys on, at ``fk000001``.

    ``fk_project(body, ...)`` writes one revision per body after the first, which
    creates ``parent`` (ids 1, 2) and ``child`` (3 rows) with ``ON DELETE ondelete``.
    """
    engines: list[sa.Engine] = []

    def factory(*bodies: str, ondelete: str = "CASCADE", **options: object) -> tuple[Flask, str]:
        url = make_url()
        engine = sa.create_engine(url)
        engines.append(engine)

        @sa.event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        folder = project / "migrations"
        folder.mkdir()
        (folder / "fk000001_first.py").write_text(FIRST.format(ondelete=ondelete))
        for number, body in enumerate(bodies, 2):
            code = textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
            (folder / f"fk00000{number}_next.py").write_text(
                NEXT.format(number=number, previous=number - 1, body=code)
            )
        app = Flask("fk", root_path=str(project))
        app.config["ALEMBIC_BINDS"] = {"default": {"include": True, **options}}
        alembic = Alembic(app, engines=engine, metadatas=sa.MetaData())
        with app.app_context():
            alembic.upgrade("fk000001")
        return app, url

    yield factory
    for engine in engines:
        engine.dispose()


def upgrade(app: Flask) -> Result:
    return app.test_cli_runner().invoke(args=["db", "upgrade"])


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Query the file with foreign keys off, as no hook turns them on."""
    database = sa.make_url(url).database
    assert database is not None
    with sqlite3.connect(database) as conn:
        found = conn.execute(sql).fetchall()
    conn.close()
    return found


def children(url: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT id, parent_id FROM child ORDER BY id")


ALL_CHILDREN = [(10, 1), (11, 1), (12, 2)]


def test_caught_refusal_still_fails_the_step(fk_project: MakeProject) -> None:
    """A migration that catches the refused PRAGMA still fails, rolled back, rows kept."""
    body = (
        textwrap.dedent(
            """
            try:
                op.execute("PRAGMA foreign_keys=OFF")
            except Exception:
                pass
            """
        )
        + REBUILD
    )
    app, url = fk_project(body)
    result = upgrade(app)
    assert result.exit_code == 1, result.output
    assert "it sets PRAGMA foreign_keys=OFF inside the migration's transaction" in result.stderr
    assert "ALEMBIC_BINDS['default'] = {'sqlite_foreign_keys': False}" in result.stderr
    assert children(url) == ALL_CHILDREN
    assert version_rows(url) == {"fk000001"}


def test_caught_refusal_fails_a_harmless_step(fk_project: MakeProject) -> None:
    """A caught refusal fails the step even when nothing else in it would lose rows."""
    body = """
    try:
        op.execute("PRAGMA foreign_keys=OFF")
    except Exception:
        pass
    op.add_column("parent", sa.Column("name", sa.String(20)))
    """
    app, url = fk_project(body)
    result = upgrade(app)
    assert result.exit_code == 1, result.output
    assert "it sets PRAGMA foreign_keys=OFF inside the migration's transaction" in result.stderr
    assert rows(url, "SELECT name FROM pragma_table_info('parent')") == [("id",)]
    assert version_rows(url) == {"fk000001"}


def test_upper_case_pragma_refused(fk_project: MakeProject) -> None:
    """PRAGMA FOREIGN_KEYS=OFF in upper case is refused like the lower-case spelling."""
    app, url = fk_project('op.execute("PRAGMA FOREIGN_KEYS=OFF")\n' + REBUILD)
    result = upgrade(app)
    assert result.exit_code == 1, result.output
    assert "it sets PRAGMA foreign_keys=OFF inside the migration's transaction" in result.stderr
    assert children(url) == ALL_CHILDREN
    assert version_rows(url) == {"fk000001"}


def test_reading_the_pragma_allowed(fk_project: MakeProject) -> None:
    """A migration may read PRAGMA foreign_keys inside its transaction."""
    body = """
    value = op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar()
    op.add_column("parent", sa.Column("name", sa.String(20), server_default=str(value)))
    """
    app, url = fk_project(body)
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert rows(url, "SELECT DISTINCT name FROM parent") == [("1",)]
    assert version_rows(url) == {"fk000002"}


@pytest.mark.parametrize("ondelete", ["CASCADE", "SET NULL"])
def test_rebuild_with_foreign_keys_on_fails(fk_project: MakeProject, ondelete: str) -> None:
    """A rebuild that drops a table an ON DELETE action points at fails; rows are kept."""
    app, url = fk_project(REBUILD, ondelete=ondelete)
    result = upgrade(app)
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert (
        f"it dropped or rebuilt table 'parent' while foreign keys are on, so ON DELETE "
        f"{ondelete} on table 'child' would have deleted or changed its rows; the step was "
        "rolled back. Set ALEMBIC_BINDS['default'] = {'sqlite_foreign_keys': False} to run "
        "such a migration with foreign keys off and checked before it commits"
    ) in message
    assert children(url) == ALL_CHILDREN
    assert rows(url, "SELECT name FROM pragma_table_info('parent')") == [("id",)]
    assert version_rows(url) == {"fk000001"}


def test_rebuild_without_on_delete_action_allowed(fk_project: MakeProject) -> None:
    """A rebuild is not blamed on a foreign key without an ON DELETE action."""
    app, url = fk_project('op.execute("DELETE FROM child")\n' + REBUILD, ondelete="NO ACTION")
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert rows(url, "SELECT id FROM parent ORDER BY id") == [(1,), (2,)]
    assert version_rows(url) == {"fk000002"}


def test_rebuild_with_foreign_keys_off_option(fk_project: MakeProject) -> None:
    """The fix the message names: the same rebuild passes with sqlite_foreign_keys False."""
    app, url = fk_project(REBUILD, sqlite_foreign_keys=False)
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert children(url) == ALL_CHILDREN
    assert version_rows(url) == {"fk000002"}


def test_drop_child_then_parent_allowed(fk_project: MakeProject) -> None:
    """Dropping the referencing table first, then its parent, in one step is no loss."""
    app, url = fk_project('op.drop_table("child")\nop.drop_table("parent")')
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert rows(url, "SELECT name FROM sqlite_master WHERE name IN ('child', 'parent')") == []
    assert version_rows(url) == {"fk000002"}


def test_unreferenced_tables_dropped_and_rebuilt(fk_project: MakeProject) -> None:
    """Rebuilding or dropping tables nothing references, with foreign keys on, is allowed."""
    body = """
    with op.batch_alter_table("child", recreate="always") as batch:
        batch.add_column(sa.Column("name", sa.String(20)))
    op.create_table("lone", sa.Column("id", sa.Integer, primary_key=True))
    op.drop_table("lone")
    """
    app, url = fk_project(body)
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert children(url) == ALL_CHILDREN
    assert version_rows(url) == {"fk000002"}


def test_each_step_judged_on_its_own_drops(fk_project: MakeProject) -> None:
    """A step that recreates tables an earlier step dropped is not blamed for that drop."""
    drop = 'op.drop_table("child")\nop.drop_table("parent")'
    recreate = """
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE")),
    )
    """
    app, url = fk_project(drop, recreate)
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert version_rows(url) == {"fk000003"}


def test_keys_turned_on_in_autocommit_block_checked(fk_project: MakeProject) -> None:
    """With sqlite_foreign_keys False, turning keys on mid-migration, then rebuilding, fails."""
    body = (
        textwrap.dedent(
            """
            with op.get_context().autocommit_block():
                op.execute("PRAGMA foreign_keys=yes")
            """
        )
        + REBUILD
    )
    app, url = fk_project(body, sqlite_foreign_keys=False)
    result = upgrade(app)
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "it dropped or rebuilt table 'parent' while foreign keys are on" in message
    assert "Leave foreign keys off until the migration has ended" in message
    assert children(url) == ALL_CHILDREN
    assert version_rows(url) == {"fk000001"}


def add_orphan(url: str) -> None:
    """A child of parent 42, which does not exist (foreign keys are off by default)."""
    database = sa.make_url(url).database
    assert database is not None
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO child (id, parent_id) VALUES (99, 42)")
    conn.close()


def test_old_orphans_do_not_fail_a_step(fk_project: MakeProject) -> None:
    """Rows broken before the migration are not the step's doing: it passes the check."""
    app, url = fk_project(REBUILD, sqlite_foreign_keys=False)
    add_orphan(url)
    result = upgrade(app)
    assert result.exit_code == 0, result.output
    assert children(url) == [*ALL_CHILDREN, (99, 42)]
    assert version_rows(url) == {"fk000002"}


def test_new_orphans_fail_beside_old_ones(fk_project: MakeProject) -> None:
    """A step that breaks rows fails the check even where older broken rows exist."""
    body = REBUILD + 'op.execute("DELETE FROM parent WHERE id = 2")\n'
    app, url = fk_project(body, sqlite_foreign_keys=False)
    add_orphan(url)
    result = upgrade(app)
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "PRAGMA foreign_key_check found 1 row(s) referencing rows that do not exist" in message
    assert rows(url, "SELECT id FROM parent ORDER BY id") == [(1,), (2,)]
    assert version_rows(url) == {"fk000001"}
