"""The Python API, end to end, on every dialect."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import MakeApp
from conftest import models
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import MultipleHeadsError
from flask_alembic.errors import NotUpToDateError
from flask_alembic.errors import RevisionError
from flask_alembic.errors import ScriptDirectoryError


def test_seed_flow(make_app: MakeApp, database_url: str, project: Path) -> None:
    """The documented walk-through works as written on every dialect."""
    app, alembic = make_app(database_url)
    assert (project / "migrations" / "script.py.mako").is_file()
    with app.app_context():
        scripts = alembic.revision("made changes")
        assert len(scripts) == 1
        alembic.upgrade()
        head = alembic.script.get_revision("head")
        assert head.revision == scripts[0].revision
        assert alembic.context.get_current_revision() == head.revision
        alembic.op.drop_column("user", "name")
        diffs = alembic.compare_metadata()
    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "user", "name")]


def test_api_prints_nothing(make_app: MakeApp, database_url: str) -> None:
    """revision/upgrade/downgrade/stamp write nothing to stdout (no 'Generating ... done')."""
    app, alembic = make_app(database_url)
    buffer = io.StringIO()
    with app.app_context(), redirect_stdout(buffer):
        alembic.revision("first")
        alembic.upgrade()
        alembic.revision("second", empty=True)
        alembic.upgrade()
        alembic.downgrade()
        alembic.stamp()
        alembic.merge  # noqa: B018 - attribute access only
    assert buffer.getvalue() == ""


def test_upgrade_downgrade_result(make_app: MakeApp, database_url: str) -> None:
    """upgrade() and downgrade() return the steps applied per bind."""
    app, alembic = make_app(database_url)
    with app.app_context():
        first = alembic.revision("first")[0]
        second = alembic.revision("second", empty=True)[0]
        result = alembic.upgrade()
        assert result.ok
        assert [s.revision for s in result.applied] == [first.revision, second.revision]
        assert result["default"].before == ()
        assert result["default"].after == (second.revision,)
        assert "user" in table_names(database_url)

        again = alembic.upgrade()
        assert again.applied == ()
        assert not again.plan

        down = alembic.downgrade()
        assert [s.revision for s in down.applied] == [second.revision]
        assert version_rows(database_url) == {first.revision}

        alembic.downgrade("base")
        assert version_rows(database_url) == set()
        assert "user" not in table_names(database_url)


def test_revision_without_changes_writes_nothing(make_app: MakeApp, database_url: str) -> None:
    """Autogenerate with no model changes writes no file."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("first")
        alembic.upgrade()
        assert alembic.revision("nothing") == []
        assert not alembic.needs_revision()
        assert len(alembic.log()) == 1


def test_revision_needs_up_to_date(make_app: MakeApp, database_url: str) -> None:
    """Autogenerate against a database behind its heads is refused, nothing written."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("first")
        with pytest.raises(NotUpToDateError, match=r"'default'.*flask db upgrade --bind default"):
            alembic.revision("second")
        assert len(alembic.log()) == 1


def test_state_queries(make_app: MakeApp, database_url: str) -> None:
    """current/heads/log/needs_upgrade/needs_revision/branches describe the state."""
    app, alembic = make_app(database_url)
    with app.app_context():
        assert alembic.current() == ()
        assert alembic.heads() == ()
        assert alembic.needs_revision()
        first = alembic.revision("first")[0]
        assert alembic.needs_upgrade()
        alembic.upgrade()
        assert not alembic.needs_upgrade()
        assert [s.revision for s in alembic.current()] == [first.revision]
        assert [s.revision for s in alembic.heads()] == [first.revision]
        assert alembic.branches() == ()
        assert not alembic.needs_revision()
        second = alembic.revision("second", empty=True)[0]
        assert [s.revision for s in alembic.log()] == [second.revision, first.revision]
        assert [s.revision for s in alembic.log(end=first.revision)] == [first.revision]
        assert [s.revision for s in alembic.log(start=second.revision)] == [second.revision]


def test_accessors(make_app: MakeApp, database_url: str) -> None:
    """Both the documented and the 3.x accessor names return Alembic's objects."""
    app, alembic = make_app(database_url)
    with app.app_context():
        assert isinstance(alembic.script, ScriptDirectory)
        assert alembic.script is alembic.script_directory
        assert isinstance(alembic.env, EnvironmentContext)
        assert alembic.env is alembic.environment_context
        assert isinstance(alembic.context, MigrationContext)
        assert alembic.context is alembic.migration_context
        assert isinstance(alembic.op, Operations)
        assert isinstance(alembic.ops["default"], Operations)
        assert alembic.migration_contexts["default"] is alembic.context
        assert list(alembic.migration_contexts) == ["default"]
        assert len(alembic.rev_id()) == 12
        produced = alembic.produce_migrations()
        assert produced.upgrade_ops is not None
        assert not produced.upgrade_ops.is_empty()


def test_accessor_needs_app_context(make_app: MakeApp, database_url: str) -> None:
    """Outside an app context the usual Flask error is raised."""
    _app, alembic = make_app(database_url)
    with pytest.raises(RuntimeError, match="application context"):
        alembic.heads()


def test_relative_and_numeric_targets(make_app: MakeApp, database_url: str) -> None:
    """+N/-N, integers and numeric revision ids all resolve as documented."""
    app, alembic = make_app(database_url)
    with app.app_context():
        a = alembic.revision("a")[0]
        b = alembic.revision("b", empty=True, rev_id="1795310866")[0]
        c = alembic.revision("c", empty=True)[0]
        alembic.upgrade("+1")
        assert version_rows(database_url) == {a.revision}
        alembic.upgrade("1795310866")  # a revision id, not "+1795310866"
        assert version_rows(database_url) == {b.revision}
        alembic.upgrade(1)
        assert version_rows(database_url) == {c.revision}
        alembic.downgrade(-2)
        assert version_rows(database_url) == {a.revision}
        alembic.upgrade("heads")
        alembic.downgrade(b.revision)
        assert version_rows(database_url) == {b.revision}
        alembic.downgrade("base")
        alembic.upgrade("head")
        assert version_rows(database_url) == {c.revision}


def test_stamp(make_app: MakeApp, database_url: str) -> None:
    """stamp() records a revision without running it; purge empties the table first."""
    app, alembic = make_app(database_url)
    with app.app_context():
        a = alembic.revision("a")[0]
        b = alembic.revision("b", empty=True)[0]
        result = alembic.stamp()
        assert result["default"].after == (b.revision,)
        assert version_rows(database_url) == {b.revision}
        assert "user" not in table_names(database_url)
        alembic.stamp(a.revision)
        assert version_rows(database_url) == {a.revision}
        alembic.stamp("base")
        assert version_rows(database_url) == set()
        alembic.stamp(b.revision, purge=True)
        assert version_rows(database_url) == {b.revision}


def test_merge(make_app: MakeApp, database_url: str) -> None:
    """merge() joins a bind's heads into one revision."""
    app, alembic = make_app(database_url)
    with app.app_context():
        a = alembic.revision("a")[0]
        alembic.revision("b1", empty=True)
        alembic.revision("b2", empty=True, parent=a.revision, splice=True)
        assert len(alembic.heads()) == 2
        with pytest.raises(MultipleHeadsError, match="flask db merge --bind default"):
            alembic.revision("c", empty=True)
        with pytest.raises(MultipleHeadsError, match="several heads"):
            alembic.upgrade("head")
        merged = alembic.merge(message="join")
        assert merged.doc == "join"
        assert [s.revision for s in alembic.heads()] == [merged.revision]
        alembic.upgrade()
        assert version_rows(database_url) == {merged.revision}


def test_unknown_target(make_app: MakeApp, database_url: str) -> None:
    """An unknown revision is a RevisionError naming it, and changes nothing."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a")
        with pytest.raises(RevisionError, match="Unknown revision 'nope'"):
            alembic.upgrade("nope")
    assert table_names(database_url) == set()


def test_offline_sql(make_app: MakeApp, database_url: str) -> None:
    """upgrade(sql=True) returns the SQL in the bind's dialect and changes nothing."""
    app, alembic = make_app(database_url)
    with app.app_context():
        a = alembic.revision("a")[0]
        sql = alembic.upgrade(sql=True)
        assert set(sql) == {"default"}
        assert "CREATE TABLE" in sql["default"]
        assert a.revision in sql["default"]
        down = alembic.downgrade(f"{a.revision}:base", sql=True)
        assert "DROP TABLE" in down["default"]
        with pytest.raises(RevisionError, match="range"):
            alembic.downgrade(sql=True)
        stamp = alembic.stamp(sql=True)
        assert a.revision in stamp["default"]
    assert table_names(database_url) == set()


def test_mkdir_switches(tmp_path: Path) -> None:
    """run_mkdir=False skips the directory; command_name='' skips the CLI group."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    app = Flask("x", root_path=str(tmp_path))
    alembic = Alembic(run_mkdir=False, command_name="", engines=engine, metadatas=models())
    alembic.init_app(app)
    assert not (tmp_path / "migrations").exists()
    assert "db" not in app.cli.commands
    with app.app_context():
        with pytest.raises(ScriptDirectoryError, match="flask db mkdir"):
            alembic.heads()
        alembic.mkdir()
        assert (tmp_path / "migrations" / "script.py.mako").is_file()
        assert (tmp_path / "migrations" / "README").is_file()
        assert not (tmp_path / "migrations" / "env.py").exists()

    other = Flask("y", root_path=str(tmp_path / "y"))
    Alembic(other, command_name="migrations", engines=engine, metadatas=models())
    assert "migrations" in other.cli.commands
    engine.dispose()


def test_existing_directory_left_alone(tmp_path: Path) -> None:
    """init_app does not touch an existing script directory."""
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "script.py.mako").write_text("custom")
    engine = sa.create_engine("sqlite://")
    app = Flask("x", root_path=str(tmp_path))
    Alembic(app, engines=engine, metadatas=models())
    assert (tmp_path / "migrations" / "script.py.mako").read_text() == "custom"
    assert not (tmp_path / "migrations" / "README").exists()


def test_init_app_twice(tmp_path: Path) -> None:
    """Registering twice on one app is a clear error."""
    engine = sa.create_engine("sqlite://")
    app = Flask("x", root_path=str(tmp_path))
    alembic = Alembic(app, engines=engine, metadatas=models())
    with pytest.raises(RuntimeError, match="already registered"):
        alembic.init_app(app)
    with pytest.raises(RuntimeError, match="already registered"):
        Alembic(app, engines=engine, metadatas=models())


def test_one_extension_many_apps(tmp_path: Path) -> None:
    """One extension serves several apps, each with its own engines and directory."""
    from flask_sqlalchemy_lite import SQLAlchemy

    db = SQLAlchemy()
    alembic = Alembic(metadatas=models())
    apps = []
    for name in ("one", "two"):
        app = Flask(name, root_path=str(tmp_path / name))
        app.config["SQLALCHEMY_ENGINES"] = {"default": f"sqlite:///{tmp_path / name}.db"}
        db.init_app(app)
        alembic.init_app(app)
        apps.append(app)
    for app in apps:
        with app.app_context():
            alembic.revision("first")
            alembic.upgrade()
            assert alembic.registry.default.engine.url.database == str(tmp_path / app.name) + ".db"
            engines = list(db.engines.values())
        for engine in engines:
            engine.dispose()
    assert len(list((tmp_path / "one" / "migrations").glob("*.py"))) == 1
    assert len(list((tmp_path / "two" / "migrations").glob("*.py"))) == 1
    assert "user" in table_names(f"sqlite:///{tmp_path / 'two'}.db")


def test_config_values(make_app: MakeApp, database_url: str, project: Path) -> None:
    """Non-string ALEMBIC values and sections are accepted; '%' survives."""
    app, alembic = make_app(
        database_url,
        ALEMBIC={
            "script_location": "migrations",
            "truncate_slug_length": 10,
            "sourceless": False,
            "file_template": "%(rev)s_%(slug)s",
            "post_write_hooks": {"hooks": ""},
            "custom_percent": "50%",
        },
    )
    with app.app_context():
        config = alembic.config
        assert config.get_main_option("truncate_slug_length") == "10"
        assert config.get_main_option("custom_percent") == "50%"
        script = alembic.revision("a very long message indeed")[0]
    assert Path(script.path).name == f"{script.revision}_a_very_.py"
