"""Flask-Migrate habits: init, migrate -m, revision -m, history -r/-i, edit, -x, and
Flask-Migrate options answered with this package's spelling."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask

#: A revision whose upgrade records its -x arguments, as Alembic's docs show them read.
X_REVISION = '''"""x arguments"""
from alembic import context
from alembic import op
import sqlalchemy as sa

revision = "aaaa0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    x = context.get_x_argument(as_dictionary=True)
    op.create_table("seen", sa.Column("name", sa.String(50)))
    op.execute("INSERT INTO seen (name) VALUES ('%s')" % x.get("name", "none"))


def downgrade():
    x = context.get_x_argument(as_dictionary=True)
    op.execute("DELETE FROM seen WHERE name = '%s'" % x.get("name", "none"))
    op.drop_table("seen")
'''


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def usage_error(result: Result) -> str:
    """The ``Error:`` line of a usage error (exit code 2)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def seen(url: str) -> set[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.text("SELECT name FROM seen"))}
    finally:
        engine.dispose()


def test_init(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """init creates the migrations folder, or says it exists; nothing else changes."""
    app, _ = make_app(make_url(), ALEMBIC={"script_location": "db_migrations"})
    folder = project / "db_migrations"
    assert folder.is_dir()  # init_app made it
    result = run(app, "init")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"The migrations folder already exists: {folder}\n"

    app, _ = make_app(make_url(), ALEMBIC={"script_location": "other"})
    app.extensions["alembic"].run_mkdir = False
    (project / "other" / "script.py.mako").unlink()
    (project / "other" / "README").unlink()
    (project / "other").rmdir()
    result = run(app, "init")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Created the migrations folder: {project / 'other'}\n"
    assert sorted(p.name for p in (project / "other").iterdir()) == ["README", "script.py.mako"]


@pytest.mark.parametrize("flag", ["-m", "--message"])
@pytest.mark.parametrize("command", ["migrate", "revision"])
def test_migrate_and_message_option(
    make_app: MakeApp, database_url: str, command: str, flag: str
) -> None:
    """migrate is revision; the message comes from -m/--message or from the argument."""
    app, _ = make_app(database_url)
    result = run(app, command, flag, "add users")
    assert result.exit_code == 0, result.output
    first = Path(result.stdout.strip())
    assert first.name.endswith("_add_users.py")
    assert "op.create_table('user'" in first.read_text()
    assert run(app, "upgrade").exit_code == 0
    assert "user" in table_names(database_url)
    result = run(app, command, "--empty", "plain argument")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("_plain_argument.py")


@pytest.mark.parametrize("command", ["migrate", "revision"])
def test_message_given_twice(make_app: MakeApp, make_url: MakeURL, command: str) -> None:
    """Two messages: a usage error, and no file written."""
    app, _ = make_app(make_url())
    folder = Path(app.root_path) / "migrations"
    line = usage_error(run(app, command, "--empty", "-m", "one", "two"))
    assert line == "Error: Give the message once: as MESSAGE or with -m, not both."
    assert list(folder.glob("*.py")) == []


def test_message_left_out(make_app: MakeApp, make_url: MakeURL) -> None:
    """revision needs a message; migrate, as in Flask-Migrate, writes one without."""
    app, _ = make_app(make_url())
    folder = Path(app.root_path) / "migrations"
    line = usage_error(run(app, "revision", "--empty"))
    assert line == "Error: Missing the revision's message: give it as MESSAGE or -m."
    assert list(folder.glob("*.py")) == []
    result = run(app, "migrate", "--rev-id", "aaaa0001")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{folder / 'aaaa0001_.py'}\n"
    assert "op.create_table('user'" in (folder / "aaaa0001_.py").read_text()


def test_history_range_and_current(make_app: MakeApp, database_url: str) -> None:
    """history -r START:END limits the range; -i marks the revision the database is at."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("one", rev_id="aaaa0001", empty=True)
        alembic.revision("two", rev_id="bbbb0002", empty=True)
        alembic.revision("three", rev_id="cccc0003", empty=True)
    assert run(app, "upgrade", "bbbb0002").exit_code == 0

    result = run(app, "history", "-r", "bbbb0002:")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "default: bbbb0002 -> cccc0003 (head), three\n"
        "default: aaaa0001 -> bbbb0002 (applied), two\n"
    )
    result = run(app, "history", "--rev-range", ":aaaa0001", "-i")
    assert result.exit_code == 0, result.output
    assert result.stdout == "default: <base> -> aaaa0001 (applied), one\n"
    result = run(app, "history", "-i")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "default: bbbb0002 -> cccc0003 (head), three\n"
        "default: aaaa0001 -> bbbb0002 (applied, current), two\n"
        "default: <base> -> aaaa0001 (applied), one\n"
    )


def test_history_range_errors(make_app: MakeApp, make_url: MakeURL) -> None:
    """A range without a colon, or with --start/--end: usage errors."""
    app, _ = make_app(make_url())
    line = usage_error(run(app, "history", "-r", "aaaa0001"))
    assert line == (
        "Error: --rev-range 'aaaa0001' is not a range: write START:END, e.g. base:heads or ab12:."
    )
    line = usage_error(run(app, "log", "-r", "base:heads", "--end", "heads"))
    assert line == "Error: --rev-range replaces --start and --end: drop --end."


def test_edit(
    make_app: MakeApp, make_url: MakeURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """edit opens the head's file (or the one named) in $EDITOR."""
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "# edited\\n" >> "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app, alembic = make_app(make_url())
    with app.app_context():
        (first,) = alembic.revision("one", rev_id="aaaa0001", empty=True)
        (second,) = alembic.revision("two", rev_id="bbbb0002", empty=True)
    result = run(app, "edit")
    assert result.exit_code == 0, result.output
    assert Path(second.path).read_text().endswith("# edited\n")
    assert not Path(first.path).read_text().endswith("# edited\n")
    assert run(app, "edit", "aaaa").exit_code == 0
    assert Path(first.path).read_text().endswith("# edited\n")


def test_edit_several_heads(make_app: MakeApp, make_url: MakeURL) -> None:
    """edit without a revision, with two binds: a usage error naming the heads."""
    app, alembic = make_app({"default": make_url(), "stats": make_url()})
    with app.app_context():
        alembic.revision("one", rev_id="aaaa0001", empty=True, bind="default")
        alembic.revision("two", rev_id="bbbb0002", empty=True, bind="stats")
    line = usage_error(run(app, "edit"))
    assert line == (
        "Error: There are 2 heads (default: aaaa0001, stats: bbbb0002): name the revision, "
        "or one bind with --bind."
    )


def test_x_arguments_reach_autogenerate(make_app: MakeApp, database_url: str) -> None:
    """-x on revision and migrate (and before the command, and from Python) reaches
    autogenerate's hooks: an include_object that reads context.get_x_argument() decides
    which tables the new revision creates. Without -x reaching it, every table is written."""
    from alembic import context

    def include_object(obj: object, name: str, kind: str, reflected: bool, other: object) -> bool:
        skip = context.get_x_argument(as_dictionary=True).get("skip")
        return not (kind == "table" and name == skip)

    metadata = sa.MetaData()
    sa.Table("keep", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("audit", metadata, sa.Column("id", sa.Integer, primary_key=True))
    app, alembic = make_app(
        database_url, metadata, ALEMBIC_CONTEXT={"include_object": include_object}
    )

    def tables_written(*args: str) -> set[str]:
        result = run(app, *args)
        assert result.exit_code == 0, result.output
        (path,) = (Path(app.root_path) / "migrations").glob("*.py")
        text = path.read_text()
        path.unlink()
        return {name for name in ("keep", "audit") if f"op.create_table({name!r}" in text}

    assert tables_written("revision", "all") == {"keep", "audit"}
    assert tables_written("revision", "-x", "skip=audit", "some") == {"keep"}
    assert tables_written("migrate", "--x-arg", "skip=keep", "-m", "other") == {"audit"}
    assert tables_written("-x", "skip=audit", "migrate") == {"keep"}
    with app.app_context():
        (script,) = alembic.revision("api", x_arguments=["skip=keep"])
        assert script.path is not None
        text = Path(script.path).read_text()
    assert "op.create_table('audit'" in text
    assert "'keep'" not in text
    assert version_rows(database_url) == set()


def test_x_arguments(make_app: MakeApp, database_url: str) -> None:
    """-x reaches context.get_x_argument(): on upgrade and downgrade, before the command
    (as Flask-Migrate allows), with --sql, and from the Python API."""
    app, alembic = make_app(database_url)
    (Path(app.root_path) / "migrations" / "aaaa0001_x.py").write_text(X_REVISION)

    result = run(app, "upgrade", "--sql", "-x", "name=offline")
    assert result.exit_code == 0, result.output
    assert "INSERT INTO seen (name) VALUES ('offline')" in result.stdout
    assert version_rows(database_url) == set()

    result = run(app, "upgrade", "-x", "name=cli")
    assert result.exit_code == 0, result.output
    assert seen(database_url) == {"cli"}
    result = run(app, "-x", "name=cli", "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert "seen" not in table_names(database_url)

    result = run(app, "--x-arg", "name=group", "upgrade")
    assert result.exit_code == 0, result.output
    assert seen(database_url) == {"group"}
    assert run(app, "downgrade", "--x-arg", "name=group", "base").exit_code == 0

    with app.app_context():
        alembic.upgrade(x_arguments=["name=api"])
        assert seen(database_url) == {"api"}
        sql = alembic.downgrade("aaaa0001:base", sql=True, x_arguments=["name=api"])
        assert "DELETE FROM seen WHERE name = 'api'" in sql["default"]
        alembic.downgrade("base", x_arguments=["name=api"])
    assert version_rows(database_url) == set()

    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert seen(database_url) == {"none"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("-d", "migrations", "upgrade"),
            "--directory does not exist here: set the migrations folder in the app's config, "
            'ALEMBIC = {"script_location": "migrations"}, a path relative to the app\'s root path '
            "(not to the current directory), or run 'flask db adopt' to find it.",
        ),
        (
            ("upgrade", "--directory", "migrations"),
            "--directory does not exist here: set the migrations folder in the app's config, "
            'ALEMBIC = {"script_location": "migrations"}, a path relative to the app\'s root path '
            "(not to the current directory), or run 'flask db adopt' to find it.",
        ),
        (
            ("init", "-d", "migrations"),
            "--directory does not exist here: set the migrations folder in the app's config, "
            'ALEMBIC = {"script_location": "migrations"}, a path relative to the app\'s root path '
            "(not to the current directory), or run 'flask db adopt' to find it.",
        ),
        (
            ("revision", "--autogenerate", "-m", "x"),
            "--autogenerate is the default here: revision compares the models with the "
            "databases; --empty writes an empty revision.",
        ),
        (("migrate", "--head", "abc", "-m", "x"), "--head is --parent here."),
        (("revision", "--head=abc", "x"), "--head is --parent here."),
        (("migrate", "--branch-label", "b", "-m", "x"), "--branch-label is --label here."),
        (("merge", "--branch-label", "b"), "--branch-label is --label here."),
        (("revision", "--version-path", "v", "x"), "--version-path is --path here."),
        (
            ("migrate", "--sql", "-m", "x"),
            "revision has no --sql here: it writes a file; 'flask db upgrade --sql' prints "
            "the SQL of the migrations.",
        ),
        (
            ("init", "--multidb"),
            "--multidb does not exist here: every bind gets a history of its own in the one "
            "migrations folder.",
        ),
        (
            ("init", "-t", "flask"),
            "--template does not exist here: init writes Flask-Alembic's template; edit its "
            "script.py.mako afterwards.",
        ),
        (
            ("init", "--package"),
            "--package does not exist here: add the __init__.py files yourself; they are "
            "never read as revisions.",
        ),
        (
            # On revision, -d is Flask-Alembic 3's --depend; on migrate, Flask-Migrate's -d.
            ("migrate", "-d", "migrations", "-m", "x"),
            "--directory does not exist here: set the migrations folder in the app's config, "
            'ALEMBIC = {"script_location": "migrations"}, a path relative to the app\'s root path '
            "(not to the current directory), or run 'flask db adopt' to find it.",
        ),
        (
            ("list-templates",),
            "list-templates does not exist here: there is one template, which 'flask db init' "
            "writes.",
        ),
    ],
)
def test_flask_migrate_options(
    make_app: MakeApp, make_url: MakeURL, args: tuple[str, ...], message: str
) -> None:
    """A Flask-Migrate option or command this package spells otherwise, or lacks: a usage
    error with this package's spelling, and nothing written."""
    app, _ = make_app(make_url())
    folder = Path(app.root_path) / "migrations"
    before = sorted(p.name for p in folder.iterdir())
    assert usage_error(run(app, *args)) == f"Error: {message}"
    assert sorted(p.name for p in folder.iterdir()) == before


def test_unknown_option_still_unknown(make_app: MakeApp, make_url: MakeURL) -> None:
    """An option no tool has keeps click's own message."""
    app, _ = make_app(make_url())
    line = usage_error(run(app, "upgrade", "--no-such"))
    assert line == "Error: No such option '--no-such'. Did you mean '--no-lock'?"


def test_show_defaults_to_the_heads(make_app: MakeApp, make_url: MakeURL) -> None:
    """show without a revision shows the heads, as Flask-Migrate's show does."""
    app, alembic = make_app(make_url())
    with app.app_context():
        alembic.revision("one", rev_id="aaaa0001", empty=True)
        alembic.revision("two", rev_id="bbbb0002", empty=True)
    result = run(app, "show")
    assert result.exit_code == 0, result.output
    assert result.stdout == run(app, "show", "heads").stdout
    assert result.stdout.startswith("Bind: default\nRev: bbbb0002 (head)\n")
