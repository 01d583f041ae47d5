"""The pytest plugin (issue 17): its generated tests and fixtures, run on small projects.

Each test writes a project under pytester's folder (an app package ``shop`` with
Flask-SQLAlchemy binds, revision files written directly) and runs pytest on it, mostly
in-process; on PostgreSQL and MariaDB the binds go to the server through
``flask_alembic_servers``. The app's own databases are files or names that must never
appear: the plugin only touches databases it created.
"""

from __future__ import annotations

import re
import textwrap
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import alembic.ddl
import flask_sqlalchemy
import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
import sqlalchemy.dialects.mysql
import sqlalchemy.dialects.postgresql
from conftest import _server_url
from conftest import CHECKS
from conftest import MakeURL

from flask_alembic import pytest_checks
from flask_alembic import scratch

#: Imported here, before any test: pytester forgets the modules imported during a test.
#: Imported again, SQLAlchemy's dialects warn that their functions are registered twice,
#: and psycopg's C extension (never imported twice) raises errors of the forgotten
#: classes, which SQLAlchemy no longer recognises as the driver's.
PRELOADED = (alembic.ddl, flask_sqlalchemy, psycopg, pymysql, sqlalchemy.dialects, pytest_checks)

pytest_plugins = ["pytester"]

MakeProject = Callable[..., "Project"]

APP = """\
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from flask_alembic import Alembic


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = {default!r}
    app.config["SQLALCHEMY_BINDS"] = {binds!r}
    db.init_app(app)
    from . import models  # noqa: F401
    Alembic(app)
    return app
"""

MODEL = """
class {name}(db.Model):
    __tablename__ = {table!r}
    __bind_key__ = {bind!r}
    id = sa.Column(sa.Integer, primary_key=True)
{columns}
"""

REVISION = '''\
"""{rev}"""
import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = {depends!r}
{extra}

def upgrade():
{up}


def downgrade():
{downgrade}
'''


def create(table: str, *columns: str, extra: str = "") -> str:
    """``op.create_table`` of ``table`` with an ``id`` key and ``String`` columns."""
    cols = "".join(f", sa.Column({c!r}, sa.String(50))" for c in columns)
    return f"op.create_table({table!r}, sa.Column('id', sa.Integer, primary_key=True){cols}{extra})"


@dataclass
class Project:
    """A Flask-SQLAlchemy app ``shop`` with binds, models and revisions, on one dialect."""

    root: Path
    dialect: str
    binds: tuple[str, ...]
    #: The app's own database URLs, by bind: never to be created by the plugin.
    app_urls: dict[str, str] = field(default_factory=dict)
    admin: sa.URL | None = None
    models: list[str] = field(default_factory=list)
    ini: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "shop" / "migrations").mkdir(parents=True)
        (self.root / "conftest.py").write_text("", encoding="utf-8")
        for bind in self.binds:
            if self.admin is None:
                self.app_urls[bind] = f"sqlite:///{self.root / f'app-{bind}.db'}"
            else:
                database = f"fa_app_{uuid.uuid4().hex[:12]}"
                self.app_urls[bind] = self.admin.set(database=database).render_as_string(
                    hide_password=False
                )
        self.ini["flask_alembic_app"] = "shop:create_app"
        if self.admin is not None:
            admin = self.admin.render_as_string(hide_password=False)
            self.ini["flask_alembic_servers"] = "".join(
                f"\n    {bind} = {admin}" for bind in self.binds
            )

    def model(self, name: str, table: str, bind: str, *columns: str) -> None:
        cols = "".join(f"    {c} = sa.Column(sa.String(50))\n" for c in columns)
        key = None if bind == "default" else bind
        self.models.append(MODEL.format(name=name, table=table, bind=key, columns=cols))

    def revision(
        self,
        bind: str,
        rev: str,
        down: str | None,
        up: str,
        downgrade: str = "pass",
        *,
        depends: str | None = None,
        extra: str = "",
    ) -> Path:
        folder = self.root / "shop" / "migrations"
        if bind != "default":
            folder = folder / bind
            folder.mkdir(exist_ok=True)
        path = folder / f"{rev}_.py"
        path.write_text(
            REVISION.format(
                rev=rev,
                down=down,
                labels=(bind,) if down is None else None,
                depends=depends,
                extra=extra,
                up=textwrap.indent(up, "    "),
                downgrade=textwrap.indent(downgrade, "    "),
            ),
            encoding="utf-8",
        )
        return path

    def write(self) -> None:
        """Write the app package and the ini file."""
        binds = {b: u for b, u in self.app_urls.items() if b != "default"}
        package = self.root / "shop"
        (package / "__init__.py").write_text(
            APP.format(default=self.app_urls["default"], binds=binds), encoding="utf-8"
        )
        (package / "models.py").write_text(
            "import sqlalchemy as sa\n\nfrom . import db\n" + "".join(self.models),
            encoding="utf-8",
        )
        lines = "".join(f"{key} = {value}\n" for key, value in self.ini.items())
        (self.root / "pytest.ini").write_text(f"[pytest]\n{lines}", encoding="utf-8")

    def app_databases_left(self) -> list[str]:
        """The app's own databases that exist now (files, or databases on the server)."""
        if self.admin is None:
            return [
                u for u in self.app_urls.values() if Path(sa.make_url(u).database or "").exists()
            ]
        names = {sa.make_url(u).database for u in self.app_urls.values()}
        return [name for name in server_databases(self.admin, "fa_app_") if name in names]


def server_databases(admin: sa.URL, prefix: str) -> list[str]:
    """The databases on ``admin``'s server whose name starts with ``prefix``."""
    if admin.get_backend_name() == "postgresql":
        query = "SELECT datname FROM pg_database WHERE datname LIKE :p"
    else:
        query = "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE :p"
    engine = sa.create_engine(admin, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(sa.text(query), {"p": prefix + "%"})]
    finally:
        engine.dispose()


@pytest.fixture
def systemp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary folder the plugin sees, emptied for this test alone."""
    import tempfile

    folder = tmp_path / "systemp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's own prefix for the plugin's server databases (still ``fa_test_``)."""
    value = f"{scratch.DATABASE_PREFIX}{uuid.uuid4().hex[:8]}_"
    monkeypatch.setattr(scratch, "DATABASE_PREFIX", value)
    return value


@pytest.fixture
def make_project(
    pytester: pytest.Pytester, systemp: Path, prefix: str
) -> Iterator[Callable[..., Project]]:
    """``make_project(binds, dialect)``: a project; at the end, nothing the plugin made is
    left (temporary folder, ``fa_test_`` databases, the app's own databases)."""
    made: list[Project] = []

    def factory(
        binds: tuple[str, ...] = ("default", "analytics"), dialect: str = "sqlite"
    ) -> Project:
        admin = None if dialect == "sqlite" else _server_url(dialect)
        made.append(Project(pytester.path, dialect, binds, admin=admin))
        return made[-1]

    yield factory
    assert not list(systemp.iterdir())
    for project in made:
        if project.admin is not None:
            assert server_databases(project.admin, prefix) == []
        assert project.app_databases_left() == []


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # No pytest-cov in the inner session: it would stop the outer one's measurement.
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:cov", "-v", "-W", "error", *args)


def statuses(result: pytest.RunResult) -> dict[str, str]:
    """Each test's outcome, by its id (``test_up_down[analytics]``), from ``-v`` lines."""
    found: dict[str, str] = {}
    for line in result.outlines:
        match = re.match(r"^\S+::(\S+) (PASSED|FAILED|SKIPPED|ERROR)\b", line)
        if match:
            found[match[1]] = match[2]
    return found


def generated(binds: tuple[str, ...], outcome: str = "PASSED") -> dict[str, str]:
    return {f"{check}[{bind}]": outcome for check in CHECKS for bind in binds}


# -- broken histories -----------------------------------------------------------------


def broken(make_project: MakeProject, dialect: str) -> Project:
    """A two-bind project, healthy until a test breaks its ``analytics`` bind."""
    project = make_project(dialect=dialect)
    project.model("Account", "account", "default", "name")
    project.model("Event", "event", "analytics", "kind")
    project.revision("default", "a1", None, create("account", "name"), "op.drop_table('account')")
    project.revision("analytics", "b1", None, create("event", "kind"), "op.drop_table('event')")
    return project


def test_two_heads(pytester: pytest.Pytester, make_project: MakeProject, dialect: str) -> None:
    """Two heads in one bind fail test_single_head[bind], naming both revisions and files."""
    project = broken(make_project, dialect)
    project.revision("analytics", "b2", "b1", "pass")
    project.revision("analytics", "b3", "b1", "pass")
    project.write()
    result = run(pytester)
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_single_head[analytics]": "FAILED"
    }
    result.stdout.fnmatch_lines(
        [
            "*bind 'analytics' has 2 heads: b* (shop/migrations/analytics/b*_.py);"
            " b* (shop/migrations/analytics/b*_.py). Merge them*"
        ]
    )


def test_downgrade_fails(
    pytester: pytest.Pytester, make_project: MakeProject, dialect: str
) -> None:
    """A downgrade that fails fails test_up_down[bind], naming the revision and its file;
    the no-trace check says where it stopped."""
    project = broken(make_project, dialect)
    project.revision("analytics", "b2", "b1", "pass", "op.drop_table('no_such_table')")
    project.write()
    result = run(pytester)
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_up_down[analytics]": "FAILED",
        "test_downgrade_leaves_no_trace[analytics]": "FAILED",
    }
    result.stdout.fnmatch_lines(
        [
            "*bind 'analytics': revision b2 (shop/migrations/analytics/b2_.py) failed to"
            " downgrade (up/down/up, one revision at a time from empty): *no_such_table*",
            "*bind 'analytics': checked up to revision b2 (shop/migrations/analytics/b2_.py)"
            " only: it failed the up/down walk*",
        ],
        consecutive=False,
    )


def test_downgrade_leaves_a_table(
    pytester: pytest.Pytester, make_project: MakeProject, dialect: str
) -> None:
    """A downgrade that leaves its table behind fails test_downgrade_leaves_no_trace[bind]."""
    project = broken(make_project, dialect)
    project.model("Leftover", "leftover", "analytics")
    project.revision("analytics", "b2", "b1", create("leftover", extra=", if_not_exists=True"))
    project.write()
    result = run(pytester)
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_downgrade_leaves_no_trace[analytics]": "FAILED"
    }
    result.stdout.fnmatch_lines(
        [
            "*bind 'analytics': downgrading revision b2 (shop/migrations/analytics/b2_.py)"
            " does not give back the schema from before it:",
            "*+ table leftover is left behind",
        ]
    )


def test_model_missing_from_migrations(
    pytester: pytest.Pytester, make_project: MakeProject, dialect: str
) -> None:
    """A model no revision creates fails test_models_match[bind], naming the head."""
    project = broken(make_project, dialect)
    project.model("Missing", "missing", "analytics", "label")
    project.write()
    result = run(pytester)
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_models_match[analytics]": "FAILED"
    }
    result.stdout.fnmatch_lines(
        [
            "*bind 'analytics': the models differ from the database upgraded to"
            " b1 (shop/migrations/analytics/b1_.py); autogenerate would write:",
            "    op.create_table('missing',",
            "    sa.Column('label', sa.String(length=50), nullable=True),",
            "Write a revision: 'flask db revision --bind analytics \"describe the change\"'.",
        ]
    )


def test_model_not_registered(
    pytester: pytest.Pytester, make_project: MakeProject, dialect: str
) -> None:
    """A model in a module the app never imports fails test_models_registered[bind]."""
    project = broken(make_project, dialect)
    project.write()
    (project.root / "shop" / "extra.py").write_text(
        "import sqlalchemy as sa\n\nfrom . import db\n"
        + MODEL.format(name="Orphan", table="orphan", bind="analytics", columns=""),
        encoding="utf-8",
    )
    result = run(pytester)
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_models_registered[analytics]": "FAILED"
    }
    result.stdout.fnmatch_lines(
        [
            "*bind 'analytics' (head b1 (shop/migrations/analytics/b1_.py)): table 'orphan'"
            " of model shop.extra.Orphan (in shop/extra.py) is declared, but the app never"
            " imports it*"
        ]
    )


# -- a healthy project and the fixtures -----------------------------------------------

USER_TESTS = """\
import pytest
import sqlalchemy as sa

from flask_alembic.errors import FlaskAlembicError

DIALECT = {dialect!r}
PREFIX = {prefix!r}


def tables(flask_alembic, bind):
    with flask_alembic.connect(bind) as connection:
        return set(sa.inspect(connection).get_table_names()) - {{"alembic_version"}}


def test_fresh_databases(flask_alembic):
    for bind in ("default", "analytics", "audit"):
        assert flask_alembic.current(bind) == ()
        assert tables(flask_alembic, bind) == set()
        url = flask_alembic.databases.url(bind)
        if DIALECT == "sqlite":
            assert "flask-alembic-" in url.database
        else:
            assert url.database.startswith(PREFIX)
    flask_alembic.migrate_to("analytics@b1")


def test_fresh_again(flask_alembic):
    assert [flask_alembic.current(b) for b in ("default", "analytics")] == [(), ()]


def test_migrate_to_bind_at_revision(flask_alembic):
    flask_alembic.migrate_to("analytics@b1")
    assert flask_alembic.current("analytics") == ("b1",)
    assert flask_alembic.current("default") == ("a1",)  # b1 depends on a1
    assert flask_alembic.current("audit") == ()
    flask_alembic.migrate_to("default@a2")
    assert flask_alembic.current("default") == ("a2",)
    flask_alembic.migrate_to("default@a1")
    assert flask_alembic.current("default") == ("a1",)
    assert "name_upper" not in flask_alembic.table("default", "account").columns
    flask_alembic.migrate_to("analytics@base")
    assert flask_alembic.current("analytics") == ()
    assert tables(flask_alembic, "analytics") == set()


def test_migrate_to_finds_the_bind(flask_alembic):
    flask_alembic.migrate_to("c1")
    assert flask_alembic.current("audit") == ("c1",)
    assert flask_alembic.current("default") == ()
    with pytest.raises(FlaskAlembicError, match="there is no bind 'nope'"):
        flask_alembic.migrate_to("nope@head")


def test_data_migration(flask_alembic):
    flask_alembic.migrate_to("a1")
    rows = [{{"id": 1, "name": "ann"}}, {{"id": 2, "name": "bo"}}]
    flask_alembic.insert("default", "account", rows)
    flask_alembic.migrate_to("a2")
    assert flask_alembic.rows("default", "account") == [
        {{"id": 1, "name": "ann", "name_upper": "ANN"}},
        {{"id": 2, "name": "bo", "name_upper": "BO"}},
    ]


def test_each_bind(flask_alembic, flask_alembic_bind):
    flask_alembic.migrate_to(flask_alembic_bind + "@head")
    assert len(flask_alembic.current(flask_alembic_bind)) == 1
"""

BINDS3 = ("default", "analytics", "audit")


def healthy(make_project: MakeProject, dialect: str) -> Project:
    """Three binds; ``analytics`` depends on the default bind; ``a2`` migrates data."""
    project = make_project(BINDS3, dialect)
    project.model("Account", "account", "default", "name", "name_upper")
    project.model("Event", "event", "analytics", "kind")
    project.model("Entry", "entry", "audit", "note")
    project.revision("default", "a1", None, create("account", "name"), "op.drop_table('account')")
    project.revision(
        "default",
        "a2",
        "a1",
        "op.add_column('account', sa.Column('name_upper', sa.String(50)))\n"
        "op.execute('UPDATE account SET name_upper = UPPER(name)')",
        "with op.batch_alter_table('account') as batch:\n    batch.drop_column('name_upper')",
    )
    project.revision(
        "analytics", "b1", None, create("event", "kind"), "op.drop_table('event')", depends="a1"
    )
    project.revision("audit", "c1", None, create("entry", "note"), "op.drop_table('entry')")
    return project


def test_healthy_project_and_fixtures(
    pytester: pytest.Pytester, make_project: MakeProject, dialect: str, prefix: str
) -> None:
    """Three binds pass the 18 generated tests; the fixtures give fresh databases, move
    one bind up and down, find a revision's bind and check a data migration."""
    project = healthy(make_project, dialect)
    project.write()
    pytester.makepyfile(test_mine=USER_TESTS.format(dialect=dialect, prefix=prefix))
    result = run(pytester)
    mine = {
        f"test_{name}": "PASSED"
        for name in (
            "fresh_databases",
            "fresh_again",
            "migrate_to_bind_at_revision",
            "migrate_to_finds_the_bind",
            "data_migration",
        )
    } | {f"test_each_bind[{bind}]": "PASSED" for bind in BINDS3}
    assert statuses(result) == generated(BINDS3) | mine
    assert result.ret == 0
    where = "temporary SQLite files"
    if project.admin is not None:
        shown = project.admin.render_as_string(hide_password=True)
        where = f"default, analytics, audit on {shown}; other binds on temporary SQLite files"
    result.stdout.fnmatch_lines([f"flask-alembic: app shop:create_app; test databases: {where}"])


def test_entry_point_in_a_new_process(pytester: pytest.Pytester, make_project: MakeProject) -> None:
    """Installed, the plugin is found through its ``pytest11`` entry point in a real pytest
    process: the healthy project's 18 tests run and pass, the header names the app."""
    project = healthy(make_project, "sqlite")
    project.write()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:cov", "-v", "-W", "error"
    )
    assert statuses(result) == generated(BINDS3)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["flask-alembic: app shop:create_app; test databases: temporary SQLite files"]
    )


# -- downgrades not tested ------------------------------------------------------------


def test_minimum_revision_and_irreversible(
    pytester: pytest.Pytester, make_project: MakeProject, dialect: str
) -> None:
    """Revisions below a minimum and those marked irreversible are not downgraded; the
    terminal summary says why, and a bind with no downgrade tested is skipped."""
    project = make_project(dialect=dialect)
    project.model("Account", "account", "default")
    project.model("Plan", "plan", "default")
    project.model("Note", "note", "default")
    project.model("Event", "event", "analytics")
    fail = "raise RuntimeError('this downgrade must not run')"
    project.revision("default", "a1", None, create("account"), fail)
    project.revision("default", "a2", "a1", create("plan"), "op.drop_table('plan')")
    project.revision(
        "default", "a3", "a2", create("note"), fail, extra="irreversible = 'drops the old names'"
    )
    project.revision("analytics", "b1", None, create("event"), fail, extra="irreversible = True")
    project.ini["flask_alembic_minimum_revisions"] = "a2"
    project.write()
    result = run(pytester, "-rs")
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_up_down[analytics]": "SKIPPED",
        "test_downgrade_leaves_no_trace[analytics]": "SKIPPED",
    }
    result.stdout.fnmatch_lines(
        [
            "*= flask-alembic: downgrades not tested =*",
            "default: a1 (shop/migrations/a1_.py): below the minimum revision a2",
            "default: a3 (shop/migrations/a3_.py): irreversible: drops the old names",
            "analytics: b1 (shop/migrations/analytics/b1_.py): irreversible: marked irreversible",
        ]
    )
    result.stdout.fnmatch_lines(["SKIPPED * no revision's downgrade is tested (b1: irreversible*"])


# -- safety and errors ----------------------------------------------------------------


def test_inactive_without_an_app(pytester: pytest.Pytester, make_project: MakeProject) -> None:
    """With no app named, a project with a conftest collects none of the plugin's tests
    and its app is never imported."""
    project = healthy(make_project, "sqlite")
    del project.ini["flask_alembic_app"]
    project.write()
    (project.root / "shop" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = run(pytester)
    assert statuses(result) == {"test_mine": "PASSED"}
    assert "flask-alembic" not in result.stdout.str()


@pytest.mark.parametrize("give", ["return", "yield"])
def test_app_fixture_overridden(
    pytester: pytest.Pytester, make_project: MakeProject, give: str
) -> None:
    """A project's own no-argument ``flask_alembic_app`` fixture names the app instead of
    the ini file (returning the app or yielding it); the unregistered-model check runs on
    it too."""
    project = broken(make_project, "sqlite")
    del project.ini["flask_alembic_app"]
    project.write()
    (project.root / "shop" / "extra.py").write_text(
        "import sqlalchemy as sa\n\nfrom . import db\n"
        + MODEL.format(name="Orphan", table="orphan", bind=None, columns=""),
        encoding="utf-8",
    )
    pytester.makeconftest(
        f"""
        import pytest

        from shop import create_app


        @pytest.fixture(scope="session")
        def flask_alembic_app():
            {give} create_app()
        """
    )
    result = run(pytester)
    assert statuses(result) == generated(("default", "analytics")) | {
        "test_models_registered[default]": "FAILED"
    }
    result.stdout.fnmatch_lines(
        ["*bind 'default' (head a1 (shop/migrations/a1_.py)): table 'orphan'*"]
    )


def test_app_fixture_taking_fixtures(pytester: pytest.Pytester, make_project: MakeProject) -> None:
    """An overriding fixture that needs other fixtures is one clear collection error."""
    project = broken(make_project, "sqlite")
    del project.ini["flask_alembic_app"]
    project.write()
    pytester.makeconftest(
        """
        import pytest

        from shop import create_app


        @pytest.fixture(scope="session")
        def flask_alembic_app(tmp_path_factory):
            return create_app()
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*flask-alembic: The flask_alembic_app fixture takes other fixtures"
            " (tmp_path_factory); the generated tests need the app when they are collected.*"
        ]
    )


@pytest.mark.parametrize("user_tests", [False, True], ids=["alone", "with-user-tests"])
def test_bad_app_path(
    pytester: pytest.Pytester, make_project: MakeProject, user_tests: bool
) -> None:
    """A ``flask_alembic_app`` that does not import is a clear collection error, once per
    module that needs the app (the plugin's, and a user module taking flask_alembic_bind)."""
    project = broken(make_project, "sqlite")
    project.ini["flask_alembic_app"] = "shop.nowhere:create_app"
    project.write()
    if user_tests:
        pytester.makepyfile(test_mine="def test_mine(flask_alembic_bind):\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(errors=2 if user_tests else 1)
    message = (
        "flask-alembic: Could not load the app 'shop.nowhere:create_app': Could not import"
        " 'shop.nowhere'. Name a module and an app or factory in it, as 'flask --app' takes,"
        " e.g. flask_alembic_app = myapp:create_app."
    )
    lines = ["*ERROR collecting conftest.py*", message]
    if user_tests:
        lines += ["*ERROR collecting test_mine.py*", message]
    result.stdout.fnmatch_lines(lines)
    assert "Traceback" not in result.stdout.str()
    assert "site-packages" not in result.stdout.str()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "default postgresql+psycopg://fa:s3cret-pw@127.0.0.1:1/postgres",
            "flask_alembic_servers: 'default postgresql+psycopg://fa:***@127.0.0.1:1/postgres'"
            " is not 'BIND = URL'.*",
        ),
        (
            "default postgresql+psycopg://fa:s3cret-pw=x@127.0.0.1:1/postgres",
            "flask_alembic_servers: the URL in"
            " 'default postgresql+psycopg://fa:***@127.0.0.1:1/postgres' is not a database URL.*",
        ),
        (
            "default = sqlite:///s3cret-pw.db",
            "flask_alembic_servers: bind 'default' names a sqlite server; only PostgreSQL,"
            " MariaDB and MySQL servers get a database per session.*",
        ),
    ],
    ids=["no-equals", "equals-in-password", "sqlite"],
)
def test_servers_that_do_not_parse(
    pytester: pytest.Pytester, make_project: MakeProject, line: str, message: str
) -> None:
    """A ``flask_alembic_servers`` line that does not parse is one usage error before any
    test runs (not one error per test), the password hidden."""
    project = broken(make_project, "sqlite")
    project.ini["flask_alembic_servers"] = line
    project.write()
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert statuses(result) == {}
    result.stderr.fnmatch_lines([f"ERROR: flask-alembic: {message}"])
    output = result.stdout.str() + result.stderr.str()
    assert "s3cret-pw" not in output
    assert output.count("flask-alembic: flask_alembic_servers") == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "default = postgresql+psycopg://fa:s3cret-pw@127.0.0.1:1/postgres",
            "Could not create the test database fa_test_* on"
            " postgresql+psycopg://fa:***@127.0.0.1:1/postgres: *",
        ),
        (
            "default = mysql+pymysql://fa:s3cret-pw@127.0.0.1:1/mysql",
            "Could not create the test database fa_test_* on"
            " mysql+pymysql://fa:***@127.0.0.1:1/mysql: *",
        ),
        (
            "defualt = postgresql+psycopg://fa:s3cret-pw@127.0.0.1:1/postgres",
            "flask_alembic_servers names 'defualt', which the app has no bind for; its binds"
            " are 'default', 'analytics'. Spell the bind as the app names it, or write * for"
            " every bind.",
        ),
        (
            "default = mysql+mysqldb://fa:s3cret-pw@127.0.0.1:1/mysql",
            "flask_alembic_servers: the driver of mysql+mysqldb://fa:***@127.0.0.1:1/mysql is"
            " not installed (*). Install it*",
        ),
    ],
    ids=["postgresql-unreachable", "mysql-unreachable", "unknown-bind", "no-driver"],
)
def test_bad_servers(
    pytester: pytest.Pytester, make_project: MakeProject, line: str, message: str
) -> None:
    """A server that cannot be reached, a bind the app does not have, a driver that is not
    installed: the tests that need the databases fail with one clear line, the password
    hidden."""
    project = broken(make_project, "sqlite")
    project.ini["flask_alembic_servers"] = line
    project.ini["flask_alembic_tests"] = "\n    test_single_head\n    test_upgrade"
    project.write()
    result = run(pytester)
    assert statuses(result) == {
        "test_single_head[default]": "ERROR",
        "test_single_head[analytics]": "ERROR",
        "test_upgrade[default]": "ERROR",
        "test_upgrade[analytics]": "ERROR",
    }
    result.stdout.fnmatch_lines([f"flask-alembic: {message}"])
    output = result.stdout.str() + result.stderr.str()
    assert "s3cret-pw" not in output
    assert "During handling" not in output


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_server_refuses_with_password(
    pytester: pytest.Pytester, make_project: MakeProject, make_url: MakeURL, server: str
) -> None:
    """A real user with a password who may not create databases: the server's refusal is
    one line naming the server, and the password is nowhere in the output."""
    password = "pw-s3cret-9"
    url = make_url(server, password=password)
    project = broken(make_project, "sqlite")
    project.ini["flask_alembic_servers"] = f"analytics = {url}"
    project.ini["flask_alembic_tests"] = "test_upgrade"
    project.write()
    result = run(pytester)
    assert statuses(result) == {
        "test_upgrade[default]": "ERROR",
        "test_upgrade[analytics]": "ERROR",
    }
    shown = sa.make_url(url).render_as_string(hide_password=True)
    result.stdout.fnmatch_lines(
        [f"flask-alembic: Could not create the test database fa_test_* on {shown}: *denied*"]
    )
    result.stdout.fnmatch_lines(
        [
            f"flask-alembic: app shop:create_app; test databases: analytics on {shown}; "
            "other binds on temporary SQLite files"
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert password not in output
    assert "During handling" not in output


def test_no_trace_selected_alone_and_after_a_walk_without_it(
    pytester: pytest.Pytester, make_project: MakeProject
) -> None:
    """The walk compares schemas only when the no-trace test runs; selected alone (or after
    the up/down test ran without comparing), it still finds the table left behind."""
    project = broken(make_project, "sqlite")
    project.model("Leftover", "leftover", "analytics")
    project.revision("analytics", "b2", "b1", create("leftover", extra=", if_not_exists=True"))
    project.write()
    result = run(pytester, "-k", "no_trace and analytics")
    assert statuses(result) == {"test_downgrade_leaves_no_trace[analytics]": "FAILED"}
    result.stdout.fnmatch_lines(["*+ table leftover is left behind"])
    only_up_down = run(pytester, "-k", "up_down and analytics")
    assert statuses(only_up_down) == {"test_up_down[analytics]": "PASSED"}
    pytester.makepyfile(
        test_mine="""
def test_walk_then_compare(flask_alembic_migrations):
    first = flask_alembic_migrations.walk("analytics", compare=False)
    assert not first.compared and first.traces == []
    again = flask_alembic_migrations.walk("analytics")
    assert again.compared
    assert [rev for rev, _, _ in again.traces] == ["b2"]
"""
    )
    mine = run(pytester, "test_mine.py")
    assert statuses(mine) == {"test_walk_then_compare": "PASSED"}


def test_no_conftest_says_so(pytester: pytest.Pytester, make_project: MakeProject) -> None:
    """An app named but no conftest.py collected: a line says the tests need one; asking for
    one file does not print it."""
    project = healthy(make_project, "sqlite")
    project.write()
    (project.root / "conftest.py").unlink()
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = run(pytester)
    assert statuses(result) == {"test_mine": "PASSED"}
    result.stdout.fnmatch_lines(
        ["flask-alembic: flask_alembic_app is set, but no conftest.py was collected*"]
    )
    one_file = run(pytester, "test_mine.py")
    assert statuses(one_file) == {"test_mine": "PASSED"}
    assert "no conftest.py" not in one_file.stdout.str()


def test_postgresql_leftovers_outside_tables(
    pytester: pytest.Pytester, make_project: MakeProject
) -> None:
    """On PostgreSQL a downgrade that leaves a schema (and a table in it, which no model
    names), a function, a check constraint or a table comment fails the no-trace test,
    each named."""
    project = broken(make_project, "postgresql")
    project.revision(
        "analytics",
        "b2",
        "b1",
        "\n".join(
            [
                'op.execute("CREATE SCHEMA extra")',
                'op.execute("CREATE TABLE extra.junk (id int)")',
                "op.execute(\"CREATE FUNCTION one() RETURNS int AS 'SELECT 1' LANGUAGE sql\")",
                'op.execute("ALTER TABLE event ADD CONSTRAINT positive CHECK (id > 0)")',
                "op.execute(\"COMMENT ON TABLE event IS 'hello'\")",
            ]
        ),
    )
    project.write()
    result = run(pytester, "-k", "no_trace")
    assert statuses(result) == {
        "test_downgrade_leaves_no_trace[default]": "PASSED",
        "test_downgrade_leaves_no_trace[analytics]": "FAILED",
    }
    result.stdout.fnmatch_lines(
        [
            "*bind 'analytics': downgrading revision b2 (shop/migrations/analytics/b2_.py)"
            " does not give back the schema from before it:",
            "  + function public.one() is left behind",
            "  + schema extra is left behind",
            "  ~ table event:",
            "      + check positive (id > 0) is left behind",
            "      + comment (hello) is left behind",
            "  + table extra.junk is left behind",
        ]
    )


@pytest.mark.parametrize(
    "ini",
    [
        "flask_alembic_app = src/shop:create_app",
        "pythonpath = src\nflask_alembic_app = shop:create_app",
    ],
    ids=["path", "pythonpath"],
)
def test_src_layout(pytester: pytest.Pytester, make_project: MakeProject, ini: str) -> None:
    """An app under ``src/``, named by its path (as ``flask --app`` takes it) or found
    through pytest's ``pythonpath``: every generated test passes, the models-registered
    check (in its own process) included."""
    project = healthy(make_project, "sqlite")
    project.write()
    (project.root / "src").mkdir()
    (project.root / "shop").rename(project.root / "src" / "shop")
    (project.root / "pytest.ini").write_text(f"[pytest]\n{ini}\n", encoding="utf-8")
    result = run(pytester)
    assert statuses(result) == generated(BINDS3)


def test_bad_app_path_from_a_fixture(pytester: pytest.Pytester, make_project: MakeProject) -> None:
    """Only a user test file asked for (no conftest.py collected): the app that does not
    import fails the test needing it at setup, with the one line, no traceback."""
    project = broken(make_project, "sqlite")
    project.ini["flask_alembic_app"] = "shop.nowhere:create_app"
    project.write()
    pytester.makepyfile(test_mine="def test_mine(flask_alembic):\n    pass\n")
    result = run(pytester, "test_mine.py")
    assert statuses(result) == {"test_mine": "ERROR"}
    result.stdout.fnmatch_lines(
        ["flask-alembic: Could not load the app 'shop.nowhere:create_app': Could not import*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()


def test_revision_graph_loaded_once_per_session(
    pytester: pytest.Pytester, make_project: MakeProject, tmp_path: Path
) -> None:
    """Every revision file is imported once in the whole session: the 18 generated tests
    and a user test calling the harness many times share one loaded graph."""
    imports = tmp_path / "imports.log"
    project = healthy(make_project, "sqlite")
    count = f"with open({str(imports)!r}, 'a') as log:\n    log.write(revision + '\\n')"
    for bind, rev, down, up, down_sql in (
        ("default", "a1", None, create("account", "name"), "op.drop_table('account')"),
        ("audit", "c1", None, create("entry", "note"), "op.drop_table('entry')"),
    ):
        project.revision(bind, rev, down, up, down_sql, extra=count)
    project.write()
    pytester.makepyfile(
        test_mine="""
def test_many_moves(flask_alembic):
    for _ in range(3):
        flask_alembic.migrate_to("audit@head")
        flask_alembic.migrate_to("audit@base")
        flask_alembic.upgrade()
"""
    )
    result = run(pytester)
    assert statuses(result) == generated(BINDS3) | {"test_many_moves": "PASSED"}
    assert sorted(imports.read_text().split()) == ["a1", "c1"]


def test_minimum_revision_that_is_no_revision(
    pytester: pytest.Pytester, make_project: MakeProject
) -> None:
    """A ``flask_alembic_minimum_revisions`` id that is no revision fails the walk tests of
    every bind, naming the id; the other tests pass and nothing walks."""
    project = broken(make_project, "sqlite")
    project.ini["flask_alembic_minimum_revisions"] = "nope"
    project.write()
    result = run(pytester)
    walk = {
        f"{test}[{bind}]": "FAILED"
        for test in ("test_up_down", "test_downgrade_leaves_no_trace")
        for bind in ("default", "analytics")
    }
    assert statuses(result) == generated(("default", "analytics")) | walk
    result.stdout.fnmatch_lines(
        ["flask_alembic_minimum_revisions names 'nope', which is no revision: *"]
    )


def test_models_package_that_fails_to_import(
    pytester: pytest.Pytester, make_project: MakeProject
) -> None:
    """A module of the app's package that does not import fails test_models_registered of
    every bind, naming the module and its error, and says which option narrows the search;
    a package in ``flask_alembic_models`` that does not exist is named the same way."""
    project = broken(make_project, "sqlite")
    project.write()
    (project.root / "shop" / "optional.py").write_text("import not_installed_pkg\n")
    result = run(pytester, "-k", "models_registered")
    assert statuses(result) == {
        "test_models_registered[default]": "FAILED",
        "test_models_registered[analytics]": "FAILED",
    }
    result.stdout.fnmatch_lines(
        [
            "importing every module of shop (to find models the app never imports) failed:"
            " module shop.optional: ModuleNotFoundError: No module named 'not_installed_pkg'."
            " Name the packages that hold models in flask_alembic_models."
        ]
    )
    project.ini["flask_alembic_models"] = "shop.nowhere"
    project.write()
    named = run(pytester, "-k", "models_registered")
    assert statuses(named) == {
        "test_models_registered[default]": "FAILED",
        "test_models_registered[analytics]": "FAILED",
    }
    named.stdout.fnmatch_lines(["*importing every module of shop.nowhere*module shop.nowhere:*"])
