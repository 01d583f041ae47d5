"""Red team for issue 14 (adoption from Flask-Migrate, Flask-Alembic 3 and Alembic).

Each test here fails on the code as it was red-teamed, for the reason its docstring states.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic

REVISION = """\
from alembic import op
import sqlalchemy as sa

{ids}
branch_labels = None
depends_on = None


def upgrade():
    {up}


def downgrade():
    {down}
"""


def write_revision(folder: Path, name: str, ids: str, up: str, down: str) -> None:
    (folder / name).write_text(REVISION.format(ids=ids, up=up, down=down), encoding="utf-8")


def user_metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("user", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


# -- 1. a hint suggests a harmful upgrade when the first pending revision creates nothing --


def test_no_upgrade_hint_when_a_later_pending_revision_creates_existing_tables(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """The history starts with a revision that creates no table (an empty initial revision,
    or a PostgreSQL project's ``CREATE EXTENSION``), then one that creates ``user``. The
    database has ``user`` and data, but the version table is misconfigured (empty).
    drift.mismatch only reads the *first* pending revision, so ``current --check-heads``
    says "Run 'flask db upgrade'" and ``check`` says "Run 'flask db upgrade --bind default'
    first": that upgrade would create ``user`` again (fails; on MariaDB it can leave a
    half-applied revision after the first one was recorded)."""
    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(
        migrations,
        "r1_init.py",
        'revision = "r1"\ndown_revision = None',
        'op.execute("SELECT 1")',
        "pass",
    )
    write_revision(
        migrations,
        "r2_user.py",
        'revision = "r2"\ndown_revision = "r1"',
        'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("user")',
    )
    engine = sa.create_engine(url)
    try:
        metadata = user_metadata()
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(sa.insert(metadata.tables["user"]), [{"id": 1}])
        app = Flask("redapp", root_path=str(project))
        Alembic(app, engines={"default": engine}, metadatas={"default": user_metadata()})

        heads = cli(app, "current", "--check-heads")
        assert heads.exit_code == 1
        # No command to upgrade is suggested ("Do not upgrade" is the warning itself).
        assert "db upgrade" not in heads.output, heads.output
        assert "Do not upgrade" in heads.output
        check = cli(app, "check")
        assert check.exit_code == 1
        assert "db upgrade" not in check.output, check.output
        assert "misconfigured" in check.output, check.output
    finally:
        engine.dispose()
    assert version_rows(url) == set()


def test_upgrade_hint_kept_when_a_pending_revision_recreates_a_dropped_table(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """The pending revisions are followed in order: r2 drops ``user`` (which the database at
    r1 has), r3 creates it anew, and r4 renames ``user`` to ``member`` then creates
    ``user`` again. No mismatch: the hint is the usual upgrade, and upgrading works."""
    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    create = 'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True))'
    write_revision(migrations, "r1.py", 'revision = "r1"\ndown_revision = None', create, "pass")
    write_revision(
        migrations,
        "r2.py",
        'revision = "r2"\ndown_revision = "r1"',
        'op.drop_table("user")',
        "pass",
    )
    write_revision(migrations, "r3.py", 'revision = "r3"\ndown_revision = "r2"', create, "pass")
    write_revision(
        migrations,
        "r4.py",
        'revision = "r4"\ndown_revision = "r3"',
        'op.rename_table("user", "member")\n    ' + create,
        "pass",
    )
    engine = sa.create_engine(url)
    try:
        app = Flask("redapp", root_path=str(project))
        metadata = user_metadata()
        sa.Table("member", metadata, sa.Column("id", sa.Integer, primary_key=True))
        Alembic(app, engines={"default": engine}, metadatas={"default": metadata})
        assert cli(app, "upgrade", "r1").exit_code == 0
        heads = cli(app, "current", "--check-heads")
        assert heads.exit_code == 1
        assert "misconfigured" not in heads.output, heads.output
        assert "Not up to date: default is behind: run 'flask db upgrade'." in heads.stderr
        result = cli(app, "upgrade")
        assert result.exit_code == 0, result.output
    finally:
        engine.dispose()
    assert version_rows(url) == {"r4"}


# -- 2. a revision Alembic loads is silently dropped from the history ----------------------


@pytest.mark.parametrize(
    "ids",
    [
        'revision, down_revision = "r2", "r1"',
        'import sys\nif sys.version_info >= (3,):\n    revision = "r2"\nelse:\n'
        '    revision = "r2"\ndown_revision = "r1"',
    ],
    ids=["tuple-assignment", "assigned-in-if"],
)
@pytest.mark.parametrize("cache", [True, False], ids=["cache-on", "cache-off"])
def test_revision_assigned_not_at_top_level_is_not_dropped(
    project: Path, make_url: MakeURL, dialect: str, ids: str, cache: bool
) -> None:
    """A revision file whose ``revision`` is set by a tuple assignment or inside an ``if``
    is a revision for Alembic (which imports it and reads ``module.revision``), but the
    foreign-file filter (revision_cache._top_level_names) only sees plain top-level
    ``revision = ...``, so the file is silently treated as another tool's file: ``upgrade``
    stops at r1, ``status`` says 'up to date', and table ``item`` is never created. No
    error, exit 0, with the revision cache on and off."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(
        migrations,
        "r1_user.py",
        'revision = "r1"\ndown_revision = None',
        'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("user")',
    )
    write_revision(
        migrations,
        "r2_item.py",
        ids,
        'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("item")',
    )
    # Plain Alembic sees two revisions, r2 the head.
    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(migrations))
    alembic_config.set_main_option("path_separator", "os")
    alembic_config.set_main_option("version_locations", str(migrations))
    assert ScriptDirectory.from_config(alembic_config).get_heads() == ["r2"]

    metadata = user_metadata()
    sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True))
    engine = sa.create_engine(url)
    try:
        app = Flask("redapp", root_path=str(project))
        app.config["ALEMBIC_REVISION_CACHE"] = cache
        Alembic(app, engines={"default": engine}, metadatas={"default": metadata})
        result = cli(app, "upgrade")
        assert result.exit_code == 0, result.output
    finally:
        engine.dispose()
    assert version_rows(url) == {"r2"}
    assert {"user", "item"} <= table_names(url)


# -- 3. a killed adopt leaves a folder that a re-run cannot finish -------------------------

APP_SOURCE = """
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy


def create_app(urls, tool, **options):
    app = Flask("redapp", root_path=ROOT)
    app.config["SQLALCHEMY_DATABASE_URI"] = urls["default"]
    app.config["SQLALCHEMY_BINDS"] = {k: v for k, v in urls.items() if k != "default"}
    db = SQLAlchemy()
    db.Table("person", sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("name", sa.String(50)))
    db.Table("account", sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("login", sa.String(50)), bind_key="users")
    db.init_app(app)
    from flask_migrate import Migrate
    if tool == "migrate":
        Migrate(app, db, **options)
    else:
        Migrate(app, db, command="old-db", **options)
        from flask_alembic import Alembic
        Alembic(app)
    return app, db
"""

KILLER = """
import json, os, signal, sys
sys.path.insert(0, os.getcwd())
from redapp import create_app

def hook(event, args):
    # Killed right after the old revision files were moved, before the rest is renamed.
    if event == "os.rename" and str(args[0]).endswith(os.sep + "script.py.mako"):
        os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
app, db = create_app(json.loads(sys.argv[1]), "alembic")
app.test_cli_runner().invoke(args=["db", "adopt"])
"""


def load_app_module(project: Path) -> object:
    import importlib.util
    import uuid

    path = project / "redapp.py"
    path.write_text(f"ROOT = {str(project)!r}\n" + APP_SOURCE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"redapp_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dispose_all(db: object) -> None:
    for engine in db.engines.values():  # type: ignore[attr-defined]
        engine.dispose()


def flask_migrate_multidb(
    project: Path, urls: dict[str, str], monkeypatch: pytest.MonkeyPatch, **options: object
) -> tuple[object, str]:
    """A Flask-Migrate --multidb project made by Flask-Migrate itself; returns the app
    module and the revision id both databases record."""
    import logging
    import warnings

    from flask_migrate import init
    from flask_migrate import migrate
    from flask_migrate import upgrade

    module = load_app_module(project)
    monkeypatch.chdir(project)
    app, db = module.create_app(urls, "migrate", **options)  # type: ignore[attr-defined]
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with app.app_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        init(multidb=True)
        migrate(message="one")
        upgrade()
        dispose_all(db)
    root.setLevel(level)
    root.handlers[:] = handlers
    logging.getLogger("alembic").disabled = False
    logging.getLogger("sqlalchemy").disabled = False
    (rev,) = schema_rows(
        urls["users"],
        options.get("version_table_schema"),  # type: ignore[arg-type]
        options.get("version_table", "alembic_version"),  # type: ignore[arg-type]
    )
    return module, rev


def schema_rows(url: str, schema: str | None, table: str = "alembic_version") -> set[str]:
    """The version rows of ``schema.table`` (none when the table does not exist)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table, schema=schema):
                return set()
            t = sa.table(table, sa.column("version_num"), schema=schema)
            return {row[0] for row in conn.execute(sa.select(t.c.version_num))}
    finally:
        engine.dispose()


def test_killed_adopt_can_be_finished_by_a_rerun(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``adopt`` is SIGKILLed (a real process) right after apply_conversion moved the old
    revision files into the staging archive ``.lockstep-archive.lockstep-tmp``: versions/
    then holds no revision, the new files sit under temporary names. The docs promise
    "Fix the cause and run flask db adopt again: it finishes the job", but the re-run
    finds a plain Flask-Migrate layout with an empty versions/ and fails with "Bind
    'default' records revision(s) ... which no file ... has. Check the version table
    setting": a wrong diagnosis, and no way forward short of moving files by hand."""
    import json
    import subprocess
    import sys

    from flask_alembic.lockstep import derived_id

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    (project / "killer.py").write_text(KILLER, encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "killer.py", json.dumps(urls)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    # The databases were not touched: the kill came before any stamp.
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {rev}

    app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt"])
        assert result.exit_code == 0, result.output
    finally:
        with app.app_context():
            dispose_all(db)
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {derived_id(rev, "users")}


# -- 4. adopt exits 0 although its own "After" check says the settings are wrong ------------


def test_adopt_exit_code_when_after_check_finds_a_misconfigured_version_table(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Flask-Migrate project made with ``Migrate(app, db, version_table="legacy_version")``,
    adopted after ``Migrate`` was removed (the docs allow it: a warning says its options
    cannot be read). adopt prints settings without the version table, and its own "After"
    line reports the VersionTableMismatchError ("Do not upgrade: it would create them
    again"), yet it exits 0, so a deploy script that runs ``flask db adopt && ...`` goes on
    with settings that adopt itself knows to be wrong."""
    import logging
    import warnings

    from flask_migrate import init
    from flask_migrate import Migrate
    from flask_migrate import migrate
    from flask_migrate import upgrade
    from flask_sqlalchemy import SQLAlchemy

    url = make_url(dialect)
    monkeypatch.chdir(project)

    def make(tool: str) -> tuple[Flask, SQLAlchemy]:
        app = Flask("redapp", root_path=str(project))
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        db = SQLAlchemy()
        db.Table("person", sa.Column("id", sa.Integer, primary_key=True))
        db.init_app(app)
        if tool == "migrate":
            Migrate(app, db, version_table="legacy_version")
        else:
            Alembic(app)
        return app, db

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    app, db = make("migrate")
    with app.app_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        init()
        migrate(message="people")
        upgrade()
        db.engine.dispose()
    root.setLevel(level)
    root.handlers[:] = handlers
    for name in ("alembic", "sqlalchemy"):
        logging.getLogger(name).disabled = False
    (rev,) = version_rows(url, "legacy_version")

    app, db = make("alembic")
    try:
        result = cli(app, "adopt")
        assert "Do not upgrade" in result.stderr
        assert result.exit_code == 1, result.output
    finally:
        with app.app_context():
            db.engine.dispose()
    assert version_rows(url, "legacy_version") == {rev}


KILL_AFTER = """
import json, os, signal, sys
sys.path.insert(0, os.getcwd())
from redapp import create_app

moved = []

def hook(event, args):
    # Killed at the first rename after the file of revision sys.argv[2] was moved.
    if event != "os.rename":
        return
    if moved:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.path.basename(str(args[0])).startswith(sys.argv[2] + "_"):
        moved.append(args[0])

sys.addaudithook(hook)
app, db = create_app(json.loads(sys.argv[1]), "alembic")
app.test_cli_runner().invoke(args=["db", "adopt"])
"""


def test_killed_adopt_rerun_hint_does_not_say_delete_the_only_copy(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Flask-Migrate --multidb history r1 <- r2, both databases at r2. ``adopt`` is
    SIGKILLed (a real process) right after it moved r1's file into the staging folder
    ``.lockstep-archive.lockstep-tmp``. The re-run finds r2 still in versions/, plans again,
    and stops in lockstep._check_archive with "The folder .../.lockstep-archive.lockstep-tmp
    is left from a conversion that was stopped. Delete it (the old files are still in their
    folders), then convert again": false, r1's file is only in that folder. Following the
    hint deletes a revision file for good."""
    import json
    import subprocess
    import sys
    import warnings

    from flask_migrate import revision
    from flask_migrate import upgrade

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, first = flask_migrate_multidb(project, urls, monkeypatch)
    app, db = module.create_app(urls, "migrate")  # type: ignore[attr-defined]
    with app.app_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        revision(message="two")
        upgrade()
        dispose_all(db)
    (second_file,) = [
        p for p in (project / "migrations" / "versions").glob("*.py") if first not in p.name
    ]
    second = second_file.name.split("_")[0]
    (project / "killer.py").write_text(KILL_AFTER, encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "killer.py", json.dumps(urls), first],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    assert second_file.exists()
    assert version_rows(urls["users"]) == {second}

    app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt"])
    finally:
        with app.app_context():
            dispose_all(db)
    assert "the old files are still in their folders" not in result.output, result.output
    assert result.exit_code == 0, result.output


# -- 5. two adopt processes at once: the second one's hint says to move the archive away ----

WAIT_AT_LOCK = """
import fcntl, json, os, sys, time
sys.path.insert(0, os.getcwd())
from redapp import create_app

def hook(event, args):
    # Stop at the first try for the exclusive file lock (the migration lock) until told to go.
    exclusive = fcntl.LOCK_EX | fcntl.LOCK_NB
    if event == "fcntl.flock" and args[1] == exclusive and not os.path.exists("go"):
        open("waiting", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists("go") and time.monotonic() < deadline:
            time.sleep(0.05)

sys.addaudithook(hook)
app, db = create_app(json.loads(sys.argv[1]), "alembic")
result = app.test_cli_runner().invoke(args=["db", "adopt"])
print(result.exit_code)
print(result.output)
"""


def test_two_adopts_at_once_second_one_is_a_no_op(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ``flask db adopt`` processes on a Flask-Migrate --multidb project whose 'users'
    database has an empty version table (SQLite: the wait is made certain with an audit
    hook on the lock's flock). B plans on the old layout, then waits for the migration
    locks; A converts and finishes. B then takes the locks, re-checks only the version rows
    (unchanged: default keeps its id, users stays at base), and apply_conversion stops
    with "The archive folder .../.lockstep-archive already exists ... Move that folder out
    of the migrations folder, then convert again": exit 1, and a hint that, followed,
    removes the id map and the old files the docs' way back needs. A run after success
    should change nothing and say so (the docs: "A run after success changes nothing")."""
    import json
    import subprocess
    import sys
    import time

    urls = {"default": make_url(), "users": make_url()}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    # 'users' really at base (no row, none of its tables): no stamp is due there, so the
    # second process finds no moved row to stop it; a row deleted with the tables kept
    # would be a misconfigured version table, which adopt's after-check refuses.
    engine = sa.create_engine(urls["users"])
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM alembic_version"))
        for table in set(sa.inspect(conn).get_table_names()) - {"alembic_version"}:
            conn.execute(sa.text(f'DROP TABLE "{table}"'))
    engine.dispose()

    (project / "waiter.py").write_text(WAIT_AT_LOCK, encoding="utf-8")
    second = subprocess.Popen(
        [sys.executable, "waiter.py", json.dumps(urls)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (project / "waiting").exists() and time.monotonic() < deadline:
            assert second.poll() is None, second.communicate()
            time.sleep(0.05)
        assert (project / "waiting").exists()

        app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
        try:
            first = app.test_cli_runner().invoke(args=["db", "adopt"])
            assert first.exit_code == 0, first.output
        finally:
            with app.app_context():
                dispose_all(db)
        (project / "go").touch()
        out, err = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
        second.communicate()  # reaps it and closes its pipes, whatever happened above
    assert "Move that folder out" not in out, out
    assert out.splitlines()[0] == "0", out + err
    assert version_rows(urls["default"]) == {rev}


# -- 6. an alembic.ini that is not UTF-8: a traceback instead of a one-line error -----------


def test_adopt_alembic_ini_not_utf8_is_a_one_line_error(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flask-Migrate's migrations/alembic.ini with a comment saved in Latin-1 (as an editor
    on Windows does). adopt._ini_parser catches configparser.Error only, so
    UnicodeDecodeError escapes: ``flask db adopt`` (and ``--from migrations/alembic.ini``)
    dies with a traceback instead of a one-line error naming the file. (config.py's own
    reader of alembic.ini catches UnicodeDecodeError; adopt's does not.)"""
    import logging
    import warnings

    from flask_migrate import init
    from flask_migrate import Migrate
    from flask_migrate import migrate
    from flask_sqlalchemy import SQLAlchemy

    url = make_url()
    monkeypatch.chdir(project)

    def make(tool: str) -> tuple[Flask, SQLAlchemy]:
        app = Flask("redapp", root_path=str(project))
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        db = SQLAlchemy()
        db.Table("person", sa.Column("id", sa.Integer, primary_key=True))
        db.init_app(app)
        if tool == "migrate":
            Migrate(app, db)
        else:
            Alembic(app)
        return app, db

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    app, db = make("migrate")
    with app.app_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        init()
        migrate(message="people")
        db.engine.dispose()
    root.setLevel(level)
    root.handlers[:] = handlers
    for name in ("alembic", "sqlalchemy"):
        logging.getLogger(name).disabled = False
    ini = project / "migrations" / "alembic.ini"
    ini.write_bytes(ini.read_bytes() + "# Configuration de l'équipe\n".encode("latin-1"))

    app, db = make("alembic")
    try:
        for args in (["adopt"], ["adopt", "--from", str(ini)]):
            result = cli(app, *args)
            assert not isinstance(result.exception, UnicodeDecodeError), repr(result.exception)
            assert result.exit_code == 1, result.output
            assert result.stderr.startswith("Error: "), result.output
            assert str(ini) in result.stderr
    finally:
        with app.app_context():
            db.engine.dispose()


def test_revision_file_named_env_py_in_a_bind_folder_is_not_dropped(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """A bind's own folder (migrations/users/) holds a revision whose file is named
    ``env.py`` (``file_template = %%(slug)s`` and the message "env"). It assigns ``revision``
    at the top level, so it is not another tool's env.py, and Alembic loads it; but
    revision_cache._TOOL_FILES drops any file named env.py by name, silently: ``upgrade``
    stops at r1 on 'users', ``status`` says 'up to date', table ``item`` is never created."""
    from flask_alembic.registry import bind_directory_name

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    folder = project / "migrations" / bind_directory_name("users")
    folder.mkdir(parents=True)
    write_revision(
        folder,
        "r1_user.py",
        'revision = "r1"\ndown_revision = None',
        'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("user")',
    )
    write_revision(
        folder,
        "env.py",
        'revision = "r2"\ndown_revision = "r1"',
        'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True))',
        'op.drop_table("item")',
    )
    # Plain Alembic, with that folder as a version location, sees r2 as the head.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    alembic_config = Config()
    alembic_config.set_main_option("script_location", str(project / "migrations"))
    alembic_config.set_main_option("path_separator", "os")
    alembic_config.set_main_option("version_locations", str(folder))
    assert ScriptDirectory.from_config(alembic_config).get_heads() == ["r2"]

    metadata = user_metadata()
    sa.Table("item", metadata, sa.Column("id", sa.Integer, primary_key=True))
    engines = {name: sa.create_engine(url) for name, url in urls.items()}
    try:
        app = Flask("redapp", root_path=str(project))
        Alembic(app, engines=engines, metadatas={"default": sa.MetaData(), "users": metadata})
        result = cli(app, "upgrade")
        assert result.exit_code == 0, result.output
    finally:
        for engine in engines.values():
            engine.dispose()
    assert version_rows(urls["users"]) == {"r2"}
    assert {"user", "item"} <= table_names(urls["users"])


# -- 8. Flask-Alembic 3, one database, with 3.x's (branch, folder) version_locations --------


def test_flask_alembic_3_single_with_branch_folder_adopts(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """A Flask-Alembic 3.3.0 project with one database and an independent branch kept in
    its own folder, configured the 3.x way: ALEMBIC = {"version_locations": [("feature",
    "feature_migrations")]}. The drop-in runs it (both branches applied with this package's
    ``revision --branch`` and ``upgrade``), but ``adopt`` reads the old ids of
    migrations/ only (adopt._old_ids([layout.revisions])), so the version row of the
    'feature' branch is "a revision which no file in migrations has": adopt fails with
    "Check the version table setting" on a project the docs say adopts with no change."""
    import alembic

    url = make_url(dialect)
    metadata = user_metadata()
    engine = sa.create_engine(url)
    try:
        app = Flask("redapp", root_path=str(project))
        app.config["ALEMBIC"] = {"version_locations": [("feature", "feature_migrations")]}
        Alembic(app, engines={"default": engine}, metadatas={"default": metadata})
        assert cli(app, "mkdir").exit_code == 0
        # 3.x's mkdir copied Alembic's generic template.
        generic = Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako"
        (project / "migrations" / "script.py.mako").write_bytes(generic.read_bytes())
        result = cli(app, "revision", "--empty", "main")
        assert result.exit_code == 0, result.output
        result = cli(app, "revision", "--empty", "--branch", "feature", "feature")
        assert result.exit_code == 0, result.output
        assert list((project / "feature_migrations").glob("*.py"))
        result = cli(app, "upgrade")
        assert result.exit_code == 0, result.output
        assert len(version_rows(url)) == 2

        result = cli(app, "adopt")
        assert result.exit_code == 0, result.output
    finally:
        engine.dispose()


def test_create_if_not_exists_is_no_mismatch(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """A pending revision that creates ``user`` with ``if_not_exists=True`` is no sign of a
    misconfigured version table when ``user`` exists: the usual upgrade hint, and the
    upgrade works."""
    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(
        migrations,
        "r1.py",
        'revision = "r1"\ndown_revision = None',
        'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True), '
        "if_not_exists=True)",
        "pass",
    )
    engine = sa.create_engine(url)
    try:
        metadata = user_metadata()
        with engine.begin() as conn:
            metadata.create_all(conn)
        app = Flask("redapp", root_path=str(project))
        Alembic(app, engines={"default": engine}, metadatas={"default": user_metadata()})
        heads = cli(app, "current", "--check-heads")
        assert heads.exit_code == 1
        assert "misconfigured" not in heads.output, heads.output
        assert "Not up to date: default is behind: run 'flask db upgrade'." in heads.stderr
        result = cli(app, "upgrade")
        assert result.exit_code == 0, result.output
    finally:
        engine.dispose()
    assert version_rows(url) == {"r1"}
