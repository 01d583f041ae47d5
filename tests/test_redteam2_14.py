"""Second red team for issue 14 (adoption, foreign files, drift hints).

Each test here fails on the code as it was red-teamed, for the reason its docstring states.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
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

CREATE_USER = 'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True))'


def write_revision(folder: Path, name: str, ids: str, up: str, down: str = "pass") -> None:
    (folder / name).write_text(REVISION.format(ids=ids, up=up, down=down), encoding="utf-8")


def user_metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("user", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


# -- drift: a hint suggests a harmful upgrade, or calls a healthy database misconfigured --


def test_sqlite_no_upgrade_hint_when_a_pending_revision_creates_an_existing_table_in_another_case(
    project: Path, make_url: MakeURL
) -> None:
    """SQLite table names are case-insensitive: ``op.create_table("User")`` fails with
    "table User already exists" when the database has ``user``. drift.mismatch compares
    names case-sensitively, so with a misconfigured (empty) version table ``current
    --check-heads`` still says "Run 'flask db upgrade'", an upgrade that fails."""
    url = make_url("sqlite")
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(
        migrations,
        "r1_user.py",
        'revision = "r1"\ndown_revision = None',
        'op.create_table("User", sa.Column("id", sa.Integer, primary_key=True))',
    )
    engine = sa.create_engine(url)
    try:
        metadata = user_metadata()
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(sa.insert(metadata.tables["user"]), [{"id": 1}])
        app = Flask("redapp", root_path=str(project))
        upper = sa.MetaData()
        sa.Table("User", upper, sa.Column("id", sa.Integer, primary_key=True))
        Alembic(app, engines={"default": engine}, metadatas={"default": upper})

        heads = cli(app, "current", "--check-heads")
        assert heads.exit_code == 1
        assert "db upgrade" not in heads.output, heads.output
        assert "misconfigured" in heads.output, heads.output
        # The upgrade that the hint suggests fails: the table exists.
        upgrade = cli(app, "upgrade")
        assert upgrade.exit_code == 1
        assert "already exists" in upgrade.output
    finally:
        engine.dispose()
    assert version_rows(url) == set()


def test_no_false_mismatch_when_a_revision_drops_a_table_by_its_schema_and_creates_it_anew(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """A healthy database at r1 (which created ``user``); r2 drops ``user`` naming the
    default schema (``public``, ``main``, the MariaDB database) and creates it again
    without a schema: the same table. drift.table_changes keys tables by the schema
    *literal*, so the drop of ``<default>.user`` does not remove ``None.user`` and
    ``current --check-heads`` calls the version table misconfigured and says "Do not
    upgrade", though the upgrade works."""
    url = make_url(dialect)
    engine = sa.create_engine(url)
    try:
        schema = sa.inspect(engine).default_schema_name
        assert schema
        migrations = project / "migrations"
        migrations.mkdir()
        write_revision(migrations, "r1.py", 'revision = "r1"\ndown_revision = None', CREATE_USER)
        write_revision(
            migrations,
            "r2.py",
            'revision = "r2"\ndown_revision = "r1"',
            f'op.drop_table("user", schema="{schema}")\n    {CREATE_USER}',
        )
        app = Flask("redapp", root_path=str(project))
        Alembic(app, engines={"default": engine}, metadatas={"default": user_metadata()})
        assert cli(app, "upgrade", "r1").exit_code == 0

        heads = cli(app, "current", "--check-heads")
        assert heads.exit_code == 1
        assert "misconfigured" not in heads.output, heads.output
        assert "db upgrade" in heads.output, heads.output
        upgrade = cli(app, "upgrade")
        assert upgrade.exit_code == 0, upgrade.output
    finally:
        engine.dispose()
    assert version_rows(url) == {"r2"}
    assert table_names(url) == {"alembic_version", "user"}


# -- foreign files: a file Alembic loads as a revision is skipped --


def test_a_legacy_revision_named_by_its_id_is_loaded_as_alembic_loads_it(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """Alembic loads a file named ``<hex id>.py`` that binds no ``revision`` as the
    revision of that id (ScriptDirectory's legacy file names), so ``alembic upgrade``
    runs it. revision_cache.is_foreign calls it another tool's file and skips it: the
    revision is silently missing, ``upgrade`` creates nothing and records nothing."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(migrations, "1a2b3c.py", "down_revision = None", CREATE_USER)
    # Alembic itself sees the revision.
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(migrations))
    assert [s.revision for s in ScriptDirectory.from_config(config).walk_revisions()] == ["1a2b3c"]
    engine = sa.create_engine(url)
    try:
        app = Flask("redapp", root_path=str(project))
        Alembic(app, engines={"default": engine}, metadatas={"default": user_metadata()})
        result = cli(app, "upgrade")
        assert result.exit_code == 0, result.output
    finally:
        engine.dispose()
    assert version_rows(url) == {"1a2b3c"}
    assert "user" in table_names(url)


# -- adopt's journal: a journal that names another folder's files --


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_a_journal_copied_with_the_project_changes_only_the_copy(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """adopt is killed midway through its renames (journal phase "moving"); the operator
    copies the project folder (a backup, a second checkout on the same host) and runs
    adopt in the copy. The journal holds absolute paths and lockstep.recover trusts
    them: the copy's adopt finishes the conversion *of the original folder* (moving its
    files, without its locks), then leaves the copy half converted. A journal that names
    files outside the folder it is in must not be followed."""
    import shutil

    from test_adopt_kill import kill
    from test_redteam_14 import flask_migrate_multidb
    from test_redteam_14 import load_app_module

    from flask_alembic.lockstep import JOURNAL_NAME

    urls = {"default": make_url(), "users": make_url()}
    flask_migrate_multidb(project, urls, monkeypatch)
    kill(project, urls, "os.rename", "", 4)
    assert json.loads((project / "migrations" / JOURNAL_NAME).read_text())["phase"] == "moving"
    original = tree(project)

    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    module = load_app_module(copy)
    original["redapp.py"] = (project / "redapp.py").read_bytes()
    monkeypatch.chdir(copy)
    app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt"])
    finally:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    # The original folder is exactly as the kill left it.
    assert sorted(tree(project)) == sorted(original), result.output
    assert tree(project) == original


def test_a_revision_restored_by_hand_after_a_kill_is_not_left_beside_its_conversion(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adopt is killed just after it moved the old lockstep revision into its staging
    folder. The operator sees the revision gone from ``versions/`` and restores it (``git
    checkout``), then runs adopt again. lockstep.recover's roll_forward skips the move
    whose source is back and finishes: the restored lockstep file stays in ``versions/``
    beside the files converted from it, with the same revision id, and the run fails
    with "The archive folder ... already exists: a lockstep history was converted here
    before", a hint that cannot work."""
    from test_adopt_kill import kill
    from test_adopt_kill import rerun

    from flask_alembic.lockstep import JOURNAL_NAME

    urls = {"default": make_url(), "users": make_url()}
    from test_redteam_14 import flask_migrate_multidb

    module, _ = flask_migrate_multidb(project, urls, monkeypatch)
    (old,) = (project / "migrations" / "versions").glob("*.py")
    source = old.read_bytes()
    kill(project, urls, "os.rename", "", 4)
    assert json.loads((project / "migrations" / JOURNAL_NAME).read_text())["phase"] == "moving"
    assert not old.exists()
    old.write_bytes(source)  # restored by hand
    code, output = rerun(module, urls)
    lockstep = [
        p.name
        for p in (project / "migrations").rglob("*.py")
        if ".lockstep-archive" not in p.parts and "def upgrade(engine_name" in p.read_text()
    ]
    # Either finished with the restored file archived, or stopped naming the restored
    # file; not "converted here before", whose hint (move the archive out, convert
    # again) meets the converted files already in place.
    flat = " ".join(output.split())
    assert "converted here before" not in flat, flat
    if code == 0:
        assert lockstep == []
    else:
        assert code == 1
        assert str(old) in flat, flat


# -- -x: given before the command, silently dropped by check --


def test_x_arguments_before_check_reach_autogenerate_hooks(
    make_app: MakeApp, database_url: str
) -> None:
    """``flask db -x skip=audit check`` must compare as ``flask db -x skip=audit migrate``
    does (Flask-Migrate passes the group's -x to every command, check included; ``alembic
    -x ... check`` too). check runs the ALEMBIC_CONTEXT hooks outside Alembic's
    environment context and drops the group's -x: an include_object that calls
    ``context.get_x_argument()`` -- one that works with migrate -- crashes check with an
    uncaught ``AttributeError: 'NoneType' object has no attribute 'get_x_argument'`` (a
    traceback, not an error message)."""
    from alembic import context

    def include_object(obj: object, name: str, kind: str, reflected: bool, other: object) -> bool:
        skip = context.get_x_argument(as_dictionary=True).get("skip")
        return not (kind == "table" and name == skip)

    metadata = sa.MetaData()
    sa.Table("keep", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("audit", metadata, sa.Column("id", sa.Integer, primary_key=True))
    app, _ = make_app(database_url, metadata, ALEMBIC_CONTEXT={"include_object": include_object})
    written = cli(app, "-x", "skip=audit", "migrate", "-m", "keep only")
    assert written.exit_code == 0, written.output
    assert cli(app, "upgrade").exit_code == 0
    assert table_names(database_url) == {"alembic_version", "keep"}
    # migrate with the same -x finds nothing more to write.
    again = cli(app, "-x", "skip=audit", "migrate", "-m", "nothing")
    assert again.exit_code == 0, again.output
    assert len(list((Path(app.root_path) / "migrations").glob("*.py"))) == 1
    check = cli(app, "-x", "skip=audit", "check")
    assert check.exception is None or isinstance(check.exception, SystemExit), check.exception
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize(
    ("event", "where", "count"),
    [("open", ".lockstep-tmp", 2), ("os.rename", "", 4)],
    ids=["writing", "moving"],
)
def test_a_project_moved_after_a_kill_is_recovered(
    project: Path,
    make_url: MakeURL,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    event: str,
    where: str,
    count: int,
) -> None:
    """adopt is killed; the project folder is then renamed (``mv app app-old``, a new
    release folder, a re-mounted volume) and adopt is run again there. The journal holds
    absolute paths into the old location, none of which exists any more: killed while
    writing, the re-run "undoes" nothing and deletes the journal, then stops on the
    staging folder "that no journal says what it moved"; killed while moving, it cannot
    finish and tells the operator to restore the folder from a backup. The journal's
    paths must be taken relative to the folder it is in, and the re-run must convert."""
    from test_adopt_kill import assert_converted
    from test_adopt_kill import files
    from test_adopt_kill import kill
    from test_redteam_14 import flask_migrate_multidb
    from test_redteam_14 import load_app_module

    urls = {"default": make_url(), "users": make_url()}
    _, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    kill(project, urls, event, where, count)
    moved = tmp_path / "moved"
    project.rename(moved)
    module = load_app_module(moved)
    monkeypatch.chdir(moved)
    app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt"])
    finally:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    assert result.exit_code == 0, result.output
    assert_converted(moved, urls, rev, old)


def test_no_false_mismatch_when_the_revision_creates_the_table_only_if_it_is_missing(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """A common revision for an app that used ``db.create_all()`` before migrations: it
    creates ``user`` only if the database lacks it (``if not
    sa.inspect(op.get_bind()).has_table("user")``). The database has ``user`` and no
    version row yet: healthy, and ``upgrade`` works. drift.table_changes ignores the
    guard (only ``if_not_exists=True`` is understood), so ``current --check-heads`` calls
    the version table misconfigured and says "Do not upgrade"."""
    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(
        migrations,
        "r1_user.py",
        'revision = "r1"\ndown_revision = None',
        'if not sa.inspect(op.get_bind()).has_table("user"):\n        ' + CREATE_USER,
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
        assert "misconfigured" not in heads.output, heads.output
        assert "run 'flask db upgrade'" in heads.output, heads.output
        upgrade = cli(app, "upgrade")
        assert upgrade.exit_code == 0, upgrade.output
    finally:
        engine.dispose()
    assert version_rows(url) == {"r1"}


def test_a_journal_edited_by_hand_gives_an_error_not_a_traceback(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal that is valid JSON with every key, but whose ``moves`` list was emptied
    by hand: _Journal.load accepts it and roll_forward reads ``self.moves[-1]``, so the
    re-run dies with an uncaught ``IndexError`` (a traceback, empty output) instead of
    the journal's "Cannot read the journal ..." error and its hint."""
    from test_adopt_kill import kill
    from test_adopt_kill import rerun
    from test_redteam_14 import flask_migrate_multidb

    from flask_alembic.lockstep import JOURNAL_NAME

    urls = {"default": make_url(), "users": make_url()}
    module, _ = flask_migrate_multidb(project, urls, monkeypatch)
    kill(project, urls, "os.rename", "", 5)
    journal = project / "migrations" / JOURNAL_NAME
    data = json.loads(journal.read_text())
    assert data["phase"] == "moving"
    data["moves"] = []
    journal.write_text(json.dumps(data), encoding="utf-8")
    code, output = rerun(module, urls)
    assert code == 1
    assert output.startswith(f"Error: Cannot read the journal {journal}"), output


def test_no_upgrade_hint_for_a_dependency_bind_whose_pending_revision_creates_existing_tables(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """Bind ``reports``' revision depends on default's ``d1``, which creates ``user``. The
    default database has ``user`` (with data) but its version table is misconfigured
    (empty). ``upgrade --bind reports`` refuses, and its hint (planner.py) says "Upgrade
    it first with 'flask db upgrade --bind default', or add --with-dependencies": either
    creates ``user`` again and fails. drift.mismatch is not consulted on this path; ``current
    --check-heads`` on the same databases does say "misconfigured"."""
    urls = {"default": make_url(dialect), "reports": make_url(dialect)}
    migrations = project / "migrations"
    (migrations / "reports").mkdir(parents=True)
    write_revision(migrations, "d1_user.py", 'revision = "d1"\ndown_revision = None', CREATE_USER)
    write_revision(
        migrations / "reports",
        "r1_report.py",
        'revision = "r1"\ndown_revision = None',
        'op.create_table("report", sa.Column("id", sa.Integer, primary_key=True))',
    )
    text = (migrations / "reports" / "r1_report.py").read_text()
    (migrations / "reports" / "r1_report.py").write_text(
        text.replace("depends_on = None", 'depends_on = "d1"'), encoding="utf-8"
    )
    report = sa.MetaData()
    sa.Table("report", report, sa.Column("id", sa.Integer, primary_key=True))
    engines = {name: sa.create_engine(url) for name, url in urls.items()}
    try:
        metadata = user_metadata()
        with engines["default"].begin() as conn:
            metadata.create_all(conn)
            conn.execute(sa.insert(metadata.tables["user"]), [{"id": 1}])
        app = Flask("redapp", root_path=str(project))
        Alembic(app, engines=engines, metadatas={"default": user_metadata(), "reports": report})

        heads = cli(app, "current", "--check-heads")
        assert "misconfigured" in heads.output, heads.output  # the premise
        result = cli(app, "upgrade", "--bind", "reports")
        assert result.exit_code == 1
        assert "upgrade --bind default" not in result.output, result.output
        assert "--with-dependencies" not in result.output, result.output
    finally:
        for engine in engines.values():
            engine.dispose()
    assert version_rows(urls["default"]) == set()
    assert version_rows(urls["reports"]) == set()


def test_x_arguments_given_as_one_string_from_python(make_app: MakeApp, database_url: str) -> None:
    """Flask-Migrate's Python API takes ``upgrade(x_arg="name=api")``, a string; so does
    this package's type (``Sequence[str]``: a ``str`` is one, mypy accepts it). But
    environment.with_x_arguments does ``list(x_arguments)``: the migration reads
    ``{"n": "", "a": "", "m": "", "e": "", ...}``, not ``{"name": "api"}``, and runs
    silently as if no -x was given (another tenant's data, say). A string must be taken
    as one argument, or refused."""
    from test_habits import seen
    from test_habits import X_REVISION

    app, alembic = make_app(database_url)
    (Path(app.root_path) / "migrations" / "aaaa0001_x.py").write_text(X_REVISION)
    with app.app_context():
        alembic.upgrade(x_arguments="name=api")  # one argument, as Flask-Migrate takes it
        sql = alembic.downgrade("aaaa0001:base", sql=True, x_arguments="name=api")
    assert seen(database_url) == {"api"}
    assert "DELETE FROM seen WHERE name = 'api'" in sql["default"]


@pytest.mark.parametrize(
    ("head", "up"),
    [
        ('TABLE = "user"', 'op.create_table(TABLE, sa.Column("id", sa.Integer, primary_key=True))'),
        (
            "",
            'op.create_table("tmp", sa.Column("id", sa.Integer))\n'
            '    op.rename_table("tmp", "user")',
        ),
    ],
    ids=["module-constant", "renamed-into-place"],
)
def test_no_upgrade_hint_when_the_existing_table_is_made_another_way(
    project: Path, make_url: MakeURL, dialect: str, head: str, up: str
) -> None:
    """The database has ``user`` (with data) and an empty, misconfigured version table;
    the pending revision makes ``user`` with the table's name in a module-level constant
    (``op.create_table(TABLE, ...)``), or creates a table and renames it to ``user``.
    drift.table_changes reads only literal names and treats a rename onto an existing
    table as harmless, so ``current --check-heads`` says "Run 'flask db upgrade'": that
    upgrade fails (``user`` exists)."""
    url = make_url(dialect)
    migrations = project / "migrations"
    migrations.mkdir()
    write_revision(migrations, "r1_user.py", f'revision = "r1"\ndown_revision = None\n{head}', up)
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
        assert "db upgrade" not in heads.output, heads.output
        assert "misconfigured" in heads.output, heads.output
    finally:
        engine.dispose()
    assert version_rows(url) == set()
