"""Red team, issue 17: the pytest plugin's problems the red team found, pinned (each
failed before its fix).

Each test writes a small project under pytester's folder and runs pytest on it in a
subprocess. The project's "real" database stands for the application's own database,
which the plugin promises never to touch.
"""

from __future__ import annotations

import sqlite3
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _server_url

pytest_plugins = ["pytester"]

APP = """\
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from flask_alembic import Alembic

class Base(DeclarativeBase):
    pass

db = SQLAlchemy(model_class=Base)

class T(db.Model):
    __tablename__ = "t"
    id: Mapped[int] = mapped_column(primary_key=True)

{models}

def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = {url!r}
    app.config["SQLALCHEMY_BINDS"] = {binds!r}
    app.config.update({config!r})
    db.init_app(app)
    Alembic(app)
    return app
"""

REVISION = """\
import sqlalchemy as sa
from alembic import op
revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = {depends!r}

def upgrade():
{up}

def downgrade():
{down_body}
"""

CREATE_T = 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))'


def _project(
    root: Path,
    url: str,
    revisions: list[tuple[str, str | None, str, str, str | None, str, tuple[str, ...] | None]],
    *,
    binds: dict[str, str] | None = None,
    config: dict[str, object] | None = None,
    models: str = "",
    ini: str = "",
) -> None:
    (root / "proj" / "migrations").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "tests" / "conftest.py").write_text("")
    (root / "pytest.ini").write_text(
        f"[pytest]\nflask_alembic_app = proj:create_app\ntestpaths = tests\n{ini}"
    )
    (root / "proj" / "__init__.py").write_text(
        APP.format(url=url, binds=binds or {}, config=config or {}, models=models)
    )
    for rev, down, up, down_body, depends, folder, labels in revisions:
        where = root / "proj" / "migrations" / folder
        where.mkdir(exist_ok=True)
        (where / f"{rev}_r.py").write_text(
            REVISION.format(
                rev=rev,
                down=down,
                labels=labels,
                depends=depends,
                up=textwrap.indent(up or "pass", "    "),
                down_body=textwrap.indent(down_body or "pass", "    "),
            )
        )


def test_migration_using_db_session_does_not_reach_the_app_database(
    pytester: pytest.Pytester,
) -> None:
    """A data migration written with Flask-SQLAlchemy's ``db.session`` (common in
    Flask-Migrate projects) runs, during the generated tests, on the app's own database:
    here it deletes the real rows, and every test passes."""
    real = pytester.path / "real.db"
    with sqlite3.connect(real) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    conn.close()
    delete = (
        'from proj import db\ndb.session.execute(sa.text("DELETE FROM t"))\ndb.session.commit()'
    )
    _project(
        pytester.path,
        f"sqlite:///{real}",
        [
            ("a1", None, CREATE_T, 'op.drop_table("t")', None, "", ("default",)),
            ("a2", "a1", delete, "", None, "", None),
        ],
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider")
    with sqlite3.connect(real) as conn:
        count = conn.execute("SELECT count(*) FROM t").fetchone()[0]
    conn.close()
    assert count == 3, "the generated tests deleted the app database's rows"


def test_shared_database_with_cross_bind_dependency_leaves_no_false_trace(
    pytester: pytest.Pytester,
) -> None:
    """Two binds share one database; a2 (default) depends_on b1 (other). Walking
    'default', the upgrade of a2 also applies b1, whose tables the no-trace test then
    blames on a2's downgrade: '+ table u is left behind'."""
    shared = f"sqlite:///{pytester.path / 'shared.db'}"
    _project(
        pytester.path,
        shared,
        [
            ("a1", None, CREATE_T, 'op.drop_table("t")', None, "", ("default",)),
            (
                "b1",
                None,
                'op.create_table("u", sa.Column("id", sa.Integer, primary_key=True))',
                'op.drop_table("u")',
                None,
                "other",
                ("other",),
            ),
            ("a2", "a1", 'op.execute("SELECT 1")', "", "b1", "", None),
        ],
        binds={"other": shared},
        config={"ALEMBIC_BINDS": {"other": {"version_table": "other_version"}}},
        models=(
            "class U(db.Model):\n"
            '    __tablename__ = "u"\n'
            '    __bind_key__ = "other"\n'
            "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        ),
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=12)


@pytest.mark.mysql
def test_version_table_schema_on_mariadb_stays_in_the_test_database(
    pytester: pytest.Pytester,
) -> None:
    """On MariaDB a schema is another database on the same server. With
    ``version_table_schema`` set to the app's database, the upgrade test reads the app's
    real version table (at a1), runs only a2 on the test database, writes 'a2' into
    the real version table, and passes: the real database now claims a2 without table u."""
    admin = _server_url("mysql")
    real = f"rt17_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {real}"))
        conn.execute(sa.text(f"CREATE TABLE {real}.t (id INT PRIMARY KEY)"))
        conn.execute(sa.text(f"CREATE TABLE {real}.alembic_version (version_num VARCHAR(32))"))
        conn.execute(sa.text(f"INSERT INTO {real}.alembic_version VALUES ('a1')"))
    try:
        _project(
            pytester.path,
            admin.set(database=real).render_as_string(hide_password=False),
            [
                ("a1", None, CREATE_T, 'op.drop_table("t")', None, "", ("default",)),
                (
                    "a2",
                    "a1",
                    'op.create_table("u", sa.Column("id", sa.Integer, primary_key=True))',
                    'op.drop_table("u")',
                    None,
                    "",
                    None,
                ),
            ],
            config={"ALEMBIC_BINDS": {"default": {"version_table_schema": real}}},
            models=(
                "class U(db.Model):\n"
                '    __tablename__ = "u"\n'
                "    id: Mapped[int] = mapped_column(primary_key=True)\n"
            ),
            ini=f"flask_alembic_servers =\n    * = {admin.render_as_string(hide_password=False)}\n",
        )
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_upgrade")
        result.stdout.fnmatch_lines(
            [f"*Bind 'default' names schema '{real}', which on MariaDB/MySQL is another database*"]
        )
        with engine.connect() as conn:
            version = conn.execute(sa.text(f"SELECT version_num FROM {real}.alembic_version"))
            assert version.scalars().all() == ["a1"], "the app's version table was rewritten"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {real}"))
        engine.dispose()
