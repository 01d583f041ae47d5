"""No traceback, ever; output that stays readable and safe (issue 13, points 9 and 10).

Every user-facing error is one line naming the bind, revision or file and the fix, with a
non-zero exit, and changes nothing in any database or file.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import models
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import ConfigurationError
from flask_alembic.errors import FlaskAlembicError
from flask_alembic.redact import describe_exception
from flask_alembic.redact import MAX_ERROR_CHARS
from flask_alembic.redact import scrub
from flask_alembic.redact import url_secrets
from flask_alembic.report import one_line
from flask_alembic.report import printable


def run(app: Flask, *args: str, **env: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args], env=env or None)


def assert_error(result: Result, *fragments: str, code: int = 1, alone: bool = True) -> str:
    """One ``Error:`` line holding ``fragments``, exit ``code``, no traceback.

    :param alone: whether it is all of stderr (a run also shows its plan and progress).
    """
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    if code == 1 and alone:  # a usage error is click's: usage lines, then the error line
        assert result.stderr.strip().splitlines() == errors, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (Python's and the revision cache's caches aside)."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def databases(*urls: str) -> list[tuple[set[str], set[str]]]:
    return [(table_names(url), version_rows(url)) for url in urls]


def events() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table("event", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def two_binds(
    make_app: MakeApp, make_url: MakeURL, dialect: str = "sqlite", **config: object
) -> tuple[Flask, Alembic, list[str]]:
    urls = [make_url(dialect), make_url(dialect)]
    app, alembic = make_app(
        {"default": urls[0], "analytics": urls[1]},
        {"default": models(), "analytics": events()},
        **config,
    )
    return app, alembic, urls


def write_file(app: Flask, relative: str, text: str) -> Path:
    path = Path(app.root_path) / "migrations" / relative
    path.write_text(textwrap.dedent(text))
    return path


CACHE = pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])


# -- 9a: a depends_on naming a missing revision ------------------------------------------


@CACHE
@pytest.mark.parametrize("missing", ["deadbeef9999", "no_such_label"])
@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("current",),
        ("upgrade",),
        ("upgrade", "--sql"),
        ("log",),
        ("heads",),
        ("show", "c0ffee000001"),
        ("check",),
        ("revision", "x"),
        ("stamp", "heads"),
    ],
)
def test_depends_on_missing_revision(
    make_app: MakeApp, make_url: MakeURL, cache: bool, missing: str, command: tuple[str, ...]
) -> None:
    """A depends_on naming no revision: the file, the missing id and the fix, on every command."""
    app, alembic, urls = two_binds(make_app, make_url, ALEMBIC_REVISION_CACHE=cache)
    with app.app_context():
        first = alembic.revision("first")[0]
        alembic.upgrade()
    path = write_file(
        app,
        "c0ffee000001_dep.py",
        f"""\
        \"\"\"dep\"\"\"
        revision = 'c0ffee000001'
        down_revision = {first.revision!r}
        depends_on = {missing!r}
        def upgrade():
            pass
        def downgrade():
            pass
        """,
    )
    before, state = files(Path(app.root_path)), databases(*urls)
    result = run(app, *command)
    assert_error(
        result,
        "Revision c0ffee000001",
        str(path),
        f"refers to revision {missing}, which does not exist",
        "depends_on",
    )
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == state


# -- 9b: revision --label naming a label, a bind or a revision that exists ------------------


@pytest.mark.parametrize("kind", ["other bind's label", "bind name", "revision id", "own label"])
def test_label_already_taken(make_app: MakeApp, make_url: MakeURL, kind: str) -> None:
    """A label that names something already is refused before any file is written."""
    urls = [make_url(), make_url(), make_url()]
    app, alembic = make_app(
        {"default": urls[0], "analytics": urls[1], "reports": urls[2]},
        {"default": models(), "analytics": events(), "reports": models()},
    )
    with app.app_context():
        written = alembic.revision("first", bind=["default", "analytics"])
        alembic.upgrade(bind=["default", "analytics"])
    label = {
        "other bind's label": "analytics",
        "bind name": "reports",  # its first revision will carry it
        "revision id": written[1].revision,
        "own label": "default",
    }[kind]
    before, state = files(Path(app.root_path)), databases(*urls)
    result = run(app, "revision", "second", "--empty", "--bind", "default", "--label", label)
    assert_error(result, f"--label {label!r}", "Choose another label")
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == state
    assert run(app, "status").exit_code == 0
    with app.app_context(), pytest.raises(FlaskAlembicError, match="Choose another label"):
        alembic.merge(["heads"], label=label, bind="default")


def test_one_label_for_several_revisions(make_app: MakeApp, make_url: MakeURL) -> None:
    """A label given to revisions of two binds at once is refused before writing either."""
    default, analytics = models(), events()
    urls = [make_url(), make_url()]
    app, alembic = make_app(
        {"default": urls[0], "analytics": urls[1]}, {"default": default, "analytics": analytics}
    )
    with app.app_context():
        alembic.revision("first")
        alembic.upgrade()
    sa.Table("more", default, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("more", analytics, sa.Column("id", sa.Integer, primary_key=True))
    before = files(Path(app.root_path))
    result = run(app, "revision", "second", "--label", "feature")
    assert_error(result, "--label 'feature'", "default, analytics", "--bind")
    assert files(Path(app.root_path)) == before
    result = run(app, "revision", "second", "--label", "feature", "--bind", "analytics")
    assert result.exit_code == 0, result.output
    assert run(app, "status").exit_code == 0


# -- 9c: a revision module raising at import -------------------------------------------------


@CACHE
@pytest.mark.parametrize(
    ("statement", "error"),
    [('raise ValueError("boom")', "ValueError: boom"), ("undefined_name + 1", "NameError")],
)
@pytest.mark.parametrize(
    "command",
    [("upgrade",), ("upgrade", "--sql"), ("downgrade", "--sql", "--bind", "default", "heads:base")],
)
def test_revision_raising_at_import(
    make_app: MakeApp,
    make_url: MakeURL,
    cache: bool,
    statement: str,
    error: str,
    command: tuple[str, ...],
) -> None:
    """A revision module that raises while imported is named with its line; nothing runs."""
    app, alembic, urls = two_binds(make_app, make_url, ALEMBIC_REVISION_CACHE=cache)
    with app.app_context():
        first = alembic.revision("first")[0]
    path = write_file(
        app,
        "c0ffee000002_boom.py",
        f"""\
        \"\"\"boom\"\"\"
        revision = 'c0ffee000002'
        down_revision = {first.revision!r}
        {statement}
        def upgrade():
            pass
        def downgrade():
            pass
        """,
    )
    before = files(Path(app.root_path))
    result = run(app, *command)
    assert_error(result, f"Revision file {path} (line 4) failed to load", error, "Fix the file")
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == [(set(), set()), (set(), set())]
    if not cache:  # every command imports every file
        for other in (("status",), ("log",), ("heads",), ("stamp", "heads")):
            assert_error(run(app, *other), f"{path} (line 4)", error)
        assert databases(*urls) == [(set(), set()), (set(), set())]


# -- 9d: a bind's revision folder that is a file ---------------------------------------------


@pytest.mark.parametrize("where", ["folder", "parent"])
def test_bind_folder_is_a_file(make_app: MakeApp, make_url: MakeURL, where: str) -> None:
    """Every bind's folder is checked before any file is written."""
    config: dict[str, Any] = {}
    if where == "parent":
        config["ALEMBIC_BINDS"] = {"analytics": {"version_location": "blob/analytics"}}
    app, _, urls = two_binds(make_app, make_url, **config)
    blocking = Path(app.root_path) / "migrations" / ("analytics" if where == "folder" else "blob")
    blocking.write_text("not a folder")
    before = files(Path(app.root_path))
    result = run(app, "revision", "first")
    assert_error(result, "bind 'analytics'", str(blocking), "is a file", "version_location")
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == [(set(), set()), (set(), set())]


def test_bind_folder_checked_before_comparing(make_app: MakeApp, make_url: MakeURL) -> None:
    """A folder that is a file is reported before any database is compared with its models."""
    app, alembic, urls = two_binds(make_app, make_url)
    with app.app_context():
        alembic.revision("first", bind="default")  # not applied: comparing would refuse
    blocking = Path(app.root_path) / "migrations" / "analytics"
    blocking.write_text("not a folder")
    before = files(Path(app.root_path))
    assert_error(run(app, "revision", "second"), "bind 'analytics'", str(blocking))
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == [(set(), set()), (set(), set())]


# -- 9e: --output-dir under a file ------------------------------------------------------------


def test_output_dir_under_a_file(make_app: MakeApp, make_url: MakeURL, tmp_path: Path) -> None:
    """--output-dir inside a file is a usage error; nothing is written."""
    app, alembic, _ = two_binds(make_app, make_url)
    with app.app_context():
        alembic.revision("first")
    blocking = tmp_path / "somefile"
    blocking.write_text("a file")
    result = run(app, "upgrade", "--sql", "--output-dir", str(blocking / "sub"))
    assert_error(result, "--output-dir", f"{blocking} is a file", code=2)
    assert blocking.read_text() == "a file"
    with app.app_context(), pytest.raises(FlaskAlembicError, match="is a file"):
        alembic.write_sql({"default": "SELECT 1;\n"}, blocking / "sub")


def test_output_file_is_a_folder(make_app: MakeApp, make_url: MakeURL, tmp_path: Path) -> None:
    """A BIND.sql that is a folder stops the writing before any file is written."""
    app, alembic, _ = two_binds(make_app, make_url)
    with app.app_context():
        alembic.revision("first")
    out = tmp_path / "out"
    (out / "analytics.sql").mkdir(parents=True)
    result = run(app, "upgrade", "--sql", "--output-dir", str(out))
    assert_error(result, str(out / "analytics.sql"), "is a folder")
    assert sorted(p.name for p in out.iterdir()) == ["analytics.sql"]


# -- 9f: lock timeouts that are not a number of seconds --------------------------------------


@pytest.mark.parametrize("value", ["nan", "NaN", "-1"])
def test_lock_timeout_option_refused(make_app: MakeApp, make_url: MakeURL, value: str) -> None:
    """--lock-timeout nan (which waited forever) or below zero is a usage error."""
    app, alembic, urls = two_binds(make_app, make_url)
    with app.app_context():
        alembic.revision("first")
    result = run(app, "upgrade", "--lock-timeout", value)
    assert_error(result, "--lock-timeout", code=2)
    assert databases(*urls) == [(set(), set()), (set(), set())]


@pytest.mark.parametrize("value", [float("nan"), -5, -0.5, "-1", True])
def test_lock_timeout_setting_refused(make_app: MakeApp, make_url: MakeURL, value: object) -> None:
    """ALEMBIC_LOCK_TIMEOUT nan, negative or a bool is refused, naming the key."""
    app, alembic, urls = two_binds(make_app, make_url, ALEMBIC_LOCK_TIMEOUT=value)
    with app.app_context():
        alembic.revision("first")
    result = run(app, "upgrade")
    assert_error(result, "'ALEMBIC_LOCK_TIMEOUT' must be a number of seconds", "120")
    assert databases(*urls) == [(set(), set()), (set(), set())]
    with app.app_context(), pytest.raises(ConfigurationError, match="lock_timeout must be"):
        alembic.upgrade(lock_timeout=math.nan)


def test_lock_timeout_infinite(make_app: MakeApp, make_url: MakeURL, dialect: str) -> None:
    """inf waits without limit: accepted by the option and the setting, on every database."""
    app, alembic, urls = two_binds(make_app, make_url, dialect, ALEMBIC_LOCK_TIMEOUT=math.inf)
    with app.app_context():
        alembic.revision("first")
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    with app.app_context():
        alembic.revision("second", empty=True, bind="default")
    result = run(app, "upgrade", "--lock-timeout", "inf")
    assert result.exit_code == 0, result.output
    assert len(version_rows(urls[0])) == 1


# -- 9g, 9h: settings of the wrong type --------------------------------------------------------


@pytest.mark.parametrize(
    "value", [[], (), None, "default", 0, {"default": []}, {"default": ["version_table"]}]
)
def test_binds_setting_not_a_mapping(make_app: MakeApp, make_url: MakeURL, value: object) -> None:
    """ALEMBIC_BINDS, and each of its entries, must be a dict."""
    app, _, urls = two_binds(make_app, make_url)
    app.config["ALEMBIC_BINDS"] = value
    for command in (("status",), ("upgrade",), ("revision", "x")):
        key = "'ALEMBIC_BINDS'" if not isinstance(value, dict) else "'ALEMBIC_BINDS['default']'"
        assert_error(run(app, *command), f"{key} must be a dict", "For example")
    assert databases(*urls) == [(set(), set()), (set(), set())]
    assert not list((Path(app.root_path) / "migrations").glob("*.py"))


@pytest.mark.parametrize("value", ["false", "False", "0", "", 0, 1, None])
def test_revision_cache_setting_not_a_bool(
    make_app: MakeApp, make_url: MakeURL, value: object
) -> None:
    """ALEMBIC_REVISION_CACHE must be True or False: "false" is not silently true."""
    app, alembic, urls = two_binds(make_app, make_url)
    with app.app_context():
        alembic.revision("first")
    app.config["ALEMBIC_REVISION_CACHE"] = value
    for command in (("status",), ("upgrade",), ("log",)):
        assert_error(
            run(app, *command), "'ALEMBIC_REVISION_CACHE' must be True or False", repr(value)
        )
    assert databases(*urls) == [(set(), set()), (set(), set())]


# -- 9i: a bind whose name holds "@" ----------------------------------------------------------


def test_bind_name_with_at_sign(make_app: MakeApp, make_url: MakeURL, tmp_path: Path) -> None:
    """'a@b@head' names bind 'a@b', not bind 'a' (the longest bind name followed by '@')."""
    urls = {name: make_url() for name in ("default", "a", "a@b")}
    app, alembic = make_app(urls, {name: models() for name in urls})
    with app.app_context():
        first = {s.revision for s in alembic.revision("first")}
        second = alembic.revision("second", empty=True, bind="a@b")[0]
        alembic.upgrade()
    assert version_rows(urls["a@b"]) == {second.revision}
    result = run(app, "downgrade", "a@b@-1")
    assert result.exit_code == 0, result.output
    (parent,) = version_rows(urls["a@b"])
    assert parent in first
    result = run(app, "upgrade", "a@b@head")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["a@b"]) == {second.revision}
    result = run(app, "downgrade", f"a@b@{parent}")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["a@b"]) == {parent}
    result = run(app, "show", "a@b@head")
    assert result.exit_code == 0, result.output
    assert second.revision in result.stdout
    result = run(app, "upgrade", "--plan", "a@b@head")
    assert result.exit_code == 0, result.output
    assert "a@b: upgrade" in result.stdout
    # Bind 'a' keeps its own targets.
    result = run(app, "downgrade", "a@base")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["a"]) == set()
    assert version_rows(urls["a@b"]) == {parent}


# -- 10: control characters in revision text ---------------------------------------------------

HOSTILE = [
    "\x1b[31mALERT",
    "\x1b]0;title\x07",
    "\rspoof",
    "\x07",
    "\x9b31m",
    "\x1b[32mlabel",
]


@pytest.mark.parametrize("force_color", [False, True], ids=["plain", "rich"])
def test_control_characters_escaped(
    make_app: MakeApp, make_url: MakeURL, force_color: bool
) -> None:
    """Escape sequences in messages and labels are shown escaped by log, show and heads."""
    url = make_url()
    app, alembic = make_app(url)
    with app.app_context():
        first = alembic.revision("first")[0]
    write_file(
        app,
        "c0ffee000003_hostile.py",
        f"""\
        \"\"\"Red \\x1b[31mALERT\\x1b[0m \\x1b]0;title\\x07 \\rspoof \\x07 \\x9b31m end

        More \\x1b[31mALERT in the body.
        \"\"\"
        revision = 'c0ffee000003'
        down_revision = {first.revision!r}
        branch_labels = ('\\x1b[32mlabel',)
        def upgrade():
            pass
        def downgrade():
            pass
        """,
    )
    env = {"FORCE_COLOR": "1", "COLUMNS": "400"} if force_color else {"NO_COLOR": "1"}
    for command in (
        ("log",),
        ("log", "-v"),
        ("heads",),
        ("heads", "-v"),
        ("show", "c0ffee000003"),
        ("show", "heads"),
        ("history",),
    ):
        result = run(app, *command, **env)
        assert result.exit_code == 0, result.output
        for raw in HOSTILE:
            assert raw not in result.output, (command, raw)
        assert "\r" not in result.output
        assert "\\x1b[31mALERT" in result.stdout, command
    result = run(app, "log", "--json")
    (hostile,) = [
        r for r in json.loads(result.stdout)["revisions"] if r["revision"] == "c0ffee000003"
    ]
    assert "\x1b[31mALERT" in hostile["message"]  # JSON escapes it itself
    assert "\x1b[32mlabel" in hostile["branch_labels"]


def test_control_characters_in_errors(make_app: MakeApp, make_url: MakeURL) -> None:
    """An error whose text holds an escape sequence is shown escaped, on one line."""
    app, alembic = make_app(make_url())
    with app.app_context():
        first = alembic.revision("first")[0]
    write_file(
        app,
        "c0ffee000004_boom.py",
        f"""\
        revision = 'c0ffee000004'
        down_revision = {first.revision!r}
        raise ValueError("\\x1b[31mred\\x1b[0m\\rback")
        """,
    )
    line = assert_error(run(app, "upgrade"), "ValueError: \\x1b[31mred\\x1b[0m back")
    assert "\x1b" not in line


# -- 10: passwords masked where they stand, not inside other words ---------------------------

PASSWORDS = ["e", "S3cr%t", "p@ss:w/rd", "error"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_scrub_whole_tokens(password: str) -> None:
    """A password is hidden where it stands as a token, and words that contain it are left."""
    secrets = url_secrets(sa.make_url("postgresql+psycopg://app@db/prod").set(password=password))
    quoted = urllib.parse.quote(password, safe="")
    plus = urllib.parse.quote_plus(password)
    for text, expected in [
        (f"app:{password}@db", "app:***@db"),
        (f"app:{quoted}@db:5432/prod", "app:***@db:5432/prod"),
        (f"host=db password={password} dbname=prod", "host=db password=*** dbname=prod"),
        (f"?password={plus}&sslmode=require", "?password=***&sslmode=require"),
        (f"Server=db;PWD={password};UID=app", "Server=db;PWD=***;UID=app"),
        (f"IDENTIFIED BY '{password}'", "IDENTIFIED BY '***'"),
        (f'password "{password}" refused', 'password "***" refused'),
        (password, "***"),
    ]:
        assert scrub(text, secrets) == expected, text
    for text in [
        "OperationalError: connection failed: connection refused",
        "(psycopg.errors.UndefinedTable) relation no_such_table does not exist",
        "ProgrammingError: (1146, \"Table 'prod.no_such_table' doesn't exist\")",
        "user_error, errors, terror",
    ]:
        assert scrub(text, secrets) == text


@pytest.mark.parametrize("driver", ["postgresql+psycopg", "mysql+pymysql"])
@pytest.mark.parametrize("password", PASSWORDS)
def test_short_password_keeps_messages(make_app: MakeApp, driver: str, password: str) -> None:
    """An unreachable server with a short password: the message is whole, the password hidden."""
    quoted = urllib.parse.quote(password, safe="")
    app, alembic = make_app(f"{driver}://someone:{quoted}@127.0.0.1:9/nowhere")
    with app.app_context():
        alembic.revision("a", empty=True)
    result = run(app, "upgrade")
    line = assert_error(result, "Cannot connect to bind 'default'", "someone:***@127.0.0.1:9")
    assert "OperationalError" in line
    assert "connect" in line


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
@pytest.mark.parametrize("password", PASSWORDS)
def test_short_password_on_a_server(
    make_app: MakeApp, make_url: MakeURL, dialect_name: str, password: str
) -> None:
    """A failing migration on a real server: the database's message is whole, no secret in it."""
    url = make_url(dialect_name, password=password)
    app, alembic = make_app(url)
    with app.app_context():
        script = alembic.revision("a", empty=True)[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n    op.execute('SELECT * FROM no_such_table')\n",
            1,
        )
    )
    secrets = url_secrets(sa.make_url(url))
    result = run(app, "upgrade")
    line = assert_error(result, "no_such_table", "failed at revision", alone=False)
    assert scrub(result.output, secrets) == result.output
    # The driver's error class and message, whole.
    expected = {
        "postgresql": 'UndefinedTable: relation "no_such_table" does not exist',
        "mysql": "ProgrammingError: (1146, \"Table '",
    }[dialect_name]
    assert expected in line
    result = run(app, "current", "-v")
    assert result.exit_code == 0
    assert ":***@" in result.stdout
    assert scrub(result.output, secrets) == result.output


# -- the real flask command ------------------------------------------------------------------


def test_real_flask_command(tmp_path: Path) -> None:
    """Through the real ``flask`` command: a bad setting is one line, exit 1."""
    project = tmp_path / "project"
    (project / "migrations").mkdir(parents=True)
    (project / "app.py").write_text(
        textwrap.dedent(
            f"""\
            import sqlalchemy as sa
            from flask import Flask
            from flask_alembic import Alembic

            metadata = sa.MetaData()
            sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True))
            app = Flask(__name__)
            app.config["ALEMBIC_BINDS"] = []
            Alembic(app, engines=sa.create_engine({f"sqlite:///{project / 'app.db'}"!r}),
                    metadatas=metadata)
            """
        )
    )
    env = {**os.environ, "FLASK_APP": "app.py", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "db", "status"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "Error: 'ALEMBIC_BINDS' must be a dict of bind name -> options, got []. "
        'For example ALEMBIC_BINDS = {"stats": {"version_table": "stats_version"}}.'
    )


# -- second round: identifiers that are not strings ------------------------------------------


@CACHE
@pytest.mark.parametrize(
    ("line", "shown", "expected"),
    [
        ("depends_on = 42", "depends_on = 42", "a revision id string"),
        ("depends_on = ('FIRST', 42)", "depends_on = (", "a revision id string"),
        ("down_revision = 42", "down_revision = 42", "a revision id string"),
        ("branch_labels = 42", "branch_labels = (42,)", "a label string"),
    ],
)
@pytest.mark.parametrize(
    "command", [("status",), ("upgrade",), ("upgrade", "--sql"), ("log",), ("revision", "x")]
)
def test_identifier_not_a_string(
    make_app: MakeApp,
    make_url: MakeURL,
    cache: bool,
    line: str,
    shown: str,
    expected: str,
    command: tuple[str, ...],
) -> None:
    """depends_on = 42 (a number, not an id): the file, the value and the type it needs."""
    app, alembic, urls = two_binds(make_app, make_url, ALEMBIC_REVISION_CACHE=cache)
    with app.app_context():
        first = alembic.revision("first")[0]
        alembic.upgrade()
    down = "" if line.startswith("down_revision") else f"down_revision = {first.revision!r}"
    path = write_file(
        app,
        "c0ffee000005_number.py",
        f"""\
        revision = 'c0ffee000005'
        {down}
        {line.replace("FIRST", first.revision)}
        def upgrade():
            pass
        def downgrade():
            pass
        """,
    )
    before, state = files(Path(app.root_path)), databases(*urls)
    assert_error(
        run(app, *command),
        f"Revision c0ffee000005 ({path}) has {shown}",
        f"must be {expected}, or a tuple of them",
        "Fix the file",
    )
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == state


@CACHE
@pytest.mark.parametrize("command", [("status",), ("upgrade",), ("log",)])
def test_revision_id_not_a_string(
    make_app: MakeApp, make_url: MakeURL, cache: bool, command: tuple[str, ...]
) -> None:
    """revision = 42: the file and the type it needs, with the cache on and off."""
    app, alembic, urls = two_binds(make_app, make_url, ALEMBIC_REVISION_CACHE=cache)
    with app.app_context():
        alembic.revision("first")
        alembic.upgrade()
    path = write_file(
        app,
        "c0ffee000006_number.py",
        """\
        revision = 42
        down_revision = None
        branch_labels = None
        depends_on = None
        def upgrade():
            pass
        def downgrade():
            pass
        """,
    )
    before, state = files(Path(app.root_path)), databases(*urls)
    assert_error(
        run(app, *command),
        f"Revision file {path} has revision = 42: it must be a revision id string",
        "Fix the file",
    )
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == state


# -- second round: settings of the wrong type ------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("version_table_schema", 5, "a schema name (a string)"),
        ("version_table", 5, "a table name (a string)"),
        ("version_location", 5, "a folder (a string or a path)"),
        ("version_location", None, "a folder (a string or a path)"),
        ("context", 5, "a dict of EnvironmentContext options"),
    ],
)
def test_bind_option_of_wrong_type(
    make_app: MakeApp, make_url: MakeURL, option: str, value: object, expected: str
) -> None:
    """An ALEMBIC_BINDS option of the wrong type names the key and the type it takes."""
    app, _, urls = two_binds(make_app, make_url, ALEMBIC_BINDS={"analytics": {option: value}})
    before = files(Path(app.root_path))
    for command in (("status",), ("upgrade",), ("revision", "x"), ("log",)):
        assert_error(
            run(app, *command),
            f"'ALEMBIC_BINDS['analytics'][{option!r}]' must be {expected}, got {value!r}",
            "For example ALEMBIC_BINDS = {'analytics': {",
        )
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == [(set(), set()), (set(), set())]


@pytest.mark.parametrize(
    ("key", "value"),
    [("script_location", 5), ("version_locations", 5), ("version_locations", ["extra", 5])],
)
def test_alembic_folder_of_wrong_type(
    make_app: MakeApp, make_url: MakeURL, key: str, value: object
) -> None:
    """ALEMBIC['script_location'] = 5 names the key and the type it takes."""
    app, _, urls = two_binds(make_app, make_url)
    app.config["ALEMBIC"][key] = value
    before = files(Path(app.root_path))
    for command in (("status",), ("upgrade",), ("revision", "x")):
        assert_error(
            run(app, *command),
            f"'ALEMBIC['{key}']' must be a folder (a string or a path), got 5",
            f'For example ALEMBIC = {{"{key}": ',
        )
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == [(set(), set()), (set(), set())]
    # As with Flask-Alembic 3, registering the extension never fails: the first use does.
    other, alembic = make_app(make_url(), ALEMBIC={key: value})
    with (
        other.app_context(),
        pytest.raises(ConfigurationError, match=rf"'ALEMBIC\['{key}'\]' must be"),
    ):
        alembic.upgrade()


# -- second round: a revision folder that cannot be created or written -----------------------


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="no /proc")
@pytest.mark.parametrize("where", ["proc", "read-only", "read-only parent"])
def test_version_location_cannot_be_written(
    make_app: MakeApp, make_url: MakeURL, tmp_path: Path, where: str
) -> None:
    """A folder under /proc or without write permission: the bind, the folder, the reason."""
    locked = tmp_path / "locked"
    locked.mkdir()
    folder = {
        "proc": Path("/proc/nope/x"),
        "read-only": locked,
        "read-only parent": locked / "analytics",
    }[where]
    # The default bind's folder is new too: made, then removed again when analytics fails.
    fresh = tmp_path / "fresh" / "default"
    app, _, urls = two_binds(
        make_app,
        make_url,
        ALEMBIC_BINDS={
            "default": {"version_location": str(fresh)},
            "analytics": {"version_location": str(folder)},
        },
    )
    before = files(Path(app.root_path))
    locked.chmod(0o555)
    try:
        if where != "proc" and os.access(locked, os.W_OK):
            pytest.skip("this user writes anywhere (root with CAP_DAC_OVERRIDE)")
        # Root passes the permission check, and then cannot create /proc/nope.
        reason = "not writable" if not os.access("/proc", os.W_OK) else "No such file"
        result = run(app, "revision", "first")
        assert_error(
            result,
            f"Cannot write the revisions of bind 'analytics' into {folder}: ",
            reason,
            "ALEMBIC_BINDS['analytics']['version_location']",
        )
    finally:
        locked.chmod(0o755)
    assert files(Path(app.root_path)) == before
    assert not (tmp_path / "fresh").exists()
    assert list(locked.iterdir()) == []
    assert databases(*urls) == [(set(), set()), (set(), set())]


def test_revision_file_cannot_be_written(make_app: MakeApp, make_url: MakeURL) -> None:
    """A file Alembic cannot write (a folder stands there): the bind, the file, the reason."""
    app, _ = make_app(make_url())
    blocking = Path(app.root_path) / "migrations" / "abc123_first.py"
    blocking.mkdir()
    before = files(Path(app.root_path))
    result = run(app, "revision", "first", "--rev-id", "abc123")
    assert_error(
        result,
        "Cannot write the revisions of bind 'default' into ",
        f"cannot write {blocking}: ",
        "Make it a folder you can write to",
    )
    assert files(Path(app.root_path)) == before


# -- second round: labels that no target can name ---------------------------------------------


@pytest.mark.parametrize(
    ("label", "reason"),
    [
        ("HEAD", "is a reserved word for revision targets (base, head and heads, in any case)"),
        ("Heads", "is a reserved word"),
        ("bAsE", "is a reserved word"),
        ("x@y", "holds '@'"),
        ("a,b", "holds ','"),
        ("", "is empty"),
        ("two words", "holds ' '"),
        ("tab\there", "holds '\\t'"),
        ("new\nline", "holds '\\n'"),
        ("-1", "starts with '-'"),
        ("12", "is a number, which targets read as a count of steps"),
        ("ANALYTICS", "is already the branch label of revision"),
        ("Reports", "is the name of bind 'reports'"),
        ("REVISION", "is the id of revision"),
    ],
)
@pytest.mark.parametrize("command", ["revision", "merge"])
def test_label_refused(
    make_app: MakeApp, make_url: MakeURL, label: str, reason: str, command: str
) -> None:
    """A label no target could name, or naming something already in any case, is refused."""
    urls = [make_url(), make_url(), make_url()]
    app, alembic = make_app(
        {"default": urls[0], "analytics": urls[1], "reports": urls[2]},
        {"default": models(), "analytics": events(), "reports": models()},
    )
    with app.app_context():
        written = alembic.revision("first", bind=["default", "analytics"])
        alembic.revision("second", empty=True, bind="default")
        alembic.revision(
            "other second", empty=True, bind="default", parent=written[0].revision, splice=True
        )
        alembic.upgrade(bind=["default", "analytics"])
    label = label.replace("REVISION", written[1].revision.upper())
    before, state = files(Path(app.root_path)), databases(*urls)
    args = ["x", "--empty"] if command == "revision" else ["heads"]
    result = run(app, command, "--bind", "default", *args, "--label", label)
    line = assert_error(result, f"--label {one_line(repr(label))}", reason, "Choose another label")
    assert "\n" not in line
    assert files(Path(app.root_path)) == before
    assert databases(*urls) == state
    assert run(app, "status").exit_code == 0


def test_own_bind_name_in_another_case(make_app: MakeApp, make_url: MakeURL) -> None:
    """A bind's first revision carries its name; the name in another case is refused."""
    app, _, urls = two_binds(make_app, make_url)
    before = files(Path(app.root_path))
    result = run(app, "revision", "first", "--bind", "analytics", "--label", "Analytics")
    assert_error(result, "--label 'Analytics' is the name of bind 'analytics'")
    assert files(Path(app.root_path)) == before
    result = run(app, "revision", "first", "--bind", "analytics", "--label", "analytics")
    assert result.exit_code == 0, result.output
    assert databases(*urls) == [(set(), set()), (set(), set())]


@pytest.mark.parametrize("label", ["feature", "feature-2", "v1.2", "_x", "A1"])
def test_label_accepted(make_app: MakeApp, make_url: MakeURL, label: str) -> None:
    """Letters, digits, underscores, hyphens and dots make a label targets can name."""
    app, alembic = make_app(make_url())
    with app.app_context():
        alembic.revision("first")
    result = run(app, "revision", "second", "--empty", "--label", label)
    assert result.exit_code == 0, result.output
    result = run(app, "upgrade", label)
    assert result.exit_code == 0, result.output
    result = run(app, "show", label)
    assert result.exit_code == 0, result.output
    assert "second" in result.stdout


# -- second round: control characters in bind names, tables, URLs and messages ----------------

RED = "\x1b[31mred"
FORGED = "two\nFORGED"
#: Right-to-left override, left-to-right mark and isolate, a line separator.
INVISIBLE = ["\u202e", "\u200e", "\u2066", "\u2028"]


def hostile_app(make_app: MakeApp, make_url: MakeURL, tmp_path: Path) -> tuple[Flask, Alembic]:
    """Binds named with an escape sequence and with a newline, a version table and a
    database file named with one, and a revision message with a newline and bidi controls."""
    urls = {
        "default": make_url(),
        RED: f"sqlite:///{tmp_path / ('db' + RED + '.db')}",
        FORGED: make_url(),
    }
    app, alembic = make_app(
        urls,
        {"default": models(), RED: events(), FORGED: events()},
        ALEMBIC_BINDS={RED: {"version_table": "vt" + RED}},
    )
    with app.app_context():
        alembic.revision("first")
        alembic.revision(
            "evil \u202etxt.exe\u200e \u2066x\u2028y\nFORGED line", empty=True, bind="default"
        )
    return app, alembic


def assert_escaped(output: str, *, one_line: bool = True) -> None:
    """No raw escape sequence, bidi control or line separator; no forged line.

    :param one_line: whether every value sits inside a line (not a revision in full).
    """
    assert RED not in output
    for char in INVISIBLE:
        assert char not in output, repr(char)
    if one_line:  # every FORGED follows an escaped newline (or is a folder's slug)
        assert "FORGED" not in re.sub(r"\\nFORGED|_FORGED_", "", output), output


@pytest.mark.parametrize("force_color", [False, True], ids=["plain", "rich"])
def test_hostile_names_escaped(
    make_app: MakeApp, make_url: MakeURL, tmp_path: Path, force_color: bool
) -> None:
    """Bind names, URLs, version tables and messages stay on their line, escaped."""
    app, _ = hostile_app(make_app, make_url, tmp_path)
    env = {"FORCE_COLOR": "1", "COLUMNS": "400"} if force_color else {"NO_COLOR": "1"}
    commands: list[tuple[str, ...]] = [
        ("status",),
        ("current", "-v"),
        ("upgrade", "--plan"),
        ("upgrade",),
        ("status",),
        ("current", "-v"),
        ("log",),
        ("log", "-v"),
        ("heads",),
        ("heads", "-v"),
        ("check",),
        ("downgrade", "--plan", "--bind", "default", "-1"),
        ("downgrade", "--bind", "default", "-1"),
    ]
    result = run(app, "status", "--check", **env)  # "Not up to date: BIND, ..."
    assert result.exit_code == 1, result.output
    assert_escaped(result.output)
    assert "Not up to date: default, \\x1b[31mred, two\\nFORGED are behind" in result.output
    for command in commands:
        result = run(app, *command, **env)
        assert result.exit_code == 0, (command, result.output)
        assert "Traceback" not in result.output
        # -v shows each revision in full, with its own lines, as show does.
        assert_escaped(result.output, one_line="-v" not in command[1:2])
        if not force_color:
            assert "\x1b" not in result.output, command
        if command[0] in {"status", "current", "log"}:  # every bind
            assert "\\x1b[31mred" in result.output, command
        if command in {("upgrade",), ("log",), ("heads",), ("upgrade", "--plan")}:
            assert "evil \\u202etxt.exe\\u200e \\u2066x\\u2028y\\nFORGED line" in result.output
    # JSON keeps the data as it is.
    rows = json.loads(run(app, "status", "--json").stdout)["binds"]
    assert {row["bind"] for row in rows} == {"default", RED, FORGED}
    assert {row["version_table"] for row in rows} >= {"vt" + RED}
    (evil,) = [
        r
        for r in json.loads(run(app, "log", "--json").stdout)["revisions"]
        if "evil" in r["message"]
    ]
    assert evil["message"].startswith("evil \u202etxt.exe\u200e \u2066x\u2028y\nFORGED line")


def test_show_keeps_the_revision_lines(
    make_app: MakeApp, make_url: MakeURL, tmp_path: Path
) -> None:
    """show prints the revision in full: its own newlines kept, everything else escaped."""
    app, _ = hostile_app(make_app, make_url, tmp_path)
    result = run(app, "show", "heads", NO_COLOR="1")
    assert result.exit_code == 0, result.output
    assert "\n    FORGED line" in result.stdout
    assert "Bind: \\x1b[31mred" in result.stdout
    assert "Bind: two\\nFORGED" in result.stdout
    assert_escaped(result.output, one_line=False)


def test_printable_and_one_line() -> None:
    """printable keeps newlines and tabs; one_line escapes newlines; both escape the rest."""
    text = "a\tb\nc\x1b[0m\x9b\u202e\u061c\u200f\u202a\u2069\u2029d"
    escaped = "c\\x1b[0m\\x9b\\u202e\\u061c\\u200f\\u202a\\u2069\\u2029d"
    assert printable(text) == "a\tb\n" + escaped
    assert one_line(text) == "a\tb\\n" + escaped
    assert one_line(one_line(text)) == one_line(text)
    assert printable("émoji ✓ 中文") == "émoji ✓ 中文"


@pytest.mark.parametrize("force_color", [False, True], ids=["plain", "rich"])
def test_hostile_names_in_a_failed_run(
    make_app: MakeApp, make_url: MakeURL, force_color: bool
) -> None:
    """A failed run's plan, progress, summary and error keep hostile names on their line."""
    urls = {RED: make_url(), FORGED: make_url()}
    app, alembic = make_app(urls, {RED: models(), FORGED: events()})
    with app.app_context():
        written = alembic.revision("first")
        alembic.revision("second\nFORGED line", empty=True, bind=FORGED)
        path = Path(next(s.path for s in written if alembic.bind_of(s.revision) == RED))
    path.write_text(
        path.read_text().replace("    op.create_table(", "    1 / 0\n    op.create_table(", 1)
    )
    env = {"FORCE_COLOR": "1", "COLUMNS": "400"} if force_color else {"NO_COLOR": "1"}
    result = run(app, "upgrade", "--parallel", "1", **env)
    assert result.exit_code == 1, result.output
    assert_escaped(result.output)
    assert "ZeroDivisionError" in result.output
    assert "\\x1b[31mred" in result.output
    if not force_color:
        assert "\x1b" not in result.output


# -- second round: long error text is cut -----------------------------------------------------


def test_long_error_cut(make_app: MakeApp, make_url: MakeURL) -> None:
    """A 100 KB exception message is cut to MAX_ERROR_CHARS, saying how much was cut."""
    app, alembic = make_app(make_url())
    with app.app_context():
        script = alembic.revision("first")[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n    raise ValueError('x' * 100_000 + 'END')\n",
            1,
        )
    )
    result = run(app, "upgrade", "--json", NO_COLOR="1")
    line = assert_error(result, "ValueError: xxx", "more characters cut)", alone=False)
    assert "END" not in result.output
    assert len(line) < MAX_ERROR_CHARS + 500
    cut = len("ValueError: ") + 100_003 - MAX_ERROR_CHARS
    assert f"... ({cut:,} more characters cut)" in line
    error = json.loads(result.stdout)["error"]
    assert error.startswith("ValueError: xxx")
    assert error.endswith(f"... ({cut:,} more characters cut)")


def test_describe_exception_cut_after_scrubbing() -> None:
    """The text is scrubbed before it is cut: a password across the cut is not half shown."""
    secret = "hunter2hunter2"
    # "RuntimeError: " and a space come first: the secret starts 5 characters before the cut.
    text = "a" * (MAX_ERROR_CHARS - 20) + " " + secret + " tail" * 1000
    described = describe_exception(RuntimeError(text), [secret])
    assert described.startswith("RuntimeError: aaa")
    assert described[MAX_ERROR_CHARS - 5 :].startswith("***")
    assert "hunte" not in described
    assert described.endswith("more characters cut)")
    short = describe_exception(RuntimeError("fine"), [])
    assert short == "RuntimeError: fine"
