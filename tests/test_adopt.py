"""``flask db adopt``: projects of Flask-Migrate, Flask-Alembic 3 and Alembic, with data,
switched to this package (issue 14)."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import version_rows
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_alembic import Alembic


def run(app: Flask, *args: str) -> Result:
    """``flask db ARGS`` with stdout not a terminal."""
    return app.test_cli_runner().invoke(args=["db", *args])


def define_models(db: SQLAlchemy, *, with_email: bool = False) -> None:
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    ]
    if with_email:
        columns.append(sa.Column("email", sa.String(100)))
    db.Table("person", *columns)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (caches included) and a digest of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def rows(url: str, table: str = "person") -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    """Flask-Migrate's env.py reconfigures logging from alembic.ini: put it back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    disabled = {
        name: lg.disabled
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, value in disabled.items():
        logger = logging.Logger.manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger):
            logger.disabled = value


def flask_migrate_project(
    project: Path, url: str, monkeypatch: pytest.MonkeyPatch, **migrate_options: Any
) -> str:
    """A project made by Flask-Migrate itself (init, migrate, upgrade) holding two rows;
    returns its revision id."""
    from flask_migrate import init
    from flask_migrate import Migrate
    from flask_migrate import migrate
    from flask_migrate import upgrade

    monkeypatch.chdir(project)
    app = Flask("oldapp", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy()
    define_models(db)
    db.init_app(app)
    Migrate(app, db, **migrate_options)
    with app.app_context(), warnings.catch_warnings():
        # Flask-Migrate's env.py calls Flask-SQLAlchemy's deprecated get_engine().
        warnings.simplefilter("ignore", DeprecationWarning)
        init()
        migrate(message="people")
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO person (id, name) VALUES (1, 'ada'), (2, 'bob')"))
        db.engine.dispose()
    (revision,) = version_rows(url)
    return revision


def new_app(
    project: Path,
    url: str,
    *,
    keep_migrate: bool = False,
    with_email: bool = False,
    settings: dict[str, Any] | None = None,
) -> Flask:
    """The same project switched to this package (Flask-Migrate registered or not)."""
    app = Flask("newapp", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.update(settings or {})
    db = SQLAlchemy()
    define_models(db, with_email=with_email)
    db.init_app(app)
    if keep_migrate:
        from flask_migrate import Migrate

        Migrate(app, db, command="old-db")
    Alembic(app)
    return app


def adopt_json(app: Flask, *args: str) -> dict[str, Any]:
    result = run(app, "adopt", "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def dispose(app: Flask) -> None:
    with app.app_context():
        for engine in app.extensions["sqlalchemy"].engines.values():
            engine.dispose()


def test_flask_migrate_single(
    project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Flask-Migrate project with data adopts with no file or row changed, and a new
    revision then applies on top of the old history."""
    old_rev = flask_migrate_project(project, database_url, monkeypatch)
    before = snapshot(project / "migrations")
    app = new_app(project, database_url, keep_migrate=True)

    plan = adopt_json(app, "--plan")
    assert plan["planned"] is True
    assert plan["after"] is None
    assert snapshot(project / "migrations") == before

    data = adopt_json(app)
    assert data["layout"]["kind"] == "flask-migrate"
    assert data["layout"]["revisions"] == str(project / "migrations" / "versions")
    assert data["settings"] == {
        "ALEMBIC": {"script_location": "migrations"},
        "ALEMBIC_CONTEXT": {
            "compare_server_default": True,
            "compare_type": True,
            "render_as_batch": True,
        },
        "ALEMBIC_BINDS": {"default": {"version_location": "versions"}},
    }
    assert data["before"] == [
        {"bind": "default", "version_table": "alembic_version", "current": [old_rev]}
    ]
    (after,) = data["after"]
    assert (after["bind"], after["state"], after["current"]) == ("default", "up to date", [old_rev])
    assert data["configured"] is False
    assert version_rows(database_url) == {old_rev}
    assert rows(database_url) == [(1, "ada"), (2, "bob")]
    dispose(app)

    # The settings in place: status is up to date, a new revision applies on top.
    app = new_app(project, database_url, settings=data["settings"], with_email=True)
    assert adopt_json(app)["configured"] is True
    result = run(app, "status", "--check")
    assert result.exit_code == 0, result.output
    result = run(app, "revision", "email")
    assert result.exit_code == 0, result.output
    new_file = Path(result.stdout.strip())
    assert new_file.parent == project / "migrations" / "versions"
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    (new_rev,) = version_rows(database_url)
    assert new_rev != old_rev
    assert rows(database_url) == [(1, "ada", None), (2, "bob", None)]
    dispose(app)
    # The old files are untouched.
    after_files = snapshot(project / "migrations")
    assert {
        k: v
        for k, v in after_files.items()
        if "__pycache__" not in k and k != f"versions/{new_file.name}"
    } == {k: v for k, v in before.items() if "__pycache__" not in k}


PEOPLE = """\
\"\"\"people

Revision ID: {rev}
Revises:
Create Date: 2024-01-01 00:00:00

\"\"\"
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = None
branch_labels = {labels!r}
depends_on = None


def upgrade():
    op.create_table(
        "person",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )


def downgrade():
    op.drop_table("person")
"""


def alembic_project(project: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plain Alembic project (alembic init), with a custom version table and literal
    options in env.py, migrated by Alembic itself; returns the ini file."""
    from alembic import command
    from alembic.config import Config

    monkeypatch.chdir(project)
    ini = project / "alembic.ini"
    cfg = Config(str(ini))
    command.init(cfg, str(project / "alembic"))
    text = ini.read_text()
    ini.write_text(
        text.replace("driver://user:pass@localhost/dbname", url.replace("%", "%%")).replace(
            "# file_template = ", "file_template = %%(rev)s_%%(slug)s\n# ", 1
        )
    )
    env = project / "alembic" / "env.py"
    env.write_text(
        env.read_text().replace(
            "connection=connection, target_metadata=target_metadata",
            "connection=connection, target_metadata=target_metadata,\n"
            '            version_table="legacy_version", compare_type=True, '
            "render_as_batch=True, process_revision_directives=None,\n"
            "            include_object=lambda *args: True",
        )
    )
    (project / "alembic" / "versions" / "aa11_people.py").write_text(
        PEOPLE.format(rev="aa11", labels=None)
    )
    command.upgrade(Config(str(ini)), "head")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO person (id, name) VALUES (1, 'ada'), (2, 'bob')"))
    engine.dispose()
    return ini


def test_plain_alembic(project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """alembic.ini, env.py, versions/ and a custom version table: the version table and
    the literal options are read, the state is checked, and a new revision applies."""
    alembic_project(project, database_url, monkeypatch)
    assert version_rows(database_url, "legacy_version") == {"aa11"}
    before = snapshot(project)
    app = new_app(project, database_url)

    result = run(app, "adopt", "--plan")
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before
    assert "Found Alembic (alembic.ini and env.py): " in result.stderr
    assert (
        "Read ALEMBIC_BINDS['default']['version_table'] = 'legacy_version' "
        "(alembic/env.py, line 69)." in result.stderr
    )
    assert "Before: bind 'default' records aa11 in legacy_version." in result.stderr
    assert "Planned only: nothing was changed." in result.stderr
    assert (
        "Warning: alembic/env.py, line 70: include_object is not a literal and is not carried "
        "over; set it in ALEMBIC_CONTEXT yourself.\n" in result.stderr
    )

    data = adopt_json(app)
    assert data["layout"]["kind"] == "alembic"
    assert data["layout"]["alembic_ini"] == str(project / "alembic.ini")
    assert data["settings"] == {
        "ALEMBIC": {"script_location": "alembic", "file_template": "%(rev)s_%(slug)s"},
        "ALEMBIC_CONTEXT": {
            "compare_server_default": True,
            "compare_type": True,
            "render_as_batch": True,
            "process_revision_directives": None,
        },
        "ALEMBIC_BINDS": {
            "default": {"version_location": "versions", "version_table": "legacy_version"}
        },
    }
    (after,) = data["after"]
    assert (after["state"], after["current"], after["version_table"]) == (
        "up to date",
        ["aa11"],
        "legacy_version",
    )
    dispose(app)

    app = new_app(project, database_url, settings=data["settings"], with_email=True)
    result = run(app, "revision", "email")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).parent == project / "alembic" / "versions"
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    (new_rev,) = version_rows(database_url, "legacy_version")
    assert new_rev != "aa11"
    assert version_rows(database_url) == set()  # no alembic_version table appeared
    assert rows(database_url) == [(1, "ada", None), (2, "bob", None)]
    dispose(app)


def flask_alembic_3_project(project: Path, url: str) -> None:
    """The documented Flask-Alembic 3 layout: revisions directly in migrations/, Alembic's
    generic template, the first revision labelled 'default'; migrated, with rows."""
    import alembic

    folder = project / "migrations"
    folder.mkdir()
    generic = Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako"
    (folder / "script.py.mako").write_bytes(generic.read_bytes())
    (folder / "bb22_people.py").write_text(PEOPLE.format(rev="bb22", labels=("default",)))
    app = new_app(project, url)
    assert run(app, "upgrade").exit_code == 0
    dispose(app)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO person (id, name) VALUES (1, 'ada'), (2, 'bob')"))
    engine.dispose()


def test_flask_alembic_3_single(project: Path, database_url: str) -> None:
    """A Flask-Alembic 3 project needs no new setting; a re-run is a no-op."""
    flask_alembic_3_project(project, database_url)
    app = new_app(project, database_url, with_email=True)
    before = {k: v for k, v in snapshot(project).items() if "__pycache__" not in k}
    data = adopt_json(app)
    assert data["layout"]["kind"] == "flask-alembic-3"
    assert data["configured"] is True
    assert data["settings"]["ALEMBIC_BINDS"] == {}
    assert data["before"][0]["current"] == ["bb22"]
    assert adopt_json(app) == data  # a re-run finds and does the same
    assert {k: v for k, v in snapshot(project).items() if "__pycache__" not in k} == before
    result = run(app, "adopt")
    assert result.exit_code == 0
    assert "The app already has these settings." in result.stderr
    assert result.stdout.startswith("ALEMBIC = {'script_location': 'migrations'}\n")
    result = run(app, "revision", "email")
    assert result.exit_code == 0, result.output
    assert run(app, "upgrade").exit_code == 0
    assert rows(database_url) == [(1, "ada", None), (2, "bob", None)]
    assert len(version_rows(database_url)) == 1
    dispose(app)


def test_nothing_to_adopt(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No old tool's files anywhere: one line, exit 1, no folder made."""
    monkeypatch.chdir(project)
    app = new_app(project, f"sqlite:///{tmp_path / 'x.db'}")
    result = run(app, "adopt")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "Error: Found no migrations of Flask-Migrate, Flask-Alembic 3 or Alembic (looked for "
    )
    assert result.stderr.endswith("Pass the folder that holds them with --from PATH.\n")
    result = run(app, "adopt", "--from", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path} is neither a migrations folder (with revision files, or env.py "
        "and versions/) nor an alembic.ini naming one. Pass the folder that holds the old "
        "tool's migrations with --from.\n"
    )
    dispose(app)


def test_unknown_version_row(
    project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at a revision the files lack is refused in one line, nothing changed."""
    flask_migrate_project(project, database_url, monkeypatch)
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ff99'"))
    engine.dispose()
    app = new_app(project, database_url)
    result = run(app, "adopt", "--plan")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Bind 'default' records revision(s) ff99 in alembic_version, which no file in "
        f"{project / 'migrations' / 'versions'} has. Check the version table setting "
        "(version_table, version_table_schema) and that the revision files are all there, "
        "then run adopt again.\n"
    )
    assert version_rows(database_url) == {"ff99"}
    dispose(app)


def define_two_binds(db: SQLAlchemy, *, email: bool = False, note: bool = False) -> None:
    define_models(db, with_email=email)
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("login", sa.String(50)),
    ]
    if note:
        columns.append(sa.Column("note", sa.String(100)))
    db.Table("account", *columns, bind_key="users")


def multidb_app(project: Path, urls: dict[str, str], **model_options: bool) -> tuple[Flask, Any]:
    app = Flask("oldapp", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["default"]
    app.config["SQLALCHEMY_BINDS"] = {k: v for k, v in urls.items() if k != "default"}
    db = SQLAlchemy()
    define_two_binds(db, **model_options)
    db.init_app(app)
    return app, db


def flask_migrate_multidb_project(
    project: Path, urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """Flask-Migrate --multidb, made by Flask-Migrate itself: a first revision creating a
    table on each database, a second adding a column on the default one; rows in both.
    Returns the two revision ids."""
    from flask_migrate import init
    from flask_migrate import Migrate
    from flask_migrate import migrate
    from flask_migrate import upgrade

    monkeypatch.chdir(project)
    ids = []
    for step, options in enumerate(({}, {"email": True})):
        app, db = multidb_app(project, urls, **options)
        Migrate(app, db)
        with app.app_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if step == 0:
                init(multidb=True)
            migrate(message=f"step {step}")
            upgrade()
            if step == 0:
                with db.engine.begin() as conn:
                    conn.execute(sa.text("INSERT INTO person (id, name) VALUES (1, 'ada')"))
                with db.engines["users"].begin() as conn:
                    conn.execute(sa.text("INSERT INTO account (id, login) VALUES (7, 'root')"))
            for engine in db.engines.values():
                engine.dispose()
        (head,) = version_rows(urls["users"])
        ids.append(head)
    assert version_rows(urls["default"]) == {ids[1]}
    return ids[0], ids[1]


def switched_app(
    project: Path, urls: dict[str, str], settings: dict[str, Any] | None = None, **options: bool
) -> Flask:
    app, db = multidb_app(project, urls, **options)
    app.config.update(settings or {})
    from flask_migrate import Migrate

    Migrate(app, db, command="old-db")
    Alembic(app)
    return app


@pytest.mark.parametrize("half_failed", [False, True])
def test_flask_migrate_multidb(
    project: Path,
    make_url: Any,
    dialect: str,
    monkeypatch: pytest.MonkeyPatch,
    half_failed: bool,
) -> None:
    """A lockstep history becomes one history per bind: --plan changes nothing, adopt
    converts the files and maps each bind's own row (a half-failed run included), rows are
    kept, a re-run is a no-op, check is clean and a new revision applies on each bind."""
    from flask_alembic.lockstep import derived_id

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    first, second = flask_migrate_multidb_project(project, urls, monkeypatch)
    if half_failed:  # the second step ran on the default database only
        engine = sa.create_engine(urls["users"])
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": first})
        engine.dispose()
    users_old = first if half_failed else second
    files_before = snapshot(project)
    app = switched_app(project, urls, email=True)

    plan = adopt_json(app, "--plan")
    assert snapshot(project) == files_before
    assert version_rows(urls["default"]) == {second}
    assert version_rows(urls["users"]) == {users_old}
    assert plan["layout"]["kind"] == "flask-migrate-multidb"
    assert plan["stamps"] == [
        {
            "bind": "default",
            "version_table": "alembic_version",
            "from": [second],
            "to": [second],
            "done": True,
        },
        {
            "bind": "users",
            "version_table": "alembic_version",
            "from": [users_old],
            "to": [derived_id(users_old, "users")],
            "done": False,
        },
    ]
    archive = project / "migrations" / ".lockstep-archive"
    assert sorted((f["action"], f["path"], f["to"]) for f in plan["files"] if not f["bind"]) == [
        ("archive", str(old), str(archive / "versions" / old.name))
        for old in sorted((project / "migrations" / "versions").glob("*.py"))
    ] + [("replace", str(project / "migrations" / "script.py.mako"), None)]
    written = sorted((f["bind"], Path(f["path"]).parent.name) for f in plan["files"] if f["bind"])
    assert written == [("default", "versions")] * 2 + [("users", "users")] * 2

    data = adopt_json(app)
    assert data["settings"]["ALEMBIC_BINDS"] == {"default": {"version_location": "versions"}}
    assert version_rows(urls["default"]) == {second}
    assert version_rows(urls["users"]) == {derived_id(users_old, "users")}
    states = {row["bind"]: row["state"] for row in data["after"]}
    assert states == {"default": "up to date", "users": "pending" if half_failed else "up to date"}
    assert rows(urls["default"]) == [(1, "ada", None)]
    assert rows(urls["users"], "account") == [(7, "root")]
    converted = snapshot(project)

    # A re-run finds the converted history and changes nothing.
    again = adopt_json(app)
    assert [s["done"] for s in again["stamps"]] == [True, True]
    assert again["files"] == []
    assert {k: v for k, v in snapshot(project).items() if "__pycache__" not in k} == {
        k: v for k, v in converted.items() if "__pycache__" not in k
    }
    dispose(app)

    app = switched_app(project, urls, data["settings"], email=True)
    if half_failed:
        result = run(app, "upgrade")
        assert result.exit_code == 0, result.output
    assert run(app, "status", "--check").exit_code == 0
    result = run(app, "check")
    assert result.exit_code == 0, result.output
    dispose(app)

    app = switched_app(project, urls, data["settings"], email=True, note=True)
    result = run(app, "revision", "note")
    assert result.exit_code == 0, result.output
    new_files = [Path(p) for p in result.stdout.split()]
    assert [p.parent.name for p in new_files] == ["users"]
    result = run(app, "revision", "--empty", "--bind", "default", "nothing")
    assert result.exit_code == 0, result.output
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert rows(urls["default"]) == [(1, "ada", None)]
    assert rows(urls["users"], "account") == [(7, "root", None)]
    (new_default,) = version_rows(urls["default"])
    (new_users,) = version_rows(urls["users"])
    assert new_default != second
    assert new_users != derived_id(second, "users")
    dispose(app)


FA3_MULTIDB = """\
\"\"\"{message}

Revision ID: {rev}
Revises: {down}
Create Date: 2024-01-01 00:00:00

\"\"\"
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = {down!r}
branch_labels: Union[str, Sequence[str], None] = {labels!r}
depends_on: Union[str, Sequence[str], None] = None


def upgrade(engine_name: str) -> None:
    \"\"\"Upgrade schema.\"\"\"
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name: str) -> None:
    \"\"\"Downgrade schema.\"\"\"
    globals()["downgrade_%s" % engine_name]()


def upgrade_default() -> None:
    \"\"\"Upgrade default schema.\"\"\"
    {default_up}


def downgrade_default() -> None:
    \"\"\"Downgrade default schema.\"\"\"
    {default_down}


def upgrade_users() -> None:
    \"\"\"Upgrade users schema.\"\"\"
    {users_up}


def downgrade_users() -> None:
    \"\"\"Downgrade users schema.\"\"\"
    {users_down}
"""


def flask_alembic_3_multidb_project(project: Path, urls: dict[str, str]) -> None:
    """The documented Flask-Alembic 3 layout for several databases: Alembic's multidb
    template form in migrations/, the first revision labelled 'default'; both databases
    at the second revision (as 3.x leaves them), with rows."""
    import alembic

    folder = project / "migrations"
    folder.mkdir()
    multidb = Path(alembic.__file__).parent / "templates" / "multidb" / "script.py.mako"
    (folder / "script.py.mako").write_bytes(multidb.read_bytes())
    (folder / "c1_first.py").write_text(
        FA3_MULTIDB.format(
            message="first",
            rev="c1",
            down=None,
            labels=("default",),
            default_up='op.create_table("person", sa.Column("id", sa.Integer, '
            'primary_key=True), sa.Column("name", sa.String(50)))',
            default_down='op.drop_table("person")',
            users_up='op.create_table("account", sa.Column("id", sa.Integer, '
            'primary_key=True), sa.Column("login", sa.String(50)))',
            users_down='op.drop_table("account")',
        )
    )
    (folder / "c2_email.py").write_text(
        FA3_MULTIDB.format(
            message="email",
            rev="c2",
            down="c1",
            labels=None,
            default_up='op.add_column("person", sa.Column("email", sa.String(100)))',
            default_down='op.drop_column("person", "email")',
            users_up="pass",
            users_down="pass",
        )
    )
    for name, url in urls.items():
        engine = sa.create_engine(url)
        db = SQLAlchemy()
        define_two_binds(db, email=True)
        with engine.begin() as conn:
            db.metadatas[None if name == "default" else name].create_all(conn)
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(sa.text("INSERT INTO alembic_version VALUES ('c2')"))
            if name == "default":
                conn.execute(sa.text("INSERT INTO person (id, name) VALUES (1, 'ada')"))
            else:
                conn.execute(sa.text("INSERT INTO account (id, login) VALUES (7, 'root')"))
        engine.dispose()


def test_flask_alembic_3_multidb(project: Path, make_url: Any, dialect: str) -> None:
    """A Flask-Alembic 3 multi-database history: the default bind keeps its ids and its
    'default' label, the other bind gets its own; rows kept; new revisions apply."""
    from flask_alembic.lockstep import derived_id

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    flask_alembic_3_multidb_project(project, urls)
    app = switched_app(project, urls, email=True)
    data = adopt_json(app)
    assert data["layout"]["kind"] == "flask-alembic-3-multidb"
    assert data["settings"]["ALEMBIC_BINDS"] == {}
    assert version_rows(urls["default"]) == {"c2"}
    assert version_rows(urls["users"]) == {derived_id("c2", "users")}
    assert {row["bind"]: row["state"] for row in data["after"]} == {
        "default": "up to date",
        "users": "up to date",
    }
    assert sorted(p.name for p in (project / "migrations").glob("*.py")) == [
        "c1_first.py",
        "c2_email.py",
    ]
    result = run(app, "log")
    assert result.exit_code == 0, result.output
    assert "default: <base> -> c1 (applied)" in result.stdout
    assert "\nusers: <base> -> " in result.stdout
    result = run(app, "check")
    assert result.exit_code == 0, result.output
    dispose(app)

    app = switched_app(project, urls, data["settings"], email=True, note=True)
    result = run(app, "revision", "note")
    assert result.exit_code == 0, result.output
    assert run(app, "upgrade").exit_code == 0
    assert rows(urls["default"]) == [(1, "ada", None)]
    assert rows(urls["users"], "account") == [(7, "root", None)]
    dispose(app)


READ_ONLY = {
    "sqlite": [
        "CREATE TRIGGER frozen BEFORE DELETE ON alembic_version "
        "BEGIN SELECT RAISE(ABORT, 'frozen version table'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION frozen() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'frozen version table'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER frozen BEFORE DELETE ON alembic_version "
        "FOR EACH ROW EXECUTE FUNCTION frozen()",
    ],
    "mysql": [
        "CREATE TRIGGER frozen BEFORE DELETE ON alembic_version FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'frozen version table'"
    ],
}
THAWED = {
    "sqlite": ["DROP TRIGGER frozen"],
    "postgresql": ["DROP TRIGGER frozen ON alembic_version"],
    "mysql": ["DROP TRIGGER frozen"],
}


def execute(url: str, statements: list[str]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def test_fails_midway_then_rerun_finishes(
    project: Path, make_url: Any, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bind whose version row cannot be written: the error says what was done, the
    other bind is left as it was, and a re-run finishes the job."""
    from flask_alembic.lockstep import derived_id

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    _, second = flask_migrate_multidb_project(project, urls, monkeypatch)
    execute(urls["users"], READ_ONLY[dialect])
    app = switched_app(project, urls, email=True)
    result = run(app, "adopt")
    assert result.exit_code == 1
    archive = project / "migrations" / ".lockstep-archive"
    assert result.stderr.startswith(
        "Error: Adopting stopped midway: converted the history (4 files written, the old "
        f"ones kept in {archive}); writing the version rows of bind 'users' (alembic_version) "
        "failed: "
    )
    assert "frozen version table" in result.stderr
    assert result.stderr.endswith("Fix the cause and run adopt again: it finishes the job.\n")
    assert result.stderr.count("\n") == 1
    assert version_rows(urls["users"]) == {second}
    assert version_rows(urls["default"]) == {second}

    execute(urls["users"], THAWED[dialect])
    data = adopt_json(app)
    assert data["files"] == []
    assert [(s["bind"], s["from"], s["to"]) for s in data["stamps"]] == [
        ("default", [second], [second]),
        ("users", [second], [derived_id(second, "users")]),
    ]
    assert version_rows(urls["users"]) == {derived_id(second, "users")}
    assert rows(urls["users"], "account") == [(7, "root")]
    dispose(app)


def test_lockstep_file_it_cannot_convert(project: Path, make_url: Any) -> None:
    """A bind the old files have no functions for: one line naming the file, nothing
    written, no row changed."""
    urls = {"default": make_url(), "users": make_url()}
    flask_alembic_3_multidb_project(project, urls)
    files = snapshot(project)
    app, _ = multidb_app(project, {**urls, "audit": make_url()}, email=True)
    Alembic(app)
    result = run(app, "adopt")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ")
    assert "c1_first.py" in result.stderr
    assert "audit" in result.stderr
    assert snapshot(project) == files
    assert version_rows(urls["users"]) == {"c2"}
    dispose(app)


def test_flask_migrate_not_registered(
    project: Path, make_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Migrate(app, db) its options cannot be read: said, not guessed."""
    url = make_url()
    flask_migrate_project(project, url, monkeypatch)
    app = new_app(project, url)
    data = adopt_json(app)
    assert data["settings"]["ALEMBIC_CONTEXT"] == {"compare_server_default": True}
    assert data["notes"] == [
        "Flask-Migrate is not registered on the app, so the options given to Migrate(...) "
        "(compare_type, render_as_batch, version_table...) cannot be read; keep "
        'Migrate(app, db, command="old-db") (another command name than this package\'s) '
        "while adopting, or set them in ALEMBIC_CONTEXT yourself."
    ]
    result = run(app, "adopt")
    assert "Warning: Flask-Migrate is not registered on the app" in result.stderr
    dispose(app)


def test_no_password_and_rich(
    project: Path, make_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database password appears nowhere; on a terminal the output is Rich's."""
    url = make_url("postgresql", password="s3cr3t-pw")
    flask_migrate_project(project, url, monkeypatch)
    app = new_app(project, url, keep_migrate=True)
    for env in ({"NO_COLOR": "1"}, {"FORCE_COLOR": "1"}):
        result = app.test_cli_runner().invoke(args=["db", "adopt"], env=env)
        assert result.exit_code == 0, result.output
        assert "s3cr3t-pw" not in result.stdout + result.stderr
        assert ("\x1b[" in result.stderr) == ("FORCE_COLOR" in env)
    assert "s3cr3t-pw" not in run(app, "adopt", "--json").stdout
    dispose(app)


@pytest.mark.parametrize("directory", ["migrations", "db_migrations"])
def test_flask_migrate_usual_layout(
    project: Path, make_url: Any, monkeypatch: pytest.MonkeyPatch, directory: str
) -> None:
    """The app in a package (myapp/), Flask-Migrate's folder in the current directory
    (under its own name too): found where Flask-Migrate looks."""
    from flask_migrate import init
    from flask_migrate import Migrate
    from flask_migrate import migrate
    from flask_migrate import upgrade

    url = make_url()
    package = project / "myapp"
    package.mkdir()
    monkeypatch.chdir(project)
    old = Flask("myapp", root_path=str(package))
    old.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy()
    define_models(db)
    db.init_app(old)
    Migrate(old, db, directory=directory)
    with old.app_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        init()
        migrate(message="people")
        upgrade()
        db.engine.dispose()
    (rev,) = version_rows(url)

    app = Flask("myapp", root_path=str(package))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy()
    define_models(db)
    db.init_app(app)
    Migrate(app, db, directory=directory, command="old-db")
    Alembic(app)
    data = adopt_json(app)
    assert data["layout"]["script_location"] == str(project / directory)
    assert data["settings"]["ALEMBIC"] == {"script_location": f"../{directory}"}
    if directory == "migrations":  # where Flask-Alembic makes no empty folder of its own
        assert not (package / "migrations").exists()
    dispose(app)

    app = new_app(package, url, settings=data["settings"])
    result = run(app, "status", "--check")
    assert result.exit_code == 0, result.output
    assert f"current={rev}" in result.stdout
    dispose(app)
