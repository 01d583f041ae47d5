"""Server-side timeouts for migration steps (issue 16, point 5): ``ALEMBIC_BINDS[...]
['timeouts']``, a revision file's ``timeouts`` override, online and in offline SQL.

Locks are held by a second, real connection; it is always closed, even when a test fails.
"""

from __future__ import annotations

import math
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import MakeURL
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import ConfigurationError
from flask_alembic.errors import MigrationFailedError
from flask_alembic.errors import ScriptDirectoryError
from flask_alembic.timeouts import statement

CREATE = """
    revision = "a1"
    down_revision = None
    branch_labels = ("default",)
    depends_on = None

    import sqlalchemy as sa
    from alembic import op


    def upgrade():
        op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))


    def downgrade():
        op.drop_table("t")
"""

ALTER = """
    revision = "b2"
    down_revision = "a1"
    branch_labels = None
    depends_on = None
    {override}
    import sqlalchemy as sa
    from alembic import op


    def upgrade():
        {body}


    def downgrade():
        pass
"""
ADD_COLUMN = 'op.add_column("t", sa.Column("x", sa.Integer))'


def metadata() -> sa.MetaData:
    result = sa.MetaData()
    sa.Table("t", result, sa.Column("id", sa.Integer, primary_key=True))
    return result


@contextmanager
def make_app(
    project: Path,
    url: str,
    timeouts: object = None,
    *,
    override: str = "",
    body: str = ADD_COLUMN,
    **engine_options: Any,
) -> Iterator[tuple[Flask, Alembic, sa.Engine]]:
    """An app whose default bind at ``url`` has revisions a1 (create ``t``) and b2 (alter it)."""
    migrations = project / "migrations"
    migrations.mkdir(exist_ok=True)
    (migrations / "a1_create.py").write_text(textwrap.dedent(CREATE))
    text = textwrap.dedent(ALTER).format(override=override, body=body)
    (migrations / "b2_alter.py").write_text(text)
    engine = sa.create_engine(url, **engine_options)
    app = Flask("testapp", root_path=str(project))
    if timeouts is not None:
        app.config["ALEMBIC_BINDS"] = {"default": {"timeouts": timeouts}}
    alembic = Alembic(app, engines=engine, metadatas=metadata())
    try:
        yield app, alembic, engine
    finally:
        engine.dispose()


@contextmanager
def holder(url: str, *statements: str, release_after: float = 15) -> Iterator[sa.Connection]:
    """A second connection running ``statements`` in a transaction it keeps open for
    ``release_after`` seconds at most (a broken timeout fails the test instead of hanging
    it); closed, releasing its locks, on the way out, whatever happens."""
    engine = sa.create_engine(url)
    connection = engine.connect()
    release = threading.Timer(release_after, connection.rollback)
    try:
        for sql in statements:
            connection.exec_driver_sql(sql)
        release.start()
        yield connection
    finally:
        release.cancel()
        if release.is_alive():
            release.join()
        connection.close()
        engine.dispose()


def columns(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns("t")]
    finally:
        engine.dispose()


def failing_upgrade(app: Flask, alembic: Alembic) -> tuple[MigrationFailedError, float]:
    started = time.monotonic()
    with app.app_context(), pytest.raises(MigrationFailedError) as caught:
        alembic.upgrade()
    return caught.value, time.monotonic() - started


# -- PostgreSQL -------------------------------------------------------------------------


def test_postgresql_lock_timeout_fails_fast(project: Path, make_url: MakeURL) -> None:
    """A step waiting for a lock fails after lock_timeout, naming bind and revision;
    nothing of it is kept."""
    url = make_url("postgresql")
    with make_app(project, url, {"lock_timeout": 1}) as (app, alembic, _):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "SELECT * FROM t"):
            error, elapsed = failing_upgrade(app, alembic)
    assert 0.9 < elapsed < 8, elapsed
    message = str(error)
    assert "bind 'default'" in message
    assert "revision b2" in message
    assert "the lock_timeout of 1s ran out" in message
    assert "Traceback" not in message
    assert version_rows(url) == {"a1"}
    assert columns(url) == ["id"]


def test_postgresql_lock_timeout_cli(project: Path, make_url: MakeURL) -> None:
    """``flask db upgrade`` says it in one line and exits 1."""
    url = make_url("postgresql")
    with make_app(project, url, {"lock_timeout": 0.5}) as (app, alembic, _):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "SELECT * FROM t"):
            result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    assert "bind 'default'" in errors[0]
    assert "b2" in errors[0]
    assert "the lock_timeout of 0.5s ran out" in errors[0]
    assert version_rows(url) == {"a1"}


def test_postgresql_override_lifts_lock_timeout(project: Path, make_url: MakeURL) -> None:
    """``timeouts = {"lock_timeout": None}`` in the revision: it waits for the lock."""
    url = make_url("postgresql")
    override = 'timeouts = {"lock_timeout": None}'
    with make_app(project, url, {"lock_timeout": 1}, override=override) as (app, alembic, _):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "SELECT * FROM t", release_after=2.5):
            started = time.monotonic()
            with app.app_context():
                alembic.upgrade()
            elapsed = time.monotonic() - started
    assert elapsed > 2, elapsed
    assert version_rows(url) == {"b2"}
    assert columns(url) == ["id", "x"]


def test_postgresql_override_lowers_lock_timeout(project: Path, make_url: MakeURL) -> None:
    """A revision's shorter lock_timeout replaces the bind's longer one."""
    url = make_url("postgresql")
    override = 'timeouts = {"lock_timeout": 0.5}'
    with make_app(project, url, {"lock_timeout": 60}, override=override) as (app, alembic, _):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "SELECT * FROM t"):
            error, elapsed = failing_upgrade(app, alembic)
    assert elapsed < 8, elapsed
    assert "the lock_timeout of 0.5s ran out" in str(error)
    assert version_rows(url) == {"a1"}


def test_postgresql_override_sets_lock_timeout(project: Path, make_url: MakeURL) -> None:
    """A revision may set a timeout its bind has none of."""
    url = make_url("postgresql")
    override = 'timeouts = {"lock_timeout": 0.5}'
    with make_app(project, url, override=override) as (app, alembic, _):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "SELECT * FROM t"):
            error, elapsed = failing_upgrade(app, alembic)
    assert elapsed < 8, elapsed
    assert "the lock_timeout of 0.5s ran out" in str(error)
    assert version_rows(url) == {"a1"}


def test_postgresql_statement_timeout(project: Path, make_url: MakeURL) -> None:
    """A step running longer than statement_timeout is cancelled."""
    url = make_url("postgresql")
    body = 'op.execute("SELECT pg_sleep(5)")'
    with make_app(project, url, {"statement_timeout": 1}, body=body) as (app, alembic, _):
        error, elapsed = failing_upgrade(app, alembic)
    assert elapsed < 4, elapsed
    assert "revision b2" in str(error)
    assert "the statement_timeout of 1s ran out" in str(error)
    assert version_rows(url) == {"a1"}  # a1 committed in its own transaction


def test_postgresql_timeouts_end_with_the_step(project: Path, make_url: MakeURL) -> None:
    """SET LOCAL: no pooled connection keeps the timeouts after the run."""
    url = make_url("postgresql")
    with make_app(project, url, {"lock_timeout": 1, "statement_timeout": 2}) as (
        app,
        alembic,
        engine,
    ):
        with app.app_context():
            alembic.upgrade()
        with engine.connect() as connection:
            values = connection.exec_driver_sql(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
            ).one()
    assert tuple(values) == ("0", "0")
    assert version_rows(url) == {"b2"}


def test_postgresql_autocommit_block(project: Path, make_url: MakeURL) -> None:
    """As documented: autocommit_block() commits the step's SET LOCAL values away, so the
    block runs with the server's own settings; they are set again after it."""
    url = make_url("postgresql")
    body = "\n    ".join(
        [
            'show = lambda: op.get_bind().exec_driver_sql("SHOW lock_timeout").scalar()',
            "before = show()",
            "with op.get_context().autocommit_block():",
            "    inside = show()",
            "after = show()",
            'op.execute("CREATE TABLE seen (before text, inside text, after text)")',
            "op.execute(f\"INSERT INTO seen VALUES ('{before}', '{inside}', '{after}')\")",
        ]
    )
    with make_app(project, url, {"lock_timeout": 3}, body=body) as (app, alembic, engine):
        with app.app_context():
            alembic.upgrade()
        with engine.connect() as connection:
            seen = connection.exec_driver_sql("SELECT * FROM seen").one()
    assert tuple(seen) == ("3s", "0", "3s")
    assert version_rows(url) == {"b2"}


def test_postgresql_lock_timeout_after_an_autocommit_block(
    project: Path, make_url: MakeURL
) -> None:
    """The DDL after an autocommit_block() waits no longer than the bind's lock_timeout:
    the step fails fast instead of queueing behind another transaction."""
    url = make_url("postgresql")
    body = "\n    ".join(
        [
            "with op.get_context().autocommit_block():",
            '    op.execute("SELECT 1")',
            ADD_COLUMN,
        ]
    )
    with make_app(project, url, {"lock_timeout": 1}, body=body) as (app, alembic, _):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "SELECT * FROM t"):
            error, elapsed = failing_upgrade(app, alembic)
    assert 0.9 < elapsed < 8, elapsed
    assert "the lock_timeout of 1s ran out" in str(error)
    assert version_rows(url) == {"a1"}
    assert columns(url) == ["id"]


def test_offline_postgresql_after_an_autocommit_block(project: Path, make_url: MakeURL) -> None:
    """upgrade --sql sets the step's timeouts again after the block's BEGIN, as online."""
    url = make_url("postgresql")
    body = "\n    ".join(
        ["with op.get_context().autocommit_block():", '    op.execute("SELECT 1")', ADD_COLUMN]
    )
    with (
        make_app(project, url, {"lock_timeout": 5}, body=body) as (app, alembic, _),
        app.app_context(),
    ):
        sql = alembic.upgrade(sql=True)["default"]
    b2 = steps(sql)["b2"]
    assert b2[:4] == [
        "SET LOCAL lock_timeout = '5000ms';",
        "COMMIT;",
        "SELECT 1;",
        "BEGIN;",
    ]
    assert b2[4] == "SET LOCAL lock_timeout = '5000ms';"
    assert b2[5].startswith("ALTER TABLE t ADD COLUMN x")


# -- MariaDB / MySQL --------------------------------------------------------------------


def session_values(engine: sa.Engine) -> list[tuple[int, int]]:
    """Records, for every connection going back to ``engine``'s pool, its session and
    global ``lock_wait_timeout``."""
    found: list[tuple[int, int]] = []

    def checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is None:
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT @@SESSION.lock_wait_timeout, @@GLOBAL.lock_wait_timeout")
        found.append(tuple(cursor.fetchone()))
        cursor.close()

    sa.event.listen(engine, "checkin", checkin)
    return found


def test_mysql_lock_wait_timeout_fails_fast(project: Path, make_url: MakeURL) -> None:
    """An ALTER waiting for a metadata lock fails after lock_wait_timeout; the connection
    goes back to the pool with the server's own value."""
    url = make_url("mysql")
    with make_app(project, url, {"lock_wait_timeout": 1}) as (app, alembic, engine):
        with app.app_context():
            alembic.upgrade("a1")
        returned = session_values(engine)
        with holder(url, "BEGIN", "SELECT * FROM t"):
            error, elapsed = failing_upgrade(app, alembic)
    assert 0.9 < elapsed < 8, elapsed
    message = str(error)
    assert "bind 'default'" in message
    assert "revision b2" in message
    assert "the lock_wait_timeout of 1s ran out" in message
    assert version_rows(url) == {"a1"}
    assert columns(url) == ["id"]
    assert returned
    assert all(session == default for session, default in returned), returned


def test_mysql_session_restored_after_success(project: Path, make_url: MakeURL) -> None:
    """After a run that succeeds, every pooled connection has the server's own value."""
    url = make_url("mysql")
    with make_app(project, url, {"lock_wait_timeout": 7}, pool_size=1) as (app, alembic, engine):
        returned = session_values(engine)
        with app.app_context():
            alembic.upgrade()
        with engine.connect() as connection:
            session, default = connection.exec_driver_sql(
                "SELECT @@SESSION.lock_wait_timeout, @@GLOBAL.lock_wait_timeout"
            ).one()
    assert session == default != 7
    assert returned
    assert all(session == default for session, default in returned), returned
    assert version_rows(url) == {"b2"}
    assert columns(url) == ["id", "x"]


def test_mysql_override_lifts_lock_wait_timeout(project: Path, make_url: MakeURL) -> None:
    """``timeouts = {"lock_wait_timeout": None}``: the step waits for the lock."""
    url = make_url("mysql")
    override = 'timeouts = {"lock_wait_timeout": None}'
    with make_app(project, url, {"lock_wait_timeout": 1}, override=override) as (
        app,
        alembic,
        _,
    ):
        with app.app_context():
            alembic.upgrade("a1")
        with holder(url, "BEGIN", "SELECT * FROM t", release_after=2.5):
            started = time.monotonic()
            with app.app_context():
                alembic.upgrade()
            elapsed = time.monotonic() - started
    assert elapsed > 2, elapsed
    assert version_rows(url) == {"b2"}


# -- Offline SQL ------------------------------------------------------------------------


def offline(project: Path, url: str, timeouts: object = None, override: str = "") -> str:
    with (
        make_app(project, url, timeouts, override=override) as (app, alembic, _),
        app.app_context(),
    ):
        return alembic.upgrade(sql=True)["default"]


def steps(sql: str) -> dict[str, list[str]]:
    """The statements of each step (``-- Running upgrade  -> a1``) of offline SQL."""
    found: dict[str, list[str]] = {}
    current = None
    for part in sql.split("\n\n"):
        part = part.strip()
        if part.startswith("-- Running upgrade"):
            current = part.split()[-1]
            found[current] = []
        elif current is not None:
            found[current].append(part)
    return found


def test_offline_postgresql(project: Path, make_url: MakeURL) -> None:
    """Each step starts with SET LOCAL; the override changes b2's; without timeouts the SQL
    is what it was."""
    url = make_url("postgresql")
    plain = offline(project, url)
    timed = offline(
        project,
        url,
        {"lock_timeout": 5, "statement_timeout": 0.25},
        override='timeouts = {"lock_timeout": None, "statement_timeout": 600}',
    )
    assert "SET LOCAL" not in plain
    assert "SET SESSION" not in plain
    by_step = steps(timed)
    assert by_step["a1"][:2] == [
        "SET LOCAL lock_timeout = '5000ms';",
        "SET LOCAL statement_timeout = '250ms';",
    ]
    assert by_step["b2"][0] == "SET LOCAL statement_timeout = '600000ms';"
    assert not any("lock_timeout" in s for s in by_step["b2"])
    assert by_step["b2"][1].startswith("ALTER TABLE t ADD COLUMN x")
    parts = [p for p in timed.split("\n\n") if not p.startswith("SET LOCAL ")]
    assert "\n\n".join(parts) == plain


def test_offline_mysql(project: Path, make_url: MakeURL) -> None:
    """SET SESSION before each step, and back to DEFAULT at the end."""
    url = make_url("mysql")
    plain = offline(project, url)
    timed = offline(
        project, url, {"lock_wait_timeout": 2.2}, override='timeouts = {"lock_wait_timeout": 30}'
    )
    assert "SET LOCAL" not in plain
    assert "SET SESSION" not in plain
    by_step = steps(timed)
    assert by_step["a1"][0] == "SET SESSION lock_wait_timeout = 3;"
    assert by_step["b2"][0] == "SET SESSION lock_wait_timeout = 30;"
    assert timed.rstrip().endswith("SET SESSION lock_wait_timeout = DEFAULT;")
    parts = [p for p in timed.split("\n\n") if not p.strip().startswith("SET SESSION ")]
    assert "\n\n".join(parts).rstrip() == plain.rstrip()


def test_offline_mysql_override_back_to_server(project: Path, make_url: MakeURL) -> None:
    """A None override gives that step the server's own value."""
    url = make_url("mysql")
    timed = offline(
        project, url, {"lock_wait_timeout": 2}, override='timeouts = {"lock_wait_timeout": None}'
    )
    by_step = steps(timed)
    assert by_step["a1"][0] == "SET SESSION lock_wait_timeout = 2;"
    assert by_step["b2"][0] == "SET SESSION lock_wait_timeout = DEFAULT;"
    assert timed.count("DEFAULT") == 1


@pytest.mark.parametrize(
    ("backend", "seconds", "expected"),
    [
        ("postgresql", 5, "SET LOCAL lock_timeout = '5000ms'"),
        ("postgresql", 0.3, "SET LOCAL lock_timeout = '300ms'"),
        ("postgresql", 0.0001, "SET LOCAL lock_timeout = '1ms'"),
        ("postgresql", None, "SET LOCAL lock_timeout = DEFAULT"),
        ("mysql", 0.2, "SET SESSION lock_timeout = 1"),
        ("mysql", 2.5, "SET SESSION lock_timeout = 3"),
        ("mysql", 3.0, "SET SESSION lock_timeout = 3"),
    ],
)
def test_statement_rounding(backend: str, seconds: float | None, expected: str) -> None:
    """Milliseconds on PostgreSQL, whole seconds on MariaDB, rounded up, never 0."""
    assert statement(backend, "lock_timeout", seconds) == expected


# -- Refusals ---------------------------------------------------------------------------

#: URLs that no test connects to: the settings are refused before any connection.
PG = "postgresql+psycopg://u@127.0.0.1:1/none"
MY = "mysql+pymysql://u@127.0.0.1:1/none"


@pytest.mark.parametrize(
    ("url", "timeouts", "fragments"),
    [
        (PG, {"lock_wait_timeout": 5}, ["'lock_wait_timeout' is for MariaDB/MySQL", "PostgreSQL"]),
        (MY, {"lock_timeout": 5}, ["'lock_timeout' is for PostgreSQL", "lock_wait_timeout"]),
        (MY, {"statement_timeout": 5}, ["'statement_timeout' is for PostgreSQL"]),
        (PG, {"lock_timout": 5}, ["'lock_timout' is not a timeout", "Use lock_timeout or"]),
        (PG, {"lock_timeout": "5s"}, ["'lock_timeout' must be a number of seconds", "'5s'"]),
        (PG, {"lock_timeout": 0}, ["greater than 0", "got 0"]),
        (PG, {"statement_timeout": -1}, ["greater than 0", "got -1"]),
        (PG, {"lock_timeout": True}, ["got True"]),
        (PG, {"lock_timeout": math.nan}, ["got nan"]),
        (PG, {"lock_timeout": math.inf}, ["got inf"]),
        (PG, {"lock_timeout": 3e6}, ["at most 2147483.647"]),
        (MY, {"lock_wait_timeout": 4e7}, ["at most 31536000"]),
        ("sqlite://", {"lock_timeout": 5}, ["SQLite database has no server-side timeouts"]),
        ("sqlite://", {"lock_timeout": None}, ["SQLite database has no server-side timeouts"]),
        (PG, "5", ["'ALEMBIC_BINDS['default']['timeouts']' must be a dict", "'lock_timeout'"]),
    ],
)
def test_settings_refused(project: Path, url: str, timeouts: object, fragments: list[str]) -> None:
    """Each bad setting is one line naming the bind, the key and the fix, on first use."""
    with make_app(project, url, timeouts) as (app, alembic, _):
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        with app.app_context(), pytest.raises(ConfigurationError) as caught:
            alembic.upgrade()
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [result.stderr.strip()], result.stderr
    assert "ALEMBIC_BINDS['default']" in errors[0]
    assert caught.value.bind == "default"
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_settings_accepted(project: Path, dialect: str) -> None:
    """Good settings land on the bind, as floats (None kept)."""
    url, timeouts = {
        "postgresql": (PG, {"lock_timeout": 5, "statement_timeout": None}),
        "mysql": (MY, {"lock_wait_timeout": 2.5}),
    }[dialect]
    with make_app(project, url, timeouts) as (app, alembic, _), app.app_context():
        bind = alembic.registry["default"]
    assert dict(bind.timeouts) == timeouts
    assert all(v is None or isinstance(v, float) for v in bind.timeouts.values())


@pytest.mark.parametrize(
    ("dialect", "override", "fragments"),
    [
        ("postgresql", 'timeouts = {"lock_timeout": "5s"}', ["must be a number", "'5s'"]),
        ("postgresql", 'timeouts = {"lock_wait_timeout": 5}', ["is for MariaDB/MySQL"]),
        ("postgresql", 'timeouts = ["lock_timeout"]', ["must be a dict"]),
        ("mysql", 'timeouts = {"lock_timeout": 5}', ["is for PostgreSQL"]),
        ("sqlite", 'timeouts = {"lock_timeout": 5}', ["SQLite database has no"]),
    ],
)
def test_revision_file_refused(
    project: Path, make_url: MakeURL, dialect: str, override: str, fragments: list[str]
) -> None:
    """A bad override is refused naming the file before any step runs: nothing changes."""
    url = make_url(dialect)
    with make_app(project, url, override=override) as (app, alembic, _):
        result = app.test_cli_runner().invoke(args=["db", "upgrade"])
        with app.app_context(), pytest.raises(ScriptDirectoryError) as caught:
            alembic.upgrade()
        with app.app_context(), pytest.raises(ScriptDirectoryError):
            alembic.upgrade(sql=True)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    path = str(project / "migrations" / "b2_alter.py")
    assert path in errors[0]
    assert "bind 'default'" in errors[0]
    assert caught.value.path == path
    assert caught.value.revision == "b2"
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert version_rows(url) == set()  # not even a1, the good revision before it
