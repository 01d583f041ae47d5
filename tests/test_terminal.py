"""Every command at 80 and 160 columns, on a terminal (Rich) and in plain mode.

One sweep over the commands that print revisions, binds and URLs: on a terminal no line is
wider than the terminal, every revision id appears whole (never wrapped or cut with ``…``),
and no password appears; in plain mode values are printed in full, without escape codes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from flask import Flask
from rich.cells import cell_len
from rich.text import Text

#: The default bind's ids: Alembic's usual 12 hex characters.
FIRST = "c86a91639a03"
SECOND = "5f0e4b2d7c11"
#: A custom --rev-id, longer than any column would give it.
LONG = "20261206_add_reporting_events_ab"
MESSAGE = "add the event table used by the nightly reporting job for every tenant"


def schema(*tables: str) -> sa.MetaData:
    metadata = sa.MetaData()
    for name in tables:
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def run(app: Flask, width: int | None, *args: str) -> Result:
    env = {"FORCE_COLOR": "1", "COLUMNS": str(width)} if width else {"NO_COLOR": "1"}
    return app.test_cli_runner().invoke(args=["db", *args], env=env)


@pytest.fixture
def app(make_app: MakeApp, make_url: MakeURL, dialect: str, tmp_path: Path) -> Flask:
    """A default SQLite bind at its head, and an ``analytics_reporting`` bind on ``dialect``
    (through a URL with a password on PostgreSQL) with one revision pending."""
    url = sa.make_url(make_url(dialect))
    if dialect == "postgresql":  # trust authentication: any password is accepted
        url = url.set(password="pa55word-not-shown")
    metadatas = {"default": schema("user"), "analytics_reporting": schema("event")}
    app, alembic = make_app(
        {
            "default": make_url("sqlite"),
            "analytics_reporting": url.render_as_string(hide_password=False),
        },
        metadatas,
    )
    with app.app_context():
        alembic.revision("create users", bind="default", rev_id=FIRST)
        alembic.revision("second", bind="default", rev_id=SECOND, empty=True)
        alembic.revision("create events", bind="analytics_reporting", rev_id="e0e0e0e0e0e0")
        alembic.upgrade()
        alembic.revision(MESSAGE, bind="analytics_reporting", rev_id=LONG, empty=True)
    return app


#: A bind name long enough to be shortened in a table that needs room.
BINDS = ("default", "analytics_reporting")
OWN = {"default": {FIRST, SECOND}, "analytics_reporting": {"e0e0e0e0e0e0", LONG}}

#: (command, the ids it must show whole).
COMMANDS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    # status leaves heads out at 80 columns (a 32-character head), and says so.
    (("status",), (SECOND, "e0e0e0e0e0e0")),
    (("current",), (SECOND, "e0e0e0e0e0e0")),
    (("current", "-v"), (SECOND, "e0e0e0e0e0e0")),
    (("log",), (FIRST, SECOND, "e0e0e0e0e0e0", LONG)),
    (("log", "-v"), (FIRST, SECOND, "e0e0e0e0e0e0", LONG)),
    (("heads",), (SECOND, LONG)),
    (("heads", "-v"), (SECOND, LONG)),
    (("show", LONG), (LONG, "e0e0e0e0e0e0")),
    (("show", FIRST), (FIRST,)),
    (("upgrade", "--plan"), ("e0e0e0e0e0e0", LONG)),
    (("downgrade", "--plan", "--bind", "default", "-1"), (SECOND, FIRST)),
]


@pytest.mark.parametrize("width", [80, 160])
def test_terminal_lines_fit_and_ids_stay_whole(app: Flask, width: int) -> None:
    for args, ids in COMMANDS:
        result = run(app, width, *args)
        assert result.exit_code == 0, (args, result.output)
        text = Text.from_ansi(result.output).plain
        where = f"flask db {' '.join(args)} at {width} columns:\n{text}"
        for line in text.splitlines():
            assert cell_len(line) <= width, where
        for revision in ids:
            assert revision in text, where
        for bind in BINDS:  # a bind name is what --bind takes: never shortened
            if any(revision in OWN[bind] for revision in ids):
                assert bind in text, where
        assert "pa55word" not in result.output, where


def test_plain_values_in_full(app: Flask) -> None:
    for args, ids in COMMANDS:
        result = run(app, None, *args)
        assert result.exit_code == 0, (args, result.output)
        assert "\x1b[" not in result.output
        for revision in ids:
            assert revision in result.output, (args, result.output)
        assert "pa55word" not in result.output


def test_plan_between_two_long_ids_fits_80_columns(make_app: MakeApp, make_url: MakeURL) -> None:
    """A step from one 32-character id to another fits 80 columns: the message and then the
    step numbers give way, each step stays one line, and both ids stay whole."""
    after = "20261207_backfill_reporting_evts"
    app, alembic = make_app({"default": make_url()}, {"default": schema("user")})
    with app.app_context():
        alembic.revision("create users", rev_id=LONG)
        alembic.upgrade()
        alembic.revision(MESSAGE, rev_id=after, empty=True)
    result = run(app, 80, "upgrade", "--plan")
    assert result.exit_code == 0, result.output
    lines = Text.from_ansi(result.output).plain.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), lines
    assert any(line.startswith("default ") and f"{LONG} -> {after}" in line for line in lines)
    assert lines[-1] == "Left out to fit 80 columns: message, #.", lines


def test_notes_shortened_by_whole_notes(make_app: MakeApp, make_url: MakeURL) -> None:
    """At 80 columns a long label gives way as a whole note, so "applied" stays a word."""
    app, alembic = make_app({"default": make_url()}, {"default": schema("user")})
    with app.app_context():
        alembic.revision(MESSAGE, rev_id=LONG, label="reporting_events_team_x")
        alembic.upgrade()
    result = run(app, 80, "log")
    assert result.exit_code == 0, result.output
    row = next(line for line in Text.from_ansi(result.output).plain.splitlines() if LONG in line)
    assert row.rstrip().endswith("│ head, …, applied"), row


@pytest.mark.parametrize("width", [80, 160])
def test_stamp_purge_plan_fits(make_app: MakeApp, make_url: MakeURL, width: int) -> None:
    """stamp --purge --plan between two long ids: the purge is said in a note column (a
    stamp has no message), which gives way at 80 columns (said below), so the table fits
    and the ids stay whole."""
    after = "20261207_backfill_reporting_evts"
    app, alembic = make_app({"default": make_url()}, {"default": schema("user")})
    with app.app_context():
        alembic.revision("create users", rev_id=LONG)
        alembic.revision(MESSAGE, rev_id=after, empty=True)
        alembic.upgrade()
    result = run(app, width, "stamp", "--purge", "--plan", LONG)
    assert result.exit_code == 0, result.output
    lines = Text.from_ansi(result.output).plain.splitlines()
    assert all(cell_len(line) <= width for line in lines), lines
    row = next(line for line in lines if line.startswith(("1 ", "default ")))
    assert f"{after} -> {LONG}" in row, lines
    if width == 80:
        assert lines[-1] == "Left out to fit 80 columns: note, #.", lines
    else:
        assert row.rstrip().endswith("│ emptying the version table first"), lines


def test_table_wider_than_the_terminal_has_no_trailing_blanks(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    """When ids alone are wider than the terminal, the table is drawn wider, and its lines
    end at their last character: padding would wrap into blank lines on the terminal."""
    after = "20261207_backfill_reporting_evts"
    app, alembic = make_app({"default": make_url()}, {"default": schema("user")})
    with app.app_context():
        alembic.revision("create users", rev_id=LONG)
        alembic.upgrade()
        alembic.revision(MESSAGE, rev_id=after, empty=True)
    result = run(app, 60, "upgrade", "--plan")
    assert result.exit_code == 0, result.output
    lines = Text.from_ansi(result.output).plain.splitlines()
    assert lines[0] == "upgrade plan (1 step)", lines
    assert any(f"{LONG} -> {after}" in line for line in lines), lines
    assert all(line == line.rstrip() for line in lines), lines
