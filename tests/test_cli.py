"""The ``flask db`` commands, through Flask's CLI runner and the real ``flask`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import Result
from conftest import MakeApp
from conftest import table_names
from conftest import version_rows
from flask import Flask


def run(app: Flask, *args: str) -> Result:
    """Invoke ``flask db ARGS`` with stdout not a terminal."""
    return app.test_cli_runner().invoke(args=["db", *args])


def assert_plain(result: Result) -> None:
    """No ANSI escape codes anywhere in the output."""
    assert "\x1b[" not in result.output
    assert "\x1b[" not in result.stderr


def test_cli_flow(make_app: MakeApp, database_url: str) -> None:
    """revision, upgrade, current, heads, log, show, check, downgrade, stamp succeed."""
    app, _ = make_app(database_url)
    result = run(app, "revision", "made changes")
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert path.endswith("_made_changes.py")
    rev = Path(path).name.split("_")[0]
    assert f"Generated default: {rev}" in result.stderr

    for flag in ("--plan", "--dry-run"):
        result = run(app, "upgrade", flag)
        assert result.exit_code == 0
        assert result.stdout == f"1. default: upgrade base -> {rev} made changes\n"
        assert table_names(database_url) == set()

    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert f"default: upgraded base -> {rev} (1 step" in result.stderr
    assert version_rows(database_url) == {rev}

    result = run(app, "upgrade")
    assert result.exit_code == 0
    assert "Nothing to do" in result.stderr

    result = run(app, "current")
    assert result.stdout == f"default: {rev} (head)\n"
    assert run(app, "current", "--check-heads").exit_code == 0

    result = run(app, "heads")
    assert result.stdout == f"default: <base> -> {rev} (head), made changes\n"
    for command in ("log", "history"):
        result = run(app, command)
        assert result.exit_code == 0
        line = f"default: <base> -> {rev} (head, applied), made changes\n"
        assert result.stdout == line

    result = run(app, "show", rev[:6])
    assert result.exit_code == 0
    assert f"Rev: {rev} (head)" in result.stdout

    result = run(app, "check")
    assert result.exit_code == 0
    assert "default: no changes detected" in result.stderr

    result = run(app, "downgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(database_url) == set()
    result = run(app, "current", "--check-heads")
    assert result.exit_code == 1
    assert "Not up to date: default is behind: run 'flask db upgrade'." in result.stderr

    result = run(app, "stamp", "heads")
    assert result.exit_code == 0
    assert version_rows(database_url) == {rev}
    assert_plain(result)


def test_cli_check_detects_changes(make_app: MakeApp, database_url: str) -> None:
    """check exits 1 and lists the differences when models changed."""
    app, _ = make_app(database_url)
    result = run(app, "check")
    assert result.exit_code == 1
    assert "default: add table user" in result.stdout
    assert_plain(result)


def test_cli_revision_options(make_app: MakeApp, database_url: str) -> None:
    """--empty, --rev-id, --label, --depend, --parent/--splice are honoured."""
    app, alembic = make_app(database_url)
    assert run(app, "revision", "first", "--rev-id", "aaaa0001").exit_code == 0
    result = run(app, "revision", "second", "--empty", "--rev-id", "bbbb0002", "--label", "extra")
    assert result.exit_code == 0, result.output
    result = run(
        app,
        "revision",
        "side",
        "--empty",
        "--rev-id",
        "cccc0003",
        "--parent",
        "aaaa0001",
        "--splice",
        "--depend",
        "bbbb0002",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        side = alembic.script.get_revision("cccc0003")
        assert side.down_revision == "aaaa0001"
        assert side.dependencies == "bbbb0002"
        assert "extra" in alembic.script.get_revision("bbbb0002").branch_labels
    result = run(app, "revision", "nothing")
    assert result.exit_code == 1
    assert "has several heads (bbbb0002, cccc0003)" in result.stderr


def test_cli_merge(make_app: MakeApp, database_url: str) -> None:
    """merge joins two heads; with one head it explains there is nothing to merge."""
    app, alembic = make_app(database_url)
    run(app, "revision", "a", "--rev-id", "aaaa0001")
    result = run(app, "merge")
    assert result.exit_code == 1
    assert "Nothing to merge" in result.stderr
    result = run(app, "merge", "--bind", "default")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: Nothing to merge in bind 'default': it has a single head (aaaa0001). A merge "
        "joins two or more heads of one bind; 'flask db heads' lists them."
    ]
    run(app, "revision", "b", "--empty", "--rev-id", "bbbb0002")
    run(app, "revision", "c", "--empty", "--rev-id", "cccc0003", "--parent", "aaaa0001", "--splice")
    result = run(app, "merge", "-m", "join them")
    assert result.exit_code == 0, result.output
    assert run(app, "upgrade").exit_code == 0
    result = run(app, "heads")
    assert "merge point" in result.stdout
    with app.app_context():
        assert len(alembic.heads()) == 1


def test_cli_branches(make_app: MakeApp, database_url: str) -> None:
    """branches lists branch points."""
    app, _ = make_app(database_url)
    run(app, "revision", "a", "--rev-id", "aaaa0001")
    result = run(app, "branches")
    assert result.exit_code == 0
    assert "No branch points." in result.stderr
    run(app, "revision", "b", "--empty", "--rev-id", "bbbb0002")
    run(app, "revision", "c", "--empty", "--rev-id", "cccc0003", "--parent", "aaaa0001", "--splice")
    result = run(app, "branches")
    assert "aaaa0001" in result.stdout
    assert "branch point" in result.stdout


def test_cli_offline_sql(make_app: MakeApp, database_url: str) -> None:
    """--sql prints SQL for the bind's dialect on stdout and changes nothing."""
    app, _ = make_app(database_url)
    run(app, "revision", "a", "--rev-id", "aaaa0001")
    result = run(app, "upgrade", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE" in result.stdout
    assert "aaaa0001" in result.stdout
    result = run(app, "downgrade", "--sql", "aaaa0001:base")
    assert result.exit_code == 0
    assert "DROP TABLE" in result.stdout
    result = run(app, "downgrade", "--sql")
    assert result.exit_code == 1
    assert "needs a range 'FROM:TO'" in result.stderr
    result = run(app, "stamp", "--sql")
    assert result.exit_code == 0
    assert "aaaa0001" in result.stdout
    assert table_names(database_url) == set()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("upgrade", "nope"), 1, "Unknown revision 'nope'"),
        (("downgrade", "nope"), 1, "Unknown revision 'nope'"),
        (("stamp", "nope"), 1, "Unknown revision 'nope'"),
        (("show", "nope"), 1, "Unknown revision 'nope'"),
        (("log", "--start", "nope"), 1, "Unknown revision 'nope'"),
        (("current", "--bind", "nope"), 2, "Unknown bind 'nope'. Known binds: 'default'."),
        (("heads", "--bind", "nope"), 2, "Unknown bind 'nope'"),
        (("branches", "--bind", "nope"), 2, "Unknown bind 'nope'"),
        (("check", "--bind", "nope"), 2, "Unknown bind 'nope'"),
        (("upgrade", "--bind", "nope"), 2, "Unknown bind 'nope'"),
        (("revision", "x", "--bind", "nope"), 2, "Unknown bind 'nope'"),
        (("merge", "--bind", "nope"), 2, "Unknown bind 'nope'"),
        (("revision", "x", "--parent", "nope"), 1, "Unknown revision 'nope'"),
        (("revision", "x", "--depend", "nope"), 1, "Unknown revision 'nope'"),
        (("revision", "x", "--rev-id", "a-b", "--empty"), 1, "'a-b' is not a valid revision id"),
        (("merge", "aaaa0001", "nope"), 1, "Unknown revision 'nope'"),
        (("stamp", "+1"), 1, "relative target"),
        (("upgrade", "--bogus"), 2, "No such option"),
    ],
)
def test_cli_bad_input(
    make_app: MakeApp, database_url: str, args: tuple[str, ...], code: int, message: str
) -> None:
    """Bad input: one clear line, the right exit code, no traceback, nothing changed."""
    app, _ = make_app(database_url)
    assert run(app, "revision", "a", "--rev-id", "aaaa0001").exit_code == 0
    before = sorted(p.name for p in (Path(app.root_path) / "migrations").iterdir())
    result = run(app, *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1
    assert table_names(database_url) == set()
    after = sorted(p.name for p in (Path(app.root_path) / "migrations").iterdir())
    assert after == before


def test_real_flask_command(tmp_path: Path, make_url: object) -> None:
    """The whole flow through the real `flask` executable, in a subprocess."""
    (tmp_path / "myapp.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from flask import Flask
            from flask_sqlalchemy import SQLAlchemy
            from flask_alembic import Alembic

            db = SQLAlchemy()
            alembic = Alembic()

            class User(db.Model):
                id = sa.Column(sa.Integer, primary_key=True)
                name = sa.Column(sa.String(50))

            def create_app():
                app = Flask(__name__)
                app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///app.db"
                db.init_app(app)
                alembic.init_app(app)
                return app
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env["FLASK_APP"] = "myapp:create_app"

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "db", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    result = flask("revision", "made changes")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "migrations" / "script.py.mako").is_file()
    result = flask("upgrade")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout + result.stderr
    db_file = tmp_path / "instance" / "app.db"
    assert "user" in table_names(f"sqlite:///{db_file}")
    result = flask("current")
    assert "(head)" in result.stdout
    result = flask("upgrade", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Unknown revision 'nope'")
    assert "Traceback" not in result.stderr
    result = flask("--traceback", "upgrade", "nope")
    assert result.returncode == 1
    result = flask("check")
    assert result.returncode == 0


def test_force_color_uses_rich(make_app: MakeApp, database_url: str) -> None:
    """FORCE_COLOR switches to Rich tables; NO_COLOR keeps plain text."""
    app, _ = make_app(database_url)
    run(app, "revision", "add [red] column", "--rev-id", "aaaa0001")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "log"], env={"FORCE_COLOR": "1"})
    assert "\x1b[" in result.stdout
    assert "add [red] column" in result.stdout  # markup is never applied to user data
    result = runner.invoke(args=["db", "log"], env={"NO_COLOR": "1", "FORCE_COLOR": ""})
    assert "\x1b[" not in result.stdout
    assert "add [red] column" in result.stdout
