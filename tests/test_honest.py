"""Honest under failure: every failure reported, partial work stated, signals and mid-run
errors keep the summary, offline SQL in the plan's order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import URL_APP
from conftest import version_rows
from flask import Flask

from flask_alembic.errors import MigrationFailedError
from flask_alembic.errors import PlanChangedError
from flask_alembic.errors import PlanError

REVISION = '''\
"""{message}"""

import os
import time

import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = {depends!r}


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


def write(
    root: Path,
    bind: str,
    rev: str,
    body: str = "pass",
    *,
    down: str | None = None,
    depends: str | None = None,
    message: str = "step",
) -> None:
    """A revision of ``bind`` (its first when ``down`` is None)."""
    folder = root / "migrations" if bind == "default" else root / "migrations" / bind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{rev}_step.py").write_text(
        REVISION.format(
            message=message,
            rev=rev,
            down=down,
            labels=None if down else (bind,),
            depends=depends,
            body=textwrap.indent(textwrap.dedent(body).strip(), "    "),
        )
    )


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


SLOW_FAIL = """
time.sleep(0.5)
op.execute("INSERT INTO no_such_table_{name} VALUES (1)")
"""


def test_side_by_side_failures_each_reported(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """Two binds failing in one parallel run are each reported failed, with their errors."""
    urls = {"default": make_url(), "other": make_url()}
    app, _ = make_app(urls)
    for name in urls:
        write(project, name, f"{name}01", SLOW_FAIL.format(name=name))
    result = run(app, "upgrade", "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert not data["ok"]
    errors = {b["bind"]: b["error"] for b in data["binds"]}
    assert "no_such_table_default" in errors["default"]
    assert "no_such_table_other" in errors["other"]
    assert {b["bind"]: b["failed"]["revision"] for b in data["binds"]} == {
        "default": "default01",
        "other": "other01",
    }
    assert data["not_run"] == []
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "Failed: default: base -> default01" in result.stderr
    assert "Failed: other: base -> other01" in result.stderr
    assert "Not run" not in result.stderr
    assert "Upgrade failed on 2 binds" in result.stderr
    assert "no_such_table_default" in result.stderr
    assert "no_such_table_other" in result.stderr
    assert "Nothing was applied" in result.stderr


def test_nothing_applied_only_when_nothing_was(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """When another bind committed a step, the failure does not say nothing was applied."""
    urls = {"default": make_url(), "other": make_url()}
    app, _ = make_app(urls)
    write(project, "default", "default01")
    write(project, "other", "other01", "time.sleep(0.3)\nop.execute('INSERT INTO nope VALUES (1)')")
    result = run(app, "upgrade")
    assert result.exit_code == 1, result.output
    assert "Nothing was applied" not in result.stderr
    assert "Steps applied before it are kept" in result.stderr
    assert version_rows(urls["default"]) == {"default01"}


def test_plan_changed_mid_run_keeps_what_committed(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """A bind moved by someone else during the run: the summary lists what committed."""
    urls = {"default": make_url(), "other": make_url()}
    other_file = urls["other"].removeprefix("sqlite:///")
    app, alembic = make_app(urls)
    write(
        project,
        "default",
        "default01",
        f"""
        import sqlite3
        moved = sqlite3.connect({other_file!r})
        moved.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        moved.execute("INSERT INTO alembic_version VALUES ('other01')")
        moved.commit()
        moved.close()
        """,
    )
    write(project, "other", "other01", "op.create_table('t', sa.Column('id', sa.Integer))")
    result = run(app, "upgrade", "--no-lock", "--parallel", "1", "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    applied = {b["bind"]: [s["revision"] for s in b["applied"]] for b in data["binds"]}
    assert applied == {"default": ["default01"], "other": []}
    other = next(b for b in data["binds"] if b["bind"] == "other")
    assert "another process changed it" in other["error"]
    assert "Bind 'other' is at other01, not at base as planned" in result.stderr
    assert "t" not in table_names(urls["other"])

    # The same through the Python API: a PlanError that carries the result.
    write(project, "default", "default02", down="default01")
    write(project, "other", "other02", down="other01")
    with app.app_context():
        plan = alembic.plan("upgrade", "heads")
        assert [s.revision for s in plan.steps] == ["default02", "other02"]
        alembic.stamp("other02", "other")  # as another process would have
        with pytest.raises(PlanError) as caught:
            alembic.run_plan(plan, parallel=1)
    assert isinstance(caught.value, PlanChangedError)
    assert isinstance(caught.value, MigrationFailedError)
    assert caught.value.result is not None
    assert [s.revision for s in caught.value.result.applied] == ["default02"]


def test_offline_sql_in_plan_order(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """--sql writes a dependency's block first (last for a downgrade), with BEGIN/COMMIT."""
    urls = {"default": make_url(), "other": make_url()}
    app, _ = make_app(urls)
    write(project, "other", "other01", "op.create_table('o', sa.Column('id', sa.Integer))")
    write(
        project,
        "default",
        "default01",
        "op.create_table('d', sa.Column('id', sa.Integer))",
        depends="other01",
    )
    result = run(app, "upgrade", "--sql", "--with-dependencies", "--bind", "default")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.index("-- bind: other") < text.index("-- bind: default")
    assert text.index("CREATE TABLE o") < text.index("CREATE TABLE d")
    assert text.count("BEGIN;") == 2
    assert text.count("COMMIT;") == 2
    result = run(app, "downgrade", "--sql", "heads:base")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.index("-- bind: default") < text.index("-- bind: other")


def test_offline_sql_never_connects(make_app: MakeApp, project: Path, tmp_path: Path) -> None:
    """--sql renders the SQL without connecting: with databases that cannot be reached (a
    SQLite file in a missing folder, a closed PostgreSQL port) it still exits 0.

    Guards the offline path of upgrade, downgrade and stamp: reading a version table, or
    taking a migration lock, there makes these commands fail.
    """
    missing = tmp_path / "no-such-folder" / "app.db"
    urls = {
        "default": f"sqlite:///{missing}",
        "other": "postgresql+psycopg://app:pw@127.0.0.1:9/none",
    }
    app, _ = make_app(urls)
    write(project, "default", "default01", "op.create_table('d', sa.Column('id', sa.Integer))")
    write(project, "other", "other01", "op.create_table('o', sa.Column('id', sa.Integer))")
    expected = {
        ("upgrade", "--sql"): [
            "-- bind: default",
            "CREATE TABLE alembic_version (",
            "-- Running upgrade  -> default01",
            "CREATE TABLE d (",
            "-- bind: other",
            "CREATE TABLE alembic_version (",
            "-- Running upgrade  -> other01",
            "CREATE TABLE o (",
        ],
        ("downgrade", "--sql", "heads:base"): [
            "-- bind: default",
            "-- Running downgrade default01 -> ",
            "DELETE FROM alembic_version WHERE alembic_version.version_num = 'default01';",
            "-- bind: other",
            "-- Running downgrade other01 -> ",
            "DELETE FROM alembic_version WHERE alembic_version.version_num = 'other01';",
        ],
        ("stamp", "--sql", "heads"): [
            "-- bind: default",
            "CREATE TABLE alembic_version (",
            "-- Running stamp_revision  -> default01",
            "-- bind: other",
            "CREATE TABLE alembic_version (",
            "-- Running stamp_revision  -> other01",
        ],
    }
    for args, lines in expected.items():
        result = run(app, *args)
        assert (result.exit_code, result.stderr) == (0, ""), args
        shown = result.stdout.splitlines()
        assert [line for line in shown if line.startswith(("-- ", "CREATE TABLE ", "DELETE "))] == (
            lines
        ), args
    assert not missing.parent.exists()


def _flask(project: Path, url_env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    (project / "sigapp.py").write_text(URL_APP)
    env = {**os.environ, **url_env, "FLASK_APP": "sigapp:create_app"}
    env.pop("FLASK_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the migration never started"
        time.sleep(0.02)


MARK_THEN_SLEEP = """
open(os.path.join({folder!r}, "started-{name}"), "w").close()
time.sleep({seconds})
"""


def test_signal_during_last_step_reports_success(make_url: MakeURL, project: Path) -> None:
    """SIGINT during the last step: it commits, and the run says everything was applied."""
    url = make_url()
    write(
        project,
        "default",
        "default01",
        MARK_THEN_SLEEP.format(folder=str(project), name="default", seconds=1.0),
    )
    process = _flask(project, {"URL_DEFAULT": url}, "upgrade")
    try:
        _wait_for(project / "started-default", process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "default: upgraded base -> default01" in stderr
    assert "run the command again" not in stderr.lower()
    assert version_rows(url) == {"default01"}


def test_second_signal_side_by_side_keeps_summary(make_url: MakeURL, project: Path) -> None:
    """Two signals while binds run side by side: the summary still prints, exit 130."""
    urls = {"default": make_url(), "other": make_url()}
    for name in urls:
        write(
            project,
            name,
            f"{name}01",
            MARK_THEN_SLEEP.format(folder=str(project), name=name, seconds=1.5),
        )
        write(project, name, f"{name}02", down=f"{name}01")
    process = _flask(
        project, {f"URL_{n.upper()}": u for n, u in urls.items()}, "upgrade", "--parallel", "2"
    )
    try:
        for name in urls:
            _wait_for(project / f"started-{name}", process)
        process.send_signal(signal.SIGINT)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Aborted!" not in stderr
    assert "default: upgraded base -> default01" in stderr
    assert "other: upgraded base -> other01" in stderr
    assert "Not run: default: default01 -> default02" in stderr
    assert "interrupted by SIGINT" in stderr
    for name, url in urls.items():
        assert version_rows(url) == {f"{name}01"}


def test_offline_sql_keeps_interleaved_order(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """A plan that goes back and forth between binds is written in segments, in order."""
    urls = {"default": make_url(), "other": make_url()}
    app, _ = make_app(urls)
    table = "op.create_table('{}', sa.Column('id', sa.Integer))"
    write(project, "default", "dd0001", table.format("td1"))
    write(project, "default", "dd0002", table.format("td2"), down="dd0001")
    write(project, "other", "ee0001", table.format("te1"))
    write(project, "other", "ee0002", table.format("te2"), down="ee0001", depends="dd0002")
    write(project, "default", "dd0003", table.format("td3"), down="dd0002", depends="ee0002")
    result = run(app, "upgrade", "--sql")
    assert result.exit_code == 0, result.output
    text = result.stdout
    headers = [line for line in text.splitlines() if line.startswith("-- bind:")]
    assert headers == ["-- bind: default", "-- bind: other", "-- bind: default"]
    order = [text.index(f"CREATE TABLE {name}") for name in ("td1", "td2", "te1", "te2", "td3")]
    assert order == sorted(order)
    result = run(app, "upgrade", "--sql", "--output-dir", str(project / "sql"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (project / "sql").iterdir()) == [
        "1-default.sql",
        "2-other.sql",
        "3-default.sql",
    ]
    assert "td3" in (project / "sql" / "3-default.sql").read_text()
    result = run(app, "downgrade", "--sql", "heads:base")
    assert result.exit_code == 0, result.output
    text = result.stdout
    order = [
        text.index(f"-- Running downgrade {rev}")
        for rev in ("dd0003", "ee0002", "ee0001", "dd0002", "dd0001")
    ]
    assert order == sorted(order)


def test_idle_connection_between_a_binds_steps(make_url: MakeURL, project: Path) -> None:
    """A bind's connection closed by the server while another bind ran is taken anew."""
    import sqlalchemy as sa

    from flask_alembic import Alembic

    urls = {"default": make_url("postgresql"), "other": make_url("postgresql")}
    engines = {
        name: sa.create_engine(url, connect_args={"options": "-c idle_session_timeout=1000"})
        for name, url in urls.items()
    }
    metadata = sa.MetaData()
    app = Flask("idle", root_path=str(project))
    Alembic(app, engines=engines, metadatas=dict.fromkeys(engines, metadata))
    write(project, "default", "dd0001")
    write(project, "other", "ee0001", "time.sleep(2.5)", depends="dd0001")
    write(project, "default", "dd0002", down="dd0001", depends="ee0001")
    try:
        result = run(app, "upgrade", "--parallel", "1")
    finally:
        for engine in engines.values():
            engine.dispose()
    assert result.exit_code == 0, result.output
    assert version_rows(urls["default"]) == {"dd0002"}
    assert version_rows(urls["other"]) == {"ee0001"}


def test_binds_that_never_ran_say_so(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """A bind whose turn never came is 'not run' in the summary, not 'upgraded X -> X'."""
    urls = {"default": make_url(), "other": make_url()}
    app, _ = make_app(urls)
    write(project, "default", "default01", "op.execute('INSERT INTO nope VALUES (1)')")
    write(project, "other", "other01")
    result = run(app, "upgrade", "--parallel", "1")
    assert result.exit_code == 1, result.output
    assert "other: not run (at base)" in result.stderr
    assert "other: upgraded" not in result.stderr
    assert "Not run: other: base -> other01" in result.stderr
