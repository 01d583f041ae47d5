"""Other tools' files in the migrations folder: a Flask-Migrate project switched to
Flask-Alembic, env.py never imported, versions/ found, another tool's folder named, and
lockstep templates and revision files refused with an explanation."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import ScriptDirectoryError

#: The app package of a Flask-Migrate project: ``myapp/`` beside ``migrations/``.
APP_SOURCE = """
from flask import Flask
from flask_sqlalchemy import SQLAlchemy


def create_app(url, *, tool="alembic", with_email=False, config=None):
    db = SQLAlchemy()

    class Account(db.Model):
        __tablename__ = "account"
        id = db.Column(db.Integer, primary_key=True)
        name = db.Column(db.String(50))
        if with_email:
            email = db.Column(db.String(80))

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.update(config or {})
    db.init_app(app)
    if tool == "migrate":
        from flask_migrate import Migrate

        Migrate(app, db)
    else:
        from flask_alembic import Alembic

        Alembic(app)
    return app, db
"""

#: Run in the project folder, as a Flask-Migrate user would: init, migrate, upgrade, data.
FLASK_MIGRATE_STEPS = """
import sys
import flask_migrate
from myapp import create_app

app, db = create_app(sys.argv[1], tool="migrate")
with app.app_context():
    flask_migrate.init()
    flask_migrate.migrate(message="accounts")
    flask_migrate.upgrade()
    db.session.execute(db.text("INSERT INTO account (name) VALUES ('ann'), ('bob')"))
    db.session.commit()
"""

#: Appended to env.py: importing it leaves a marker file and fails.
TRIPWIRE = """
import pathlib as _pathlib

_pathlib.Path(__file__).with_name("IMPORTED").write_text("imported")
raise RuntimeError("this file must never be imported")
"""


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def one_line_error(result: Result, code: int = 1) -> str:
    """The single ``Error:`` line of a failed command (and nothing else on stderr)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def flask_migrate_project(root: Path, url: str) -> Path:
    """A project built with Flask-Migrate itself, its database upgraded and holding rows."""
    package = root / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text(APP_SOURCE)
    done = subprocess.run(
        [sys.executable, "-c", FLASK_MIGRATE_STEPS, url],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr
    env = root / "migrations" / "env.py"
    env.write_text(env.read_text() + TRIPWIRE)
    return root / "migrations"


LoadApp = Callable[..., Flask]


@pytest.fixture
def load_app() -> Iterator[LoadApp]:
    """Import the project's app (Flask-Alembic instead of Flask-Migrate) in this process;
    its engines are disposed of afterwards."""
    loaded: list[tuple[Flask, Any]] = []

    def load(root: Path, url: str, **options: Any) -> Flask:
        app, db = _load_app(root, url, **options)
        loaded.append((app, db))
        return app

    yield load
    for app, db in loaded:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


def _load_app(root: Path, url: str, **options: Any) -> tuple[Flask, Any]:
    name = f"myapp_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(
        name, root / "myapp" / "__init__.py", submodule_search_locations=[str(root / "myapp")]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        app, db = module.create_app(url, **options)
    finally:
        del sys.modules[name]
    assert isinstance(app, Flask)
    return app, db


def rows(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM account ORDER BY id"))]
    finally:
        engine.dispose()


def test_flask_migrate_project_switched(
    tmp_path: Path, database_url: str, load_app: LoadApp
) -> None:
    """A Flask-Migrate project with data, switched to Alembic: current, log, history,
    upgrade, revision --empty and an autogenerated revision work, new files go to
    versions/, and env.py is never imported."""
    root = tmp_path / "proj"
    root.mkdir()
    migrations = flask_migrate_project(root, database_url)
    (first,) = [p.name.split("_")[0] for p in (migrations / "versions").glob("*.py")]
    assert version_rows(database_url) == {first}
    config = {"ALEMBIC": {"script_location": str(migrations)}}
    app = load_app(root, database_url, config=config)

    result = run(app, "current")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"default: {first} (head)\n"
    for command in ("log", "history"):
        result = run(app, command)
        assert result.exit_code == 0, result.output
        assert result.stdout == f"default: <base> -> {first} (head, applied), accounts\n"
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert "Nothing to do: default up to date." in result.stderr

    result = run(app, "revision", "--empty", "nothing")
    assert result.exit_code == 0, result.output
    empty = Path(result.stdout.strip())
    assert empty.parent == migrations / "versions"
    assert run(app, "upgrade").exit_code == 0

    app = load_app(root, database_url, config=config, with_email=True)
    result = run(app, "revision", "email")
    assert result.exit_code == 0, result.output
    email = Path(result.stdout.strip())
    assert email.parent == migrations / "versions"
    assert "op.add_column('account'" in email.read_text()
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(database_url) == {email.name.split("_")[0]}
    assert rows(database_url) == [(1, "ann", None), (2, "bob", None)]
    assert run(app, "check").exit_code == 0
    assert not (migrations / "IMPORTED").exists()
    assert not (root / "myapp" / "migrations").exists()


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_other_files_never_imported(make_app: MakeApp, database_url: str, cache: bool) -> None:
    """env.py, alembic.ini, README and Python files that assign no ``revision`` are never
    loaded as revisions, with the revision cache on and off."""
    app, alembic = make_app(database_url, ALEMBIC_REVISION_CACHE=cache)
    folder = Path(app.root_path) / "migrations"
    with app.app_context():
        alembic.revision("accounts", rev_id="aaaa0001")
    (folder / "env.py").write_text("from alembic import context\n" + TRIPWIRE)
    (folder / "helpers.py").write_text("VALUE = 1\n" + TRIPWIRE)
    (folder / "alembic.ini").write_text("[alembic]\nscript_location = .\n")
    (folder / "README").write_text("Single-database configuration for Flask.\n")

    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(database_url) == {"aaaa0001"}
    assert "user" in table_names(database_url)
    result = run(app, "log")
    assert result.stdout == "default: <base> -> aaaa0001 (head, applied), accounts\n"
    result = run(app, "revision", "--empty", "next", "--rev-id", "bbbb0002")
    assert result.exit_code == 0, result.output
    assert run(app, "upgrade").exit_code == 0
    assert version_rows(database_url) == {"bbbb0002"}
    assert not (folder / "IMPORTED").exists()


def test_versions_folder_is_the_default_bind_s(make_app: MakeApp, make_url: MakeURL) -> None:
    """versions/ holds the default bind's revisions when the top of the script directory
    holds none; once the top holds one, the top is the default bind's folder again."""
    url = make_url()
    app, alembic = make_app(url)
    folder = Path(app.root_path) / "migrations"
    (folder / "versions").mkdir()
    with app.app_context():
        (script,) = alembic.revision("first", rev_id="aaaa0001")
        assert Path(script.path).parent == folder / "versions"
        assert alembic.registry.default.version_locations == ((folder / "versions").resolve(),)

    other, alembic = make_app(url)
    (folder / "versions" / "aaaa0001_first.py").rename(folder / "aaaa0001_first.py")
    with other.app_context():
        assert alembic.registry.default.version_locations == (folder.resolve(),)
        (script,) = alembic.revision("second", rev_id="bbbb0002", empty=True)
        assert Path(script.path).parent == folder


def test_versions_folder_set_explicitly(make_app: MakeApp, make_url: MakeURL) -> None:
    """ALEMBIC_BINDS' version_location "versions" works whatever the top holds."""
    url = make_url()
    app, alembic = make_app(url, ALEMBIC_BINDS={"default": {"version_location": "versions"}})
    folder = Path(app.root_path) / "migrations"
    with app.app_context():
        (script,) = alembic.revision("first", rev_id="aaaa0001")
    assert Path(script.path).parent == folder / "versions"


def flask_migrate_folder(folder: Path) -> None:
    """The files Flask-Migrate's init leaves (an empty versions/ included)."""
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text("from alembic import context\n" + TRIPWIRE)
    (folder / "alembic.ini").write_text("[alembic]\n")
    (folder / "script.py.mako").write_text("")


@pytest.mark.parametrize(
    "args",
    [
        ("current",),
        ("upgrade",),
        ("log",),
        ("status",),
        ("revision", "--empty", "x"),
        ("mkdir",),
        ("init",),
    ],
)
def test_other_tools_folder_in_current_directory(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """The usual Flask-Migrate layout (migrations/ at the project root, the app a
    package): init_app creates nothing, and every command names the folder and the
    setting to use."""
    monkeypatch.chdir(project)
    flask_migrate_folder(project / "migrations")
    package = project / "myapp"
    package.mkdir()
    engine = sa.create_engine(make_url())
    try:
        app = Flask("myapp", root_path=str(package))
        Alembic(app, engines=engine, metadatas=sa.MetaData())
        assert not (package / "migrations").exists()
        line = one_line_error(run(app, *args))
    finally:
        engine.dispose()
    found = (project / "migrations").resolve()
    assert line == (
        f"Error: The migrations folder {package / 'migrations'} does not exist, but {found} "
        "(another tool's, with an env.py) does. Set ALEMBIC = "
        '{"script_location": "../migrations"}, or run \'flask db adopt\'.'
    )
    assert not (package / "migrations").exists()


def test_flask_migrate_folder_registered_after_alembic(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrate(app, db, directory="db_migrations") registered after Alembic: the folder
    that init_app made before knowing it (template only) does not hide it; every command
    names it, and nothing is written or dropped (autogenerate would otherwise compare the
    database with an empty history and propose to drop Flask-Migrate's version table)."""
    import flask_migrate
    from flask_sqlalchemy import SQLAlchemy

    monkeypatch.chdir(project)
    flask_migrate_folder(project / "db_migrations")
    package = project / "myapp"
    package.mkdir()
    app = Flask("myapp", root_path=str(package))
    app.config["SQLALCHEMY_DATABASE_URI"] = make_url()
    db = SQLAlchemy(app)
    Alembic(app)
    assert sorted(p.name for p in (package / "migrations").iterdir()) == [
        "README",
        "script.py.mako",
    ]
    flask_migrate.Migrate(app, db, directory="db_migrations", command="old-db")
    try:
        for args in (("check",), ("revision", "x"), ("status",)):
            line = one_line_error(run(app, *args))
            assert line == (
                f"Error: The migrations folder {package / 'migrations'} holds no revision yet, "
                f"but {(project / 'db_migrations').resolve()} (another tool's, with an env.py) "
                'does. Set ALEMBIC = {"script_location": "../db_migrations"}, or run '
                "'flask db adopt'."
            ), args
    finally:
        with app.app_context():
            db.engine.dispose()
    assert sorted(p.name for p in (package / "migrations").iterdir()) == [
        "README",
        "script.py.mako",
    ]


def test_alembic_ini_script_location_in_current_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch, make_url: MakeURL
) -> None:
    """An alembic.ini in the current directory names the folder another tool uses."""
    monkeypatch.chdir(project)
    flask_migrate_folder(project / "db" / "alembic")
    (project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/db/alembic\n")
    engine = sa.create_engine(make_url())
    try:
        app = Flask("myapp", root_path=str(project / "myapp"))
        alembic = Alembic(app, engines=engine, metadatas=sa.MetaData())
        with app.app_context(), pytest.raises(ScriptDirectoryError) as info:
            alembic.heads()
    finally:
        engine.dispose()
    assert f"but {(project / 'db' / 'alembic').resolve()} (another tool's" in str(info.value)
    assert not (project / "myapp").exists()


def test_no_other_folder_creates_the_migrations_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch, make_url: MakeURL
) -> None:
    """A migrations/ without env.py in the current directory is no other tool's."""
    monkeypatch.chdir(project)
    (project / "migrations").mkdir()
    engine = sa.create_engine(make_url())
    try:
        Alembic(Flask("myapp", root_path=str(project / "myapp")), engines=engine)
    finally:
        engine.dispose()
    assert (project / "myapp" / "migrations" / "script.py.mako").is_file()


LOCKSTEP_REVISION = '''"""lockstep"""
from alembic import op
import sqlalchemy as sa

revision = "aaaa0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))


def downgrade_():
    op.drop_table("account")
'''


@pytest.mark.parametrize("signature", ["engine_name", "engine_name=''"])
@pytest.mark.parametrize("args", [("upgrade",), ("upgrade", "--sql"), ("downgrade", "base")])
def test_lockstep_revision_explained(
    make_app: MakeApp, database_url: str, args: tuple[str, ...], signature: str
) -> None:
    """A revision of a lockstep history (``upgrade(engine_name)``) met by upgrade,
    downgrade or --sql: one line naming it and the fix; nothing changes.

    With a default (``engine_name=''``, Flask-Migrate's name for the default database),
    calling it with no argument would run the default database's part only and record the
    revision as applied: it is refused all the same."""
    app, _ = make_app(database_url)
    path = Path(app.root_path) / "migrations" / "aaaa0001_lockstep.py"
    path.write_text(LOCKSTEP_REVISION.replace("(engine_name)", f"({signature})"))
    if args[0] == "downgrade":
        assert run(app, "stamp", "heads").exit_code == 0
    line = one_line_error(run(app, *args))
    assert line == (
        f"Error: Revision aaaa0001 ({path}) of bind 'default' belongs to a lockstep history: "
        "its upgrade() takes the database's name, one history for every database; here each "
        "bind has a history of its own. Run 'flask db adopt' to convert the history."
    )
    assert "account" not in table_names(database_url)
    assert version_rows(database_url) == ({"aaaa0001"} if args[0] == "downgrade" else set())


def templates_of(package: str) -> Path:
    """The installed templates folder of Alembic or Flask-Migrate (not imported)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "templates"


def multidb_templates() -> list[Path]:
    templates = templates_of("alembic")
    theirs = templates_of("flask_migrate")
    return [
        templates / "multidb" / "script.py.mako",
        theirs / "flask-multidb" / "script.py.mako",
        theirs / "aioflask-multidb" / "script.py.mako",
    ]


@pytest.mark.parametrize("template", multidb_templates(), ids=lambda p: p.parent.name)
def test_lockstep_template_refused(make_app: MakeApp, make_url: MakeURL, template: Path) -> None:
    """A multi-database template of Flask-Migrate or Alembic is refused, and no file is
    written; Alembic's single-database one is used."""
    url = make_url()
    app, _ = make_app(url)
    folder = Path(app.root_path) / "migrations"
    mako = folder / "script.py.mako"
    mako.write_text(template.read_text())
    for args in (("revision", "x"), ("revision", "--empty", "x")):
        line = one_line_error(run(app, *args))
        assert line == (
            f"Error: The revision template {mako} writes lockstep revisions (upgrade() takes "
            "the database's name, one history for every database); here each bind has a "
            "history of its own. Run 'flask db adopt' to convert the history and replace the "
            "template."
        )
    assert sorted(p.name for p in folder.glob("*.py")) == []


def test_single_database_templates_accepted(make_app: MakeApp, make_url: MakeURL) -> None:
    """Alembic's generic template and Flask-Migrate's flask template write revisions."""
    app, _ = make_app(make_url())
    mako = Path(app.root_path) / "migrations" / "script.py.mako"
    for source in (
        templates_of("alembic") / "generic" / "script.py.mako",
        templates_of("flask_migrate") / "flask" / "script.py.mako",
    ):
        mako.write_text(source.read_text())
        result = run(app, "revision", "--empty", source.parent.name)
        assert result.exit_code == 0, result.output


def test_lockstep_template_with_unusual_spacing(make_app: MakeApp, make_url: MakeURL) -> None:
    """The tell-tale is read from the Python the template holds, whatever its layout."""
    app, _ = make_app(make_url())
    mako = Path(app.root_path) / "migrations" / "script.py.mako"
    mako.write_text(
        textwrap.dedent(
            '''\
            """${message}"""
            revision = ${repr(up_revision)}
            down_revision = ${repr(down_revision)}
            def upgrade(
                engine_name: str,
            ) -> None:
                globals()[f"upgrade_{engine_name}"]()
            % for name in ["", "stats"]:
            def upgrade_${name}() -> None:
                ${context.get("%s_upgrades" % name, "pass")}
            % endfor
            '''
        )
    )
    line = one_line_error(run(app, "revision", "--empty", "x"))
    assert "writes lockstep revisions (upgrade() takes the database's name" in line


def test_flask_migrate_folder_set_relative(
    tmp_path: Path, make_url: MakeURL, load_app: LoadApp
) -> None:
    """The setting the docs suggest for the usual layout, "../migrations", works."""
    url = make_url()
    root = tmp_path / "proj"
    root.mkdir()
    migrations = flask_migrate_project(root, url)
    (first,) = [p.name.split("_")[0] for p in (migrations / "versions").glob("*.py")]
    app = load_app(root, url, config={"ALEMBIC": {"script_location": "../migrations"}})
    result = run(app, "current")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"default: {first} (head)\n"
    result = run(app, "revision", "--empty", "next")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).resolve().parent == (migrations / "versions").resolve()
    assert run(app, "upgrade").exit_code == 0
    assert rows(url) == [(1, "ann"), (2, "bob")]
    assert not (migrations / "IMPORTED").exists()


def test_other_version_tables_never_dropped(make_app: MakeApp, database_url: str) -> None:
    """A version table of another history (Flask-Migrate's with a custom version_table, a
    plain Alembic project's) that no model describes is never proposed for dropping: not by
    check, not in a revision, not by compare_metadata(). Another table without a model
    still is (the filter is for version tables only)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE legacy_version (version_num VARCHAR(32) NOT NULL)")
            conn.exec_driver_sql("INSERT INTO legacy_version VALUES ('750baeb04573')")
    finally:
        engine.dispose()
    app, alembic = make_app(database_url)
    result = run(app, "revision", "init")
    assert result.exit_code == 0, result.output
    (path,) = (Path(app.root_path) / "migrations").glob("*_init.py")
    assert "legacy_version" not in path.read_text()
    assert run(app, "upgrade").exit_code == 0
    result = run(app, "check")
    assert (result.exit_code, result.stdout.splitlines()[-1]) == (0, "No changes detected.")
    with app.app_context():
        assert alembic.compare_metadata() == []

    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE junk (version_num VARCHAR(32), other INTEGER)")
    finally:
        engine.dispose()
    with app.app_context():
        assert [(d[0], d[1].name) for d in alembic.compare_metadata()] == [("remove_table", "junk")]
    assert version_rows(database_url, "legacy_version") == {"750baeb04573"}
