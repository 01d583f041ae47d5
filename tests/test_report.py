"""Reports: the status matrix, Rich and plain renderers, JSON, offline SQL per bind."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from flask import Flask

from flask_alembic.report import Output
from flask_alembic.status import BindStatus
from flask_alembic.status import State


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def run_json(app: Flask, *args: str) -> dict[str, Any]:
    result = run(app, *args, "--json")
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["version"] == 1
    assert "\x1b[" not in result.stdout
    return data


def schema(table: str) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        table, metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("x", sa.Integer)
    )
    return metadata


def two_binds(make_app: MakeApp, urls: dict[str, str], **config: object) -> tuple[Flask, Any]:
    return make_app(urls, {"default": schema("user"), "analytics": schema("event")}, **config)


def recording(width: int = 140) -> tuple[Output, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Output(stdout=out, stderr=err, rich=True, width=width), out, err


def table(text: str) -> list[list[str]]:
    """The lines of Rich output as the cells of its tables (a title line is one cell),
    without colours; the rules under the headers left out."""
    from rich.text import Text

    rows = []
    for line in Text.from_ansi(text).plain.splitlines():
        if not line.strip() or set(line) <= set("━╇┳┏┓┡┩╋┃ ─┼┬┴└┘┌┐"):
            continue
        cells = line.replace("┃", "│").strip().strip("│").split("│")
        rows.append([cell.strip() for cell in cells])
    return rows


def test_status_states(make_app: MakeApp, make_url: MakeURL) -> None:
    """Each state: up to date, pending, unknown revision, multiple heads, unreachable."""
    urls = {
        "default": make_url(),
        "analytics": make_url(),
        "audit": make_url(),
        "extra": make_url(),
        "down": "postgresql+psycopg://user:pw@127.0.0.1:9/none",
    }
    metadatas = {name: schema(name + "_t") for name in urls}
    app, alembic = make_app(urls, metadatas)
    with app.app_context():
        alembic.revision("init", bind=["default", "analytics", "audit", "extra"])
        alembic.upgrade(bind=["default", "audit", "extra"])
        root = alembic.heads(bind="extra")[0]
        alembic.revision("left", empty=True, bind="extra")
        alembic.revision("right", empty=True, bind="extra", parent=root.revision, splice=True)
    engine = sa.create_engine(urls["audit"])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'feedbeef0000'"))
    engine.dispose()

    data = run_json(app, "status")
    states = {row["bind"]: row["state"] for row in data["binds"]}
    assert states == {
        "default": "up to date",
        "analytics": "pending",
        "audit": "ahead/unknown revision",
        "extra": "multiple heads",
        "down": "unreachable",
    }
    rows = {row["bind"]: row for row in data["binds"]}
    assert rows["analytics"]["pending"] == 1
    assert rows["audit"]["current"] == ["feedbeef0000"]
    assert "feedbeef0000" in rows["audit"]["error"]
    assert "stamp" in rows["audit"]["error"]
    assert rows["down"]["database"] == "postgresql+psycopg://user:***@127.0.0.1:9/none"
    assert "Cannot connect to bind 'down'" in rows["down"]["error"]
    assert rows["extra"]["pending"] == 2
    assert set(rows["default"]) == {
        "bind",
        "database",
        "version_table",
        "current",
        "heads",
        "pending",
        "managed",
        "reason",
        "state",
        "error",
    }

    result = run(app, "status")
    assert result.exit_code == 0
    assert "\x1b[" not in result.output
    assert "down: state=unreachable" in result.stdout
    assert "analytics: state=pending; current=base" in result.stdout
    result = run(app, "status", "--check")
    assert result.exit_code == 1
    result = run(app, "status", "--check", "--bind", "default")
    assert result.exit_code == 0


def test_status_rich_table(make_app: MakeApp, make_url: MakeURL) -> None:
    """The Rich status table shows one row per bind, user data never read as markup."""
    url = make_url()
    app, alembic = make_app({"default": url}, {"default": schema("user")})
    with app.app_context():
        rev = alembic.revision("add [red] column")[0].revision
        statuses = alembic.status()
        output, out, _ = recording(width=300)
        output.status_table(statuses)
        output.scripts("history", alembic.log(), alembic.bind_of)
    assert table(out.getvalue()) == [
        ["database status"],
        ["bind", "database", "current", "heads", "pending", "state", "version table"],
        ["default", url, "base", rev, "1", "pending", "alembic_version"],
        ["history"],
        ["bind", "revision", "parent", "message", "notes"],
        ["default", rev, "<base>", "add [red] column", "head"],
    ]


def test_rich_renderers(make_app: MakeApp, make_url: MakeURL) -> None:
    """Plan, progress and summary render with Rich on a recording console."""
    app, alembic = make_app({"default": make_url()}, {"default": schema("user")})
    with app.app_context():
        rev = alembic.revision("first [bold]")[0].revision
        plan = alembic.plan("upgrade", "heads")
        output, out, err = recording()
        output.plan(plan)
        with output.progress(plan) as on_event:
            result = alembic.run_plan(plan, on_event=on_event)
        output.result(result)
    assert table(out.getvalue()) == [
        ["upgrade plan (1 step)"],
        ["#", "bind", "step", "message"],
        ["1", "default", f"base -> {rev}", "first [bold]"],
    ]
    from rich.text import Text

    # The live area (its last frame, "1 of 1 steps done") is transient: the summary follows.
    live, summary = err.getvalue().split("summary", 1)
    assert f"✓ default base -> {rev} first [bold] " in Text.from_ansi(live).plain
    title, header, row = table("summary" + summary)
    assert (title, header) == (["summary"], ["bind", "from", "to", "steps", "time"])
    assert row[:4] == ["default", "base", rev, "1"]
    assert row[4].endswith("s")
    assert float(row[4][:-1]) == pytest.approx(result["default"].elapsed, abs=0.01)


def test_json_outputs(make_app: MakeApp, make_url: MakeURL) -> None:
    """--json prints one parseable object with stable keys on every supporting command."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, _ = two_binds(make_app, urls)
    assert run(app, "revision", "init").exit_code == 0

    plan = run_json(app, "upgrade", "--plan")
    assert plan["direction"] == "upgrade"
    assert [step["bind"] for step in plan["steps"]] == ["default", "analytics"]
    assert set(plan["steps"][0]) == {
        "bind",
        "direction",
        "revision",
        "from",
        "to",
        "message",
        "path",
        "purge",
        "findings",
    }
    assert plan["steps"][0]["findings"] == []

    result = run_json(app, "upgrade")
    assert result["ok"] is True
    assert {b["bind"] for b in result["binds"]} == {"default", "analytics"}
    assert result["failed"] is None
    assert result["not_run"] == []

    again = run_json(app, "upgrade")
    assert again["binds"] == []
    assert sorted(again["unchanged"]) == ["analytics", "default"]

    current = run_json(app, "current")
    assert {b["state"] for b in current["binds"]} == {"up to date"}
    heads = run_json(app, "heads")
    assert {r["bind"] for r in heads["revisions"]} == {"default", "analytics"}
    assert all(r["is_head"] for r in heads["revisions"])
    log = run_json(app, "log")
    assert all(r["applied"] for r in log["revisions"])
    check = run_json(app, "check")
    assert check["changes_detected"] is False

    down = run_json(app, "downgrade", "--bind", "analytics")
    assert [b["bind"] for b in down["binds"]] == ["analytics"]
    assert down["binds"][0]["to"] == []
    stamp = run_json(app, "stamp", "--bind", "analytics")
    assert stamp["direction"] == "stamp"
    status = run_json(app, "status")
    assert [b["state"] for b in status["binds"]] == ["up to date", "up to date"]


def test_json_error(make_app: MakeApp, make_url: MakeURL) -> None:
    """An error with --json is a JSON object on stdout and one line on stderr."""
    app, _ = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    result = run(app, "upgrade", "nope", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["error"]["revision"] == "nope"
    assert "Unknown revision" in data["error"]["message"]
    assert result.stderr.startswith("Error: Unknown revision")


def test_json_failed_run(make_app: MakeApp, make_url: MakeURL) -> None:
    """A failing upgrade with --json reports applied, failed and not-run steps."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = two_binds(make_app, urls)
    with app.app_context():
        written = {alembic.bind_of(s): s for s in alembic.revision("init")}
    path = Path(written["analytics"].path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n", "def upgrade() -> None:\n    raise ValueError('nope')\n"
        )
    )
    result = run(app, "upgrade", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["failed"]["bind"] == "analytics"
    assert "ValueError: nope" in data["error"]
    assert data["binds"][0]["bind"] == "default"
    assert len(data["binds"][0]["applied"]) == 1


def test_check_lists_changes(make_app: MakeApp, make_url: MakeURL) -> None:
    """check shows per-bind differences and exits 1."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, _ = two_binds(make_app, urls)
    assert run(app, "revision", "init", "--bind", "default").exit_code == 0
    assert run(app, "upgrade").exit_code == 0
    result = run(app, "check")
    assert result.exit_code == 1
    assert "analytics: add table event" in result.stdout
    assert "default: no changes detected" in result.stderr
    data = run_json(app, "check")
    changes = {b["bind"]: b["changes"] for b in data["binds"]}
    assert changes["default"] == []
    assert changes["analytics"] == [{"kind": "add_table", "description": "add table event"}]


def test_revision_lists_operations(make_app: MakeApp, make_url: MakeURL) -> None:
    """revision says which files it wrote, per bind, and what it detected."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, _ = two_binds(make_app, urls)
    result = run(app, "revision", "init")
    assert result.exit_code == 0
    assert "Generated default:" in result.stderr
    assert "Generated analytics:" in result.stderr
    assert "add table user" in result.stderr
    assert "add table event" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_offline_sql_per_bind(make_app: MakeApp, make_url: MakeURL, tmp_path: Path) -> None:
    """--sql writes each bind's SQL in its own dialect, with its own version table."""
    urls = {"default": make_url("sqlite"), "analytics": make_url("postgresql")}
    app, _ = two_binds(
        make_app, urls, ALEMBIC_BINDS={"analytics": {"version_table": "analytics_version"}}
    )
    assert run(app, "revision", "init").exit_code == 0
    out = tmp_path / "sql"
    result = run(app, "upgrade", "--sql", "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["analytics.sql", "default.sql"]
    analytics = (out / "analytics.sql").read_text()
    assert "analytics_version" in analytics
    assert "BEGIN;" in analytics  # PostgreSQL: transactional DDL
    default = (out / "default.sql").read_text()
    assert "CREATE TABLE user" in default
    assert "analytics_version" not in default

    result = run(app, "upgrade", "--sql", "--bind", "analytics")
    assert "-- bind:" not in result.stdout
    assert "CREATE TABLE event" in result.stdout
    result = run(app, "upgrade", "--sql")
    assert "-- bind: default" in result.stdout
    assert "-- bind: analytics" in result.stdout
    result = run(app, "downgrade", "--sql", "--bind", "analytics", "analytics@head:base")
    assert result.exit_code == 0, result.output
    assert "DROP TABLE event" in result.stdout
    assert table_names(urls["analytics"]) == set()
    assert table_names(urls["default"]) == set()


def test_plain_output_has_no_ansi(make_app: MakeApp, make_url: MakeURL) -> None:
    """Every command's output is free of ANSI codes when stdout is not a terminal."""
    app, _ = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    for args in (
        ("revision", "init"),
        ("upgrade", "--plan"),
        ("upgrade",),
        ("status",),
        ("current", "-v"),
        ("heads",),
        ("log", "-v"),
        ("branches",),
        ("check",),
        ("downgrade", "--bind", "default"),
        ("stamp",),
        ("upgrade", "nope"),
    ):
        result = run(app, *args)
        assert "\x1b[" not in result.stdout, args
        assert "\x1b[" not in result.stderr, args
        assert "━" not in result.stdout, args


def test_bind_status_is_up_to_date() -> None:
    """BindStatus.up_to_date follows its state."""
    row = BindStatus(
        bind="default",
        url="sqlite://",
        version_table="alembic_version",
        current=("a",),
        heads=("a",),
        pending=0,
    )
    assert row.up_to_date
    assert not BindStatus(
        bind="x",
        url="u",
        version_table="t",
        current=(),
        heads=("a",),
        pending=1,
        state=State.PENDING,
    ).up_to_date
