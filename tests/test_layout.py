"""Tables that fit: ids whole, one line per row at 80 and 160 columns, text shortened in
the middle, columns left out by priority; NO_COLOR; show in full; the docs' examples."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from flask import Flask

from flask_alembic.layout import cells
from flask_alembic.layout import Column
from flask_alembic.layout import fit
from flask_alembic.layout import ID
from flask_alembic.layout import shorten_middle
from flask_alembic.layout import shorten_url
from flask_alembic.layout import TEXT
from flask_alembic.report import Output

REPOSITORY = Path(__file__).parent.parent
WIDTHS = [80, 160]
#: A custom --rev-id of 32 characters, and ids of Alembic's usual 12.
LONG = "2026_12_01_page_view_referrer_id"
R1, R2, A1, B1, B2, B3 = (
    "1a2b3c4d5e6f",
    "2b3c4d5e6f70",
    "9e8d7c6b5a40",
    "5f4e3d2c1b0a",
    "72b19fe32137",
    "e7891c847d68",
)
DOWN = "postgresql+psycopg://reporting_user:secret@127.0.0.1:9/reporting_warehouse_production_eu"
MESSAGE = "add email and display name to user, with a unique index on email and a backfill"
#: Colour codes: foreground, background, 256 colours and true colour.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def schema(table: str) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(table, metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def demo(make_app: MakeApp, make_url: MakeURL) -> tuple[Flask, Any]:
    """Binds in every state: up to date, pending (with a 32-character id that depends on
    another bind), multiple heads, unreachable (a long PostgreSQL URL)."""
    urls = {
        "default": make_url(),
        "analytics": make_url(),
        "billing": make_url(),
        "reports": DOWN,
    }
    metadatas = {name: schema(f"{name}_t") for name in urls}
    app, alembic = make_app(urls, metadatas)
    with app.app_context():
        alembic.revision("create user", bind="default", rev_id=R1)
        alembic.revision(MESSAGE, empty=True, bind="default", rev_id=R2)
        alembic.revision("page views", bind="analytics", rev_id=A1)
        alembic.revision("invoices", bind="billing", rev_id=B1)
        alembic.upgrade(bind=["default", "analytics", "billing"])
        alembic.revision(
            "page view referrer\n\nKeeps where a visitor came from,\nfor the weekly report.",
            empty=True,
            bind="analytics",
            rev_id=LONG,
            depend=R2,
            label="referrers",
        )
        alembic.revision("tax", empty=True, bind="billing", rev_id=B2)
        alembic.revision("fx", empty=True, bind="billing", rev_id=B3, parent=B1, splice=True)
    return app, alembic


def recording(width: int) -> tuple[Output, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Output(stdout=out, stderr=err, rich=True, width=width), out, err


def plain(text: str) -> list[str]:
    from rich.text import Text

    return [line.rstrip() for line in Text.from_ansi(text).plain.splitlines()]


def body(lines: list[str]) -> list[str]:
    """A table's rows: the lines after the rule under its header, while they have cells."""
    start = next(i for i, line in enumerate(lines) if "╇" in line) + 1
    rows = []
    for line in lines[start:]:
        if "│" not in line:
            break
        rows.append(line)
    return rows


def cells_of(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("│")]


def assert_fits(lines: list[str], width: int) -> None:
    for line in lines:
        assert cells(line) <= width, line


# -- the fitting itself ------------------------------------------------------------------


def test_shorten_middle_counts_cells() -> None:
    """Text is cut in its middle to the cells asked, wide characters counting two."""
    url = "postgresql+psycopg://user:***@db.example.com:5432/test"
    short = shorten_middle(url, 20)
    assert short == "postgresql…5432/test"
    assert shorten_middle(url, len(url)) == url
    wide = "データベース移行の記録"  # 11 characters, 22 cells
    short = shorten_middle(wide, 9)
    assert cells(short) <= 9
    assert short == "デー…記録"


def test_shorten_url_keeps_the_database_name() -> None:
    """A URL too wide loses its query string before anything else, so its end is still
    the database name (Flask-SQLAlchemy adds ?charset=utf8mb4 to every MySQL URL)."""
    url = "mysql+pymysql://root@127.0.0.1:3306/shop?charset=utf8mb4"
    assert shorten_url(url, len(url)) == url
    assert shorten_url(url, 44) == "mysql+pymysql://root@127.0.0.1:3306/shop?…"
    short = shorten_url(url, 20)
    assert cells(short) <= 20
    assert short.endswith("/shop")
    assert shorten_url("sqlite:////srv/app/instance/billing.db", 20).endswith("illing.db")
    fitted = fit([Column(header="database", values=[url], least=16, url=True)], 30)
    assert fitted.columns[0].values[0].endswith("/shop")


def test_fit_drops_by_priority_and_never_cuts_ids() -> None:
    """Idle columns go first, then text shrinks to its floor, then columns by priority."""
    columns = [
        Column(header="bind", values=["analytics"]),
        Column(header="database", values=[DOWN], least=16),
        Column(header="current", kind=ID, values=[LONG]),
        Column(header="heads", kind=ID, values=[f"{B2}, {B3}"]),
        Column(header="version table", values=["alembic_version"], idle=True),
    ]
    drop = ["version table", "database", "heads"]
    wide = fit(columns, 200, drop)
    assert [c.header for c in wide.columns] == [c.header for c in columns]
    assert wide.columns[1].values == [DOWN]
    middle = fit(columns, 110, drop)
    assert [c.header for c in middle.columns] == ["bind", "database", "current", "heads"]
    assert middle.left_out == []  # the idle column lost nothing
    assert middle.width <= 110
    database = middle.columns[1].values[0]
    assert "…" in database
    assert database.startswith("postgresql+")
    assert database.endswith("_eu")
    # Without heads (two ids), the URL fits again: the column left out first comes back.
    back = fit(columns, 70, drop)
    assert [c.header for c in back.columns] == ["bind", "database", "current"]
    assert back.left_out == ["heads"]
    assert back.width <= 70
    narrow = fit(columns, 60, drop)
    assert [c.header for c in narrow.columns] == ["bind", "current"]
    assert narrow.left_out == ["database", "heads"]
    assert narrow.columns[1].values == [LONG]
    assert fit(columns, 20, drop).columns[1].values == [LONG]  # wider than asked, but whole
    assert columns[0].kind == TEXT


# -- Rich tables at 80 and 160 columns ---------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_status_one_line_per_bind(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """status: each bind one line, ids whole, state 'pending' beside its count, the
    columns left out said on stderr; a wider terminal shows the URL shortened in the middle."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        output, out, err = recording(width)
        output.status_table(alembic.status())
    lines = plain(out.getvalue())
    assert lines[0] == "database status"
    assert_fits(lines, width)
    rows = body(lines)
    assert [cells_of(r)[0] for r in rows] == ["default", "analytics", "billing", "reports"]
    header = cells_of(lines[1].replace("┃", "│"))
    by_bind = {cells_of(r)[0]: dict(zip(header, cells_of(r), strict=True)) for r in rows}
    assert by_bind["analytics"]["current"] == A1
    assert by_bind["analytics"]["state"] == "pending"  # not "1 pending"
    assert by_bind["analytics"]["pending"] == "1"
    assert by_bind["billing"]["state"] == "multiple heads"
    if width == 160:
        assert by_bind["analytics"]["heads"] == LONG
        assert by_bind["billing"]["heads"] == f"{B2}, {B3}"
        database = by_bind["reports"]["database"]
        assert "…" in database
        assert database.startswith("postgresql+psycopg://")
        assert database.endswith("_eu")
        assert "secret" not in out.getvalue()
        assert "Left out" not in err.getvalue()
    else:
        # heads (32-character ids) cannot fit; once it is out, the URL fits again, shortened.
        assert header == ["bind", "database", "current", "pending", "state"]
        assert "Left out to fit 80 columns: heads." in plain(err.getvalue())
        assert "…" in by_bind["reports"]["database"]
    assert "version table" not in header  # every bind uses alembic_version


def test_narrow_terminal_keeps_ids_whole(make_app: MakeApp, make_url: MakeURL) -> None:
    """A terminal too narrow for the columns that stay: the table is drawn wider than it
    rather than cutting an id."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        output, out, _ = recording(40)
        output.scripts("heads", alembic.heads(), alembic.bind_of)
    rows = [cells_of(r) for r in body(plain(out.getvalue()))]
    assert [r[1] for r in rows] == [R2, LONG, B2, B3] or [r[1] for r in rows] == [
        R2,
        LONG,
        B3,
        B2,
    ]


@pytest.mark.parametrize("width", WIDTHS)
def test_log_one_line_per_revision(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """log: one line per revision, ids whole, <base> as parent, the bind's own label
    not repeated (another label is), long messages shortened in the middle."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        output, out, err = recording(width)
        output.scripts("history", alembic.log(), alembic.bind_of, applied=alembic.applied(None))
    lines = plain(out.getvalue())
    assert lines[0] == "history"
    assert_fits(lines, width)
    rows = [cells_of(r) for r in body(lines)]
    assert [r[1] for r in rows] == [R2, R1, LONG, A1, B2, B3, B1] or [r[1] for r in rows] == [
        R2,
        R1,
        LONG,
        A1,
        B3,
        B2,
        B1,
    ]
    notes = {r[1]: r[-1] for r in rows}
    assert notes[R1] == "applied"
    message = {r[1]: r[-2] for r in rows}[R2]
    assert "…" in message
    assert message.startswith("add emai")
    assert message.endswith("ackfill")
    if width == 160:
        assert rows[1][2] == "<base>"
        assert notes[LONG] == "head, label: referrers"
        assert cells(lines[2]) == 160
    else:
        assert notes[LONG].startswith("head")
        assert "Left out to fit 80 columns: parent." in plain(err.getvalue())


@pytest.mark.parametrize("width", WIDTHS)
def test_plan_and_summary_keep_ids(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """The plan and the summary: one line per step and per bind, ids whole."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        plan = alembic.plan("upgrade", "heads", bind=["analytics", "billing"])
        output, out, err = recording(width)
        output.plan(plan)
        result = alembic.run_plan(plan)
        output.result(result)
    lines = plain(out.getvalue())
    assert lines[0] == "upgrade plan (3 steps)"
    assert_fits(lines, width)
    steps = [cells_of(r)[:3] for r in body(lines)]
    assert steps[0] == ["1", "analytics", f"{A1} -> {LONG}"]
    assert [s[:2] for s in steps[1:]] == [["2", "billing"], ["3", "billing"]]
    summary = plain(err.getvalue())
    assert_fits(summary, width)
    rows = {cells_of(r)[0]: cells_of(r) for r in body(summary)}
    assert set(rows) == {"analytics", "billing"}
    assert LONG in rows["analytics"]
    assert {B2, B3} == set(next(c for c in rows["billing"] if B2 in c).split(", "))


@pytest.mark.parametrize("width", WIDTHS)
def test_current_has_a_title(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """current is titled like the other tables, one line per bind; -v adds the URL."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        output, out, _ = recording(width)
        output.current(alembic.status(), verbose=True)
    lines = plain(out.getvalue())
    assert lines[0] == "current revisions"
    assert_fits(lines, width)
    rows = [cells_of(r) for r in body(lines)]
    assert [r[0] for r in rows] == ["default", "analytics", "billing", "reports"]
    assert rows[1][1:3] == [A1, "1 pending"]  # no pending column here: the count stays


@pytest.mark.parametrize("width", WIDTHS)
def test_show_in_full(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """show on a terminal: every field the plain form has, ids whole, the dependency with
    its bind, the docstring in full; a long path wraps instead of being cut."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        script = alembic.show(LONG)
        output, out, _ = recording(width)
        output.scripts("revisions", [script], alembic.bind_of, verbose=True)
    lines = plain(out.getvalue())
    assert_fits(lines, width)
    fields: dict[str, str] = {}
    key = ""
    for line in lines[2:]:
        name, value = line[:15].strip(), line[15:]
        key = name or key
        fields[key] = (fields[key] + "\n" + value) if key in fields else value
    assert fields["revision"] == LONG
    assert fields["bind"] == "analytics"
    assert fields["parent"] == A1
    assert fields["depends on"] == f"{R2} (bind default)"
    assert fields["branch labels"] == "analytics, referrers"
    assert fields["notes"] == "head"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", fields["created"])
    assert fields["path"].replace("\n", "") == script.path
    assert fields["message"] == (
        "page view referrer\n\nKeeps where a visitor came from,\nfor the weekly report."
    )
    assert "Revision ID" not in out.getvalue()
    assert "…" not in out.getvalue()
    with app.app_context():
        output, out, _ = recording(width)
        output.scripts("heads", alembic.heads(), alembic.bind_of, verbose=True)
    text = "\n".join(plain(out.getvalue()))
    for rev in (R2, LONG, B2, B3):
        assert f"revision       {rev}\n" in text


def test_show_a_merge_of_long_ids(make_app: MakeApp, make_url: MakeURL) -> None:
    """A merge of two 32-character ids at 80 columns: each parent whole, one a line."""
    app, alembic = make_app({"default": make_url()}, {"default": schema("t")})
    left, right = "a" * 30 + "01", "b" * 30 + "02"
    with app.app_context():
        root = alembic.revision("root", rev_id=R1)[0].revision
        alembic.revision("left", empty=True, rev_id=left)
        alembic.revision("right", empty=True, rev_id=right, parent=root, splice=True)
        merge = alembic.merge(rev_id=R2)
        output, out, _ = recording(80)
        output.scripts("revisions", [merge], alembic.bind_of, verbose=True)
    lines = plain(out.getvalue())
    at = next(i for i, line in enumerate(lines) if line.startswith("merges"))
    assert lines[at].split() == ["merges", left]
    assert lines[at + 1].split() == [right]


def test_plain_forms(make_app: MakeApp, make_url: MakeURL) -> None:
    """Plain lines: the bind's own label is not repeated, another label is."""
    app, alembic = demo(make_app, make_url)
    with app.app_context():
        out = io.StringIO()
        output = Output(stdout=out, stderr=io.StringIO(), rich=False)
        output.scripts("heads", alembic.heads(bind="analytics"), alembic.bind_of)
    assert out.getvalue() == (
        f"analytics: {A1} -> {LONG} (head, label: referrers), page view referrer\n"
    )


# -- through the command line ------------------------------------------------------------


def run(app: Flask, *args: str, **env: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args], env=env)


@pytest.mark.parametrize("width", WIDTHS)
def test_cli_rich_at_width(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """FORCE_COLOR and COLUMNS: the commands' tables fit, ids whole, one line a row."""
    app, _ = demo(make_app, make_url)
    env = {"FORCE_COLOR": "1", "COLUMNS": str(width), "NO_COLOR": ""}
    result = run(app, "status", **env)
    lines = plain(result.stdout)
    assert_fits(lines, width)
    assert [cells_of(r)[0] for r in body(lines)] == ["default", "analytics", "billing", "reports"]
    result = run(app, "heads", **env)
    lines = plain(result.stdout)
    assert_fits(lines, width)
    assert [cells_of(r)[1] for r in body(lines)].count(LONG) == 1
    assert len(body(lines)) == 4
    result = run(app, "show", LONG, **env)
    assert f"revision       {LONG}" in plain(result.stdout)
    result = run(app, "upgrade", "--plan", "--bind", "analytics", **env)
    assert f"{A1} -> {LONG}" in "\n".join(plain(result.stdout))


@pytest.mark.parametrize("width", [80, 100])
def test_bind_names_whole(make_app: MakeApp, tmp_path: Path, width: int) -> None:
    """A bind name is what --bind takes: the status table leaves the database out rather
    than cut 'analytics' to 'anal…ics', and a URL that is shortened keeps its database
    name, not its query string."""
    folder = tmp_path / "a-folder-name-long-enough-to-make-the-urls-wide"
    folder.mkdir()
    urls = {
        "default": f"sqlite:///{folder / 'shop.db'}?timeout=30",
        "analytics": f"sqlite:///{folder / 'analytics.db'}?timeout=30",
    }
    app, alembic = make_app(urls, {"default": schema("user"), "analytics": schema("event")})
    with app.app_context():
        alembic.revision("initial")
        alembic.upgrade()
    result = run(app, "status", FORCE_COLOR="1", COLUMNS=str(width))
    lines = plain(result.stdout)
    assert_fits(lines, width)
    header = cells_of(lines[1].replace("┃", "│"))
    rows = [dict(zip(header, cells_of(r), strict=True)) for r in body(lines)]
    assert [r["bind"] for r in rows] == ["default", "analytics"]
    if width == 80:
        assert "database" not in header
        assert "Left out to fit 80 columns: database." in plain(result.stderr)
    else:
        for row in rows:
            assert "…" in row["database"]
            assert "timeout" not in row["database"]
            assert row["database"].endswith(".db"), row


def _pty_run(app_dir: Path, args: list[str], env: dict[str, str]) -> str:
    """``python -m flask ...`` with a pseudo-terminal as stdout and stderr: what it wrote."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "db", *args],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
        )
        os.close(follower)
        chunks = []
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=30) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_no_color_keeps_the_layout(tmp_path: Path) -> None:
    """NO_COLOR on a terminal: the same Rich table, bold kept, no colour codes; without
    it the table is coloured; TERM=dumb and a pipe give plain lines."""
    db = tmp_path / "app.db"
    (tmp_path / "app.py").write_text(
        "import sqlalchemy as sa\nfrom flask import Flask\nfrom flask_alembic import Alembic\n"
        "metadata = sa.MetaData()\n"
        "sa.Table('t', metadata, sa.Column('id', sa.Integer, primary_key=True))\n"
        f"app = Flask('app', root_path={str(tmp_path)!r})\n"
        f"Alembic(app, engines=sa.create_engine({f'sqlite:///{db}'!r}), metadatas=metadata)\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"NO_COLOR", "FORCE_COLOR", "COLUMNS", "FLASK_APP"}
    }
    env |= {"TERM": "xterm-256color", "COLUMNS": "80"}
    coloured = _pty_run(tmp_path, ["status"], env)
    assert "━" in coloured
    assert COLOUR.search(coloured)
    no_color = _pty_run(tmp_path, ["status"], env | {"NO_COLOR": "1"})
    assert "━" in no_color
    assert "database status" in no_color
    assert not COLOUR.search(no_color), repr(no_color)
    assert "\x1b[1m" in no_color  # bold is not a colour
    dumb = _pty_run(tmp_path, ["status"], env | {"TERM": "dumb"})
    assert "━" not in dumb
    assert "\x1b[" not in dumb
    assert "default: state=up to date" in dumb
    piped = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert piped.stdout.startswith("default: state=up to date;")
    forced = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", "status"],
        cwd=tmp_path,
        env=env | {"FORCE_COLOR": "1", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "━" in forced.stdout
    assert COLOUR.search(forced.stdout)
    forced_dumb = _pty_run(tmp_path, ["status"], env | {"TERM": "dumb", "FORCE_COLOR": "1"})
    assert "━" in forced_dumb
    assert COLOUR.search(forced_dumb), repr(forced_dumb)  # FORCE_COLOR: in colour all the same


# -- docs/output.md ------------------------------------------------------------------------


def test_output_examples_are_current() -> None:
    """docs/output.md's generated examples are what the commands print today."""
    done = subprocess.run(
        [sys.executable, str(REPOSITORY / "scripts" / "render_output.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "TMPDIR"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
