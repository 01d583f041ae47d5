"""Bad input and broken environments: clear one-line errors, nothing changed, no secrets."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask

PASSWORD = "s3cr%t-P@ss:w/rd"


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def write_revision(app: Flask, name: str, body: str) -> Path:
    path = Path(app.root_path) / "migrations" / name
    path.write_text(body)
    return path


def test_syntax_error_in_revision(make_app: MakeApp, database_url: str) -> None:
    """A revision file that does not parse is named with its line."""
    app, _ = make_app(database_url)
    path = write_revision(app, "broken.py", "revision = 'x'\ndown_revision = None\ndef (:\n")
    result = run(app, "upgrade")
    assert_one_line_error(result, str(path), "line 3")
    assert table_names(database_url) == set()


def test_import_error_in_revision(make_app: MakeApp, database_url: str) -> None:
    """A revision file that fails to import is named, with the missing module."""
    app, _ = make_app(database_url)
    path = write_revision(
        app,
        "broken.py",
        "import not_a_module_anywhere\nrevision = 'x1234'\ndown_revision = None\n",
    )
    result = run(app, "upgrade")
    assert_one_line_error(result, f"{path} (line 1)", "not_a_module_anywhere")
    assert table_names(database_url) == set()


def test_missing_down_revision(make_app: MakeApp, database_url: str) -> None:
    """A down_revision that does not exist is reported, naming the revision."""
    app, _ = make_app(database_url)
    write_revision(
        app,
        "orphan.py",
        "revision = 'orphan01'\ndown_revision = 'ghost01'\n"
        "def upgrade():\n    pass\ndef downgrade():\n    pass\n",
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "ghost01" in result.stderr
    assert "Traceback" not in result.output
    assert table_names(database_url) == set()


def test_unknown_revision_in_database(make_app: MakeApp, database_url: str) -> None:
    """A version table naming an unknown revision suggests stamp, and nothing runs."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a")
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('feedbeef0000')"))
    engine.dispose()
    for command in ("upgrade", "current"):
        result = run(app, command)
        assert_one_line_error(result, "'default'", "feedbeef0000", "flask db stamp --bind default")
    assert table_names(database_url) == {"alembic_version"}
    assert version_rows(database_url) == {"feedbeef0000"}


def test_missing_script_directory(tmp_path: Path) -> None:
    """A missing migrations directory names the path and the fix."""
    app = Flask("x", root_path=str(tmp_path))
    from conftest import models

    from flask_alembic import Alembic

    Alembic(app, run_mkdir=False, engines=sa.create_engine("sqlite://"), metadatas=models())
    result = run(app, "upgrade")
    assert_one_line_error(result, str(tmp_path / "migrations"), "flask db mkdir")


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_unreachable_database(make_app: MakeApp, dialect_name: str) -> None:
    """An unreachable server: the bind and its URL, password hidden."""
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}[dialect_name]
    quoted = urllib.parse.quote(PASSWORD, safe="")
    app, alembic = make_app(f"{driver}://someone:{quoted}@127.0.0.1:9/nowhere")
    with app.app_context():
        alembic.revision("a", empty=True)
    for command in (("upgrade",), ("current",), ("check",), ("revision", "x")):
        result = run(app, *command)
        assert_one_line_error(result, "Cannot connect to bind 'default'", "someone:***@127.0.0.1:9")
        assert PASSWORD not in result.output
        assert quoted not in result.output


@pytest.fixture(params=["postgresql", "mysql"])
def secret_url(request: pytest.FixtureRequest, make_url: MakeURL) -> str:
    """A fresh database owned by a user whose password holds %, @, : and /."""
    return make_url(request.param, password=PASSWORD)


@pytest.mark.parametrize("style", ["userinfo", "query"])
def test_password_never_printed(make_app: MakeApp, secret_url: str, style: str) -> None:
    """No command prints the password, on success or on error, in any mode."""
    url = sa.make_url(secret_url)
    if style == "query":
        url = url.set(password=None, query={"password": PASSWORD})
    app, _ = make_app(url.render_as_string(hide_password=False))
    spellings = {PASSWORD, urllib.parse.quote(PASSWORD, safe=""), urllib.parse.quote_plus(PASSWORD)}
    commands = [
        ("revision", "first"),
        ("upgrade", "--plan"),
        ("upgrade",),
        ("current", "-v"),
        ("heads", "-v"),
        ("log", "-v"),
        ("check",),
        ("upgrade", "--sql"),
        ("downgrade", "--plan"),
        ("downgrade",),
        ("stamp", "heads"),
        ("show", "heads"),
        ("upgrade", "nope"),
        ("current", "--bind", "nope"),
        ("status",),
        ("status", "--json"),
        ("current", "--json"),
        ("log", "--json"),
        ("heads", "--json"),
        ("check", "--json"),
        ("upgrade", "--plan", "--json"),
        ("downgrade", "--json"),
        ("upgrade", "--json"),
        ("stamp", "--json"),
        ("branches",),
        ("merge",),
        ("mkdir",),
        ("upgrade", "nope", "--json"),
    ]
    for command in commands:
        for env in ({}, {"FORCE_COLOR": "1"}):
            result = app.test_cli_runner().invoke(args=["db", *command], env=env)
            for spelling in spellings:
                assert spelling not in result.output, command
                assert spelling not in result.stderr, command
    result = run(app, "current", "-v")
    assert PASSWORD not in result.stdout
    assert "***" in result.stdout


def test_driver_error_text_is_scrubbed(tmp_path: Path) -> None:
    """A driver error that echoes a secret is scrubbed before it is shown."""
    from flask_alembic.redact import describe_exception
    from flask_alembic.redact import url_secrets

    secrets = url_secrets(sa.make_url(f"postgresql://u:{urllib.parse.quote(PASSWORD)}@h/db"))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError) as info:
        conn.execute(sa.text(f'SELECT * FROM "{PASSWORD}"'))
    engine.dispose()
    assert PASSWORD in str(info.value)
    text = describe_exception(info.value, secrets)
    assert PASSWORD not in text
    assert "***" in text


def test_wrong_password(make_app: MakeApp, secret_url: str) -> None:
    """Wrong credentials: one line naming the bind, neither password shown."""
    wrong = "wr0ng%pass@word"
    # The test servers trust local connections, so only an unknown user is refused everywhere.
    url = sa.make_url(secret_url).set(username="nobody_here", password=wrong)
    app, _ = make_app(url.render_as_string(hide_password=False))
    result = run(app, "upgrade")
    assert_one_line_error(result, "Cannot connect to bind 'default'")
    for secret in (wrong, PASSWORD, urllib.parse.quote(wrong, safe="")):
        assert secret not in result.output


def test_password_in_query_hidden() -> None:
    """password= style query parameters are hidden in URLs shown to the user."""
    from flask_alembic.redact import safe_url

    url = sa.make_url("postgresql+psycopg://u@h/db?sslpassword=topsecret&sslmode=require")
    assert safe_url(url) == "postgresql+psycopg://u@h/db?sslmode=require&sslpassword=***"


def test_query_passwords_are_scrubbed() -> None:
    """Secrets given as query values (``?sslpassword=``, ``?PWD=``) are scrubbed from error
    text, in every spelling, like the URL's own password.

    Guards the query loop of redact.url_secrets: without it, only ``pw1`` is hidden.
    """
    from flask_alembic.redact import describe_exception
    from flask_alembic.redact import url_secrets

    url = sa.make_url(
        "postgresql+psycopg://app:pw1@db/prod?sslpassword=top%2Fsecret&sslmode=require&PWD=x9"
    )
    secrets = url_secrets(url)
    assert secrets == ("top%2Fsecret", "top/secret", "pw1", "x9")
    error = RuntimeError("connect: sslpassword=top/secret PWD=x9 password=pw1 key=top%2Fsecret")
    assert describe_exception(error, secrets) == (
        "RuntimeError: connect: sslpassword=*** PWD=*** password=*** key=***"
    )


def test_hostile_revision_message(make_app: MakeApp, database_url: str) -> None:
    """Path characters, quotes, template syntax and 500 characters: a safe file, message intact."""
    app, alembic = make_app(database_url)
    messages = [
        '../../etc/passwd "quoted" \'single\' """triple""" ${config} ${1/0} % %% \\ end\\',
        "x" * 500,
        "naïve 日本語 <b>[red]</b>\ttab",
    ]
    root = Path(app.root_path) / "migrations"
    with app.app_context():
        alembic.revision("base")
        for message in messages:
            script = alembic.revision(message, empty=True)[0]
            path = Path(script.path)
            assert path.parent == root
            assert len(path.name) < 100
            # Python 3.13 cleans module docstrings when compiling: tabs become spaces.
            assert script.doc.expandtabs() == message.expandtabs()
            compile(path.read_text(), str(path), "exec")
        alembic.upgrade()
    assert len(version_rows(database_url)) == 1


def test_script_location_is_a_file(tmp_path: Path) -> None:
    """A script_location that is a file, not a folder, is a clear error."""
    from conftest import models

    from flask_alembic import Alembic

    (tmp_path / "migrations").write_text("not a folder")
    app = Flask("x", root_path=str(tmp_path))
    Alembic(app, engines=sa.create_engine("sqlite://"), metadatas=models())
    result = run(app, "upgrade")
    assert_one_line_error(result, str(tmp_path / "migrations"), "not a folder")


def test_bad_lock_timeout_config(make_app: MakeApp, database_url: str) -> None:
    """A non-numeric ALEMBIC_LOCK_TIMEOUT is a clear error; nothing runs."""
    app, alembic = make_app(database_url, ALEMBIC_LOCK_TIMEOUT="soon")
    with app.app_context():
        alembic.revision("a")
    result = run(app, "upgrade")
    assert_one_line_error(result, "'ALEMBIC_LOCK_TIMEOUT' must be a number")
    assert table_names(database_url) == set()
    result = run(app, "upgrade", "--lock-timeout", "-1")
    assert result.exit_code == 2


def test_failure_names_partial_migration(make_app: MakeApp, make_url: MakeURL) -> None:
    """On MariaDB a failed migration is reported as possibly half applied, with the statement."""
    url = make_url("mysql")
    app, alembic = make_app(url)
    with app.app_context():
        script = alembic.revision("a")[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "    # ### end Alembic commands ###\n\n\ndef downgrade",
            "    op.execute('INSERT INTO no_such_table VALUES (1)')\n"
            "    # ### end Alembic commands ###\n\n\ndef downgrade",
            1,
        )
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert (
        f"revision {script.revision} failed at statement 2 (INSERT INTO no_such_table VALUES "
        "(1)); statement 1 (CREATE TABLE"
    ) in result.stderr
    assert "was kept by MariaDB and not recorded in the version table" in result.stderr
    assert "Nothing was applied" not in result.stderr
    assert version_rows(url) == set()


def test_failure_before_any_ddl_is_not_partial(make_app: MakeApp, make_url: MakeURL) -> None:
    """On MariaDB a revision failing at its first statement kept nothing, and says so."""
    url = make_url("mysql")
    app, alembic = make_app(url)
    with app.app_context():
        script = alembic.revision("a")[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n    op.execute('INSERT INTO no_such_table VALUES (1)')\n",
            1,
        )
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "no_such_table" in result.stderr
    assert "kept by" not in result.stderr
    assert "Nothing was applied" in result.stderr
    assert "user" not in table_names(url)


def test_transactional_failure_leaves_nothing(make_app: MakeApp, make_url: MakeURL) -> None:
    """On PostgreSQL a failed migration leaves no trace: its DDL is rolled back with it."""
    url = make_url("postgresql")
    app, alembic = make_app(url)
    with app.app_context():
        script = alembic.revision("a")[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "    # ### end Alembic commands ###\n\n\ndef downgrade",
            "    op.execute('INSERT INTO no_such_table VALUES (1)')\n"
            "    # ### end Alembic commands ###\n\n\ndef downgrade",
            1,
        )
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "kept by" not in result.stderr
    assert "no_such_table" in result.stderr
    assert "user" not in table_names(url)
    assert version_rows(url) == set()


def test_stray_python_file(make_app: MakeApp, database_url: str) -> None:
    """A Python file in migrations/ that assigns ``revision`` but fails to load is named,
    with the fix. (One that assigns no ``revision`` is never loaded: test_foreign_files.)"""
    app, _ = make_app(database_url)
    body = "revision = 'abc'\nraise RuntimeError('not a revision')\n"
    path = write_revision(app, "helpers.py", body)
    result = run(app, "upgrade")
    assert_one_line_error(result, str(path), "RuntimeError: not a revision", "move files")
    assert table_names(database_url) == set()


@pytest.mark.parametrize(
    ("command", "target"),
    [("downgrade", "0"), ("downgrade", "-0"), ("downgrade", "default@-0"), ("upgrade", "+0")],
)
def test_zero_step_target(make_app: MakeApp, tmp_path: Path, command: str, target: str) -> None:
    """A count of zero steps is refused with the target as typed; nothing changes."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, alembic = make_app(url)
    with app.app_context():
        first = alembic.revision("a")[0]
        alembic.upgrade()
        alembic.revision("b", empty=True)
    result = run(app, command, "--", target)
    example = "+1" if command == "upgrade" else "-1"
    assert_one_line_error(result, f"The target {target!r} is a count of zero steps", example)
    assert version_rows(url) == {first.revision}
    from flask_alembic.errors import RevisionError

    with app.app_context(), pytest.raises(RevisionError, match="zero steps"):
        getattr(alembic, command)(target)
    assert version_rows(url) == {first.revision}


def test_failing_ddl_commits_what_ran_before(make_app: MakeApp, make_url: MakeURL) -> None:
    """On MariaDB a failing ALTER still commits the statements before it: the error says so."""
    url = make_url("mysql")
    app, alembic = make_app(url)
    with app.app_context():
        script = alembic.revision("a", empty=True)[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n"
            "    op.execute('CREATE TABLE kept (id INTEGER PRIMARY KEY)')\n"
            "    op.execute('INSERT INTO kept VALUES (1)')\n"
            "    op.execute('ALTER TABLE no_such_table ADD COLUMN x INTEGER')\n",
            1,
        )
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "statements 1-2 (CREATE TABLE kept" in result.stderr
    assert "INSERT INTO kept VALUES (1)) were kept by MariaDB" in result.stderr
    assert "Nothing was applied" not in result.stderr
    assert version_rows(url) == set()
