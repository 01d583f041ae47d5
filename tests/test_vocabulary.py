"""One vocabulary across commands: the same words for the same state, targets quoted as
typed, command-line spelling in hints, each path once, ``stamp --plan``, ``--json`` on
every listing command, help that teaches, and unknown said as unknown."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import version_rows
from flask import Flask


def run(app: Flask, *args: str, **env: str) -> Result:
    """``flask db ARGS`` through the CLI runner, stdout not a terminal, 80 columns."""
    return app.test_cli_runner().invoke(args=["db", *args], env=env or None, terminal_width=80)


def run_json(app: Flask, *args: str) -> Any:
    result = run(app, *args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == 1
    return data


def schema(table: str) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(table, metadata, sa.Column("id", sa.Integer, primary_key=True))
    return metadata


def two_binds(make_app: MakeApp, urls: dict[str, str]) -> Flask:
    app, _ = make_app(urls, {"default": schema("user"), "analytics": schema("event")})
    return app


def written(result: Result) -> dict[str, str]:
    """Each new revision's bind (its folder) and id, from the paths ``revision`` prints."""
    assert result.exit_code == 0, result.output
    found = {}
    for line in result.stdout.splitlines():
        path = Path(line)
        bind = "analytics" if path.parent.name == "analytics" else "default"
        found[bind] = path.name.split("_")[0]
    return found


def last_line(result: Result) -> str:
    return plain(result.stderr).splitlines()[-1]


def plain(text: str) -> str:
    """``text`` without Rich's escape codes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


#: Plain output (a pipe), and a terminal of 80 and of 160 columns.
SCREENS = pytest.mark.parametrize(
    "env",
    [{}, {"FORCE_COLOR": "1", "COLUMNS": "80"}, {"FORCE_COLOR": "1", "COLUMNS": "160"}],
    ids=["plain", "rich-80", "rich-160"],
)


# -- status --check and current --check-heads: one wording ------------------------------


@SCREENS
def test_check_words_shared(make_app: MakeApp, make_url: MakeURL, env: dict[str, str]) -> None:
    """status --check and current --check-heads end with the same line naming the fix."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    written(run(app, "revision", "init"))
    assert run(app, "upgrade", "--bind", "default").exit_code == 0

    status = run(app, "status", "--check", **env)
    current = run(app, "current", "--check-heads", **env)
    assert (status.exit_code, current.exit_code) == (1, 1)
    line = "Not up to date: analytics is behind: run 'flask db upgrade --bind analytics'."
    assert last_line(status) == line
    assert last_line(current) == line
    # Flask-Alembic 3's words stay on stdout for the scripts that look for them.
    assert plain(current.stdout).splitlines()[-1] == "Database is not on all head revisions"

    # Every bind behind: one plain upgrade does it.
    assert run(app, "downgrade", "--bind", "default").exit_code == 0
    line = "Not up to date: default, analytics are behind: run 'flask db upgrade'."
    assert last_line(run(app, "status", "--check", **env)) == line
    assert last_line(run(app, "current", "--check-heads", **env)) == line
    # Binds chosen with --bind: the upgrade names them, so that no other bind moves.
    line = "Not up to date: analytics is behind: run 'flask db upgrade --bind analytics'."
    assert last_line(run(app, "status", "--check", "--bind", "analytics", **env)) == line
    assert last_line(run(app, "current", "--check-heads", "--bind", "analytics", **env)) == line


def test_check_and_revision_say_behind_alike(make_app: MakeApp, make_url: MakeURL) -> None:
    """check and revision refuse a bind behind its heads in the same words, with its ids."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    ids = written(run(app, "revision", "init"))
    errors = [run(app, *args, "--bind", "analytics") for args in (("check",), ("revision", "x"))]
    expected = (
        f"Error: Bind 'analytics' is at base, not at its heads ({ids['analytics']}), so its "
        "models cannot be compared with its database. Run 'flask db upgrade --bind analytics' "
        "first."
    )
    for result in errors:
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [expected]


def test_check_several_heads_says_merge(make_app: MakeApp, make_url: MakeURL) -> None:
    """A bind with several heads is told to merge, not to upgrade."""
    app, _ = make_app(make_url())
    assert run(app, "revision", "a", "--empty", "--rev-id", "aaaa").exit_code == 0
    assert run(app, "revision", "b", "--empty").exit_code == 0
    assert run(app, "upgrade").exit_code == 0
    result = run(app, "revision", "c", "--empty", "--parent", "aaaa", "--splice")
    assert result.exit_code == 0, result.output
    for args in (("status", "--check"), ("current", "--check-heads")):
        result = run(app, *args)
        assert result.exit_code == 1
        assert last_line(result) == (
            "Not up to date: default has several heads: run 'flask db merge --bind default', "
            "then 'flask db upgrade --bind default'."
        )


def test_check_unreachable_has_its_own_fix(
    make_app: MakeApp, make_url: MakeURL, tmp_path: Path
) -> None:
    """An unreachable bind is not told to upgrade."""
    urls = {"default": make_url(), "analytics": f"sqlite:///{tmp_path / 'missing' / 'x.db'}"}
    app = two_binds(make_app, urls)
    for check in (("status", "--check"), ("current", "--check-heads")):
        result = run(app, *check)
        assert result.exit_code == 1
        assert last_line(result) == (
            "Not up to date: analytics is unreachable: check its database URL and that its "
            "server is up."
        ), check
        assert "upgrade" not in last_line(result)


def test_check_unknown_revision_has_its_own_fix(make_app: MakeApp, make_url: MakeURL) -> None:
    """A bind at a revision its scripts lack is told to deploy them or stamp, not to upgrade."""
    url = make_url()
    app, _ = make_app(url)
    assert run(app, "revision", "init").exit_code == 0
    assert run(app, "upgrade").exit_code == 0
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0badc0ffee00'"))
    finally:
        engine.dispose()
    for check in (("status", "--check"), ("current", "--check-heads")):
        result = run(app, *check)
        assert result.exit_code == 1
        assert last_line(result) == (
            "Not up to date: default is at a revision its scripts do not have: deploy the "
            "code that has it, or record the right one with "
            "'flask db stamp --bind default REV'."
        ), check


# -- targets quoted as the user typed them ---------------------------------------------


def test_targets_quoted_as_typed(make_app: MakeApp, make_url: MakeURL) -> None:
    """`downgrade 1` says '1', never '-1'; `upgrade +1` says '+1'."""
    urls = {"default": make_url(), "analytics": make_url()}
    app = two_binds(make_app, urls)
    result = run(app, "downgrade", "1")
    assert result.exit_code == 2
    assert "The relative target '1' is ambiguous" in result.stderr
    assert "'-1' is ambiguous" not in result.stderr
    assert "--bind default" in result.stderr

    result = run(app, "downgrade", "--bind", "default", "1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Cannot downgrade bind 'default' by '1': it is at base already. See where it "
        "stands with 'flask db status --bind default'.\n"
    )
    result = run(app, "downgrade", "--bind", "default", "-1")
    assert "Cannot downgrade bind 'default' by '-1': it is at base already." in result.stderr

    ids = written(run(app, "revision", "init"))
    result = run(app, "upgrade", "--bind", "default", "+2")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Cannot upgrade bind 'default' by '+2': it is at base, 1 step from its heads, "
        "not 2. Give a count of 1 or fewer, or 'heads'.\n"
    )
    assert run(app, "upgrade", "--bind", "default", "+1").exit_code == 0
    result = run(app, "upgrade", "--bind", "default", "+1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Cannot upgrade bind 'default' by '+1': it is at its heads already. See where "
        "it stands with 'flask db status --bind default'.\n"
    )
    result = run(app, "upgrade", "--bind", "default", "1")
    assert "Cannot upgrade bind 'default' by '1': it is at its heads already." in result.stderr
    result = run(app, "downgrade", "--bind", "default", "2")
    assert result.stderr == (
        f"Error: Cannot downgrade bind 'default' by '2': it is at {ids['default']}, 1 step "
        "from base, not 2. Give a count of 1 or fewer, or 'base'.\n"
    )
    assert version_rows(urls["default"]) == {ids["default"]}


def test_downgrade_default_with_several_binds(make_app: MakeApp, make_url: MakeURL) -> None:
    """downgrade with no target and several binds does not quote a '-1' the user did not
    type: it says the default goes one step back and how to name a bind; nothing moves."""
    urls = {"default": make_url(), "analytics": make_url()}
    app = two_binds(make_app, urls)
    ids = written(run(app, "revision", "init"))
    assert run(app, "upgrade").exit_code == 0
    expected = [
        "Error: A downgrade without a target goes one step back, which needs a single bind; "
        "several are selected (default, analytics). Name one, as in 'flask db downgrade "
        "--bind default', or give the target as 'default@-1'."
    ]
    for extra in ((), ("--plan",)):
        result = run(app, "downgrade", *extra)
        assert result.exit_code == 2
        assert result.stderr.splitlines() == expected
    assert version_rows(urls["default"]) == {ids["default"]}
    assert version_rows(urls["analytics"]) == {ids["analytics"]}
    # Typed, the target is quoted as typed; with one bind the default works.
    assert "'-1'" in run(app, "downgrade", "-1", "--plan").stderr
    result = run(app, "downgrade", "--plan", "--bind", "analytics")
    assert result.exit_code == 0, result.output


def test_stamp_relative_quoted_as_typed(make_app: MakeApp, make_url: MakeURL) -> None:
    """stamp refuses a count in the user's spelling."""
    app, _ = make_app(make_url())
    assert run(app, "revision", "init").exit_code == 0
    result = run(app, "stamp", "1")
    assert result.exit_code == 1
    assert "the relative target '1'" in result.stderr
    assert "'-1'" not in result.stderr


def test_stamp_relative_with_several_binds(make_app: MakeApp, make_url: MakeURL) -> None:
    """With several binds, a count for stamp is refused as such, not as ambiguous."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    assert run(app, "revision", "init").exit_code == 0
    result = run(app, "stamp", "+1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Cannot stamp the relative target '+1': a stamp records revisions, it does not "
        "count steps. Stamp a revision id, 'BIND@REV', 'heads' or 'base' instead.\n"
    )


# -- no Python spelling in command-line hints ------------------------------------------

PYTHON_SPELLING = re.compile(r"\b(bind|rev_id|sql|target|parent|message)=|\w\(")


def test_cli_hints_use_command_line_spelling(make_app: MakeApp, make_url: MakeURL) -> None:
    """Errors raised in the API but reported by the CLI never say bind='NAME'."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    assert run(app, "revision", "init", "--bind", "default", "--rev-id", "ab01").exit_code == 0
    assert run(app, "revision", "init", "--bind", "analytics", "--rev-id", "ab02").exit_code == 0
    cases = [
        ("downgrade",),  # several binds: which one?
        ("upgrade", "+1"),
        ("show", "ab"),  # ambiguous across binds
        ("downgrade", "--sql"),
        ("stamp", "-1", "--bind", "default"),
        ("merge",),
        ("edit", "--bind", "nope"),
    ]
    for args in cases:
        result = run(app, *args)
        assert result.exit_code != 0, args
        assert not PYTHON_SPELLING.search(result.stderr), (args, result.stderr)


# -- downgrade --sql: the hint keeps --bind and suggests one step -------------------------


def test_downgrade_sql_hint_keeps_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """The hint names the user's bind and a one-step range that works."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    ids = written(run(app, "revision", "init"))
    result = run(app, "downgrade", "--sql", "--bind", "analytics")
    assert result.exit_code == 1
    command = f"flask db downgrade --sql --bind analytics {ids['analytics']}:base"
    assert f"'{command}'" in result.stderr
    assert "head:base" not in result.stderr
    suggested = run(app, *command.split()[2:])
    assert suggested.exit_code == 0, suggested.output
    assert "DROP TABLE event" in suggested.stdout

    second = written(run(app, "revision", "two", "--empty", "--bind", "analytics"))
    result = run(app, "downgrade", "--sql", "--bind", "analytics")
    one_step = f"{second['analytics']}:{ids['analytics']}"
    assert f"'flask db downgrade --sql --bind analytics {one_step}'" in result.stderr


# -- each path once ----------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, {"FORCE_COLOR": "1"}], ids=["plain", "terminal"])
def test_revision_and_merge_print_each_path_once(
    make_app: MakeApp, make_url: MakeURL, env: dict[str, str]
) -> None:
    """stdout holds only the paths; stderr says what was generated without repeating them."""
    app, _ = make_app(make_url())
    result = run(app, "revision", "first", **env)
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert Path(path).is_file()
    # Rich may wrap a long line: count the path with line breaks and spaces taken out.
    assert "".join(plain(result.output).split()).count(path) == 1
    rev = Path(path).name.split("_")[0]
    assert f"Generated default: {rev} first" in result.stderr

    run(app, "revision", "b", "--empty", "--parent", "base", "--splice")
    result = run(app, "merge", "-m", "join", **env)
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert Path(path).is_file()
    # Rich may wrap a long line: count the path with line breaks and spaces taken out.
    assert "".join(plain(result.output).split()).count(path) == 1
    assert "Generated default:" in result.stderr


# -- stamp --plan ------------------------------------------------------------------------


def test_stamp_plan(make_app: MakeApp, make_url: MakeURL) -> None:
    """stamp --plan shows each version table's from -> to and records nothing."""
    urls = {"default": make_url(), "analytics": make_url()}
    app = two_binds(make_app, urls)
    ids = written(run(app, "revision", "init"))
    result = run(app, "stamp", "--plan")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"1. default: stamp base -> {ids['default']}\n"
        f"2. analytics: stamp base -> {ids['analytics']}\n"
    )
    data = run_json(app, "stamp", "--plan", "--bind", "analytics")
    assert data["direction"] == "stamp"
    assert [(s["bind"], s["from"], s["to"], s["purge"]) for s in data["steps"]] == [
        ("analytics", [], [ids["analytics"]], False)
    ]
    assert version_rows(urls["default"]) == set() == version_rows(urls["analytics"])

    assert run(app, "stamp").exit_code == 0
    result = run(app, "stamp", "--plan", "--purge", "--bind", "default")
    assert result.stdout == (
        f"1. default: stamp {ids['default']} -> {ids['default']} (emptying the version table "
        "first)\n"
    )
    result = run(app, "stamp", "--plan", "--bind", "default")
    assert result.stderr == "Nothing to do: default already at the target.\n"


@pytest.mark.parametrize("columns", ["80", "160"])
def test_stamp_plan_on_a_terminal(make_app: MakeApp, make_url: MakeURL, columns: str) -> None:
    """On a terminal stamp --plan draws the plan's table, each bind's from -> to whole, and
    no message column (a stamp has none), so nothing is said to be left out."""
    urls = {"default": make_url(), "analytics": make_url()}
    app = two_binds(make_app, urls)
    ids = written(run(app, "revision", "init"))
    result = run(app, "stamp", "--plan", FORCE_COLOR="1", COLUMNS=columns)
    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    assert "stamp plan" in text
    for bind in ("default", "analytics"):
        assert re.search(rf"{bind} +│ base -> {ids[bind]} *$", text, re.M), text
    assert all(len(line) <= int(columns) for line in text.splitlines())
    assert version_rows(urls["default"]) == set() == version_rows(urls["analytics"])
    # A stamp runs no revision, so its plan has no message column: none to leave out either.
    assert "message" not in text
    result = run(app, "stamp", "--plan", "--purge", FORCE_COLOR="1", COLUMNS=columns)
    assert result.exit_code == 0, result.output
    assert "│ emptying the version table first" in plain(result.stdout)
    assert "message" not in plain(result.stdout)
    assert "Left out" not in plain(result.stderr)


# -- --json everywhere -------------------------------------------------------------------

SCRIPT_KEYS = {
    "bind",
    "revision",
    "down_revisions",
    "depends_on",
    "branch_labels",
    "message",
    "path",
    "is_head",
    "applied",
}


def test_json_on_listings(make_app: MakeApp, make_url: MakeURL) -> None:
    """show, branches, heads, revision and merge print one JSON object with their data."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    data = run_json(app, "revision", "init")
    assert [(r["bind"], r["message"]) for r in data["revisions"]] == [
        ("default", "init"),
        ("analytics", "init"),
    ]
    first = data["revisions"][0]
    assert set(first) == SCRIPT_KEYS | {"changes", "losses", "findings"}
    assert first["changes"] == [{"kind": "add_table", "description": "add table user"}]
    assert first["losses"] == []
    assert first["findings"] == []
    assert Path(first["path"]).is_file()
    assert data["skipped"] == []
    ids = {r["bind"]: r["revision"] for r in data["revisions"]}

    shown = run_json(app, "show", ids["analytics"])
    assert [(r["bind"], r["revision"]) for r in shown["revisions"]] == [
        ("analytics", ids["analytics"])
    ]
    assert set(shown["revisions"][0]) == SCRIPT_KEYS
    assert len(run_json(app, "show")["revisions"]) == 2
    assert run_json(app, "branches")["revisions"] == []
    assert len(run_json(app, "heads")["revisions"]) == 2

    assert run(app, "upgrade").exit_code == 0
    empty = run_json(app, "revision", "nothing")
    assert empty["revisions"] == []

    run(app, "revision", "b", "--empty", "--bind", "analytics", "--parent", "base", "--splice")
    branches = run_json(app, "branches")
    assert [r["revision"] for r in branches["revisions"]] == []  # two roots, no branch point
    merged = run_json(app, "merge", "--bind", "analytics", "-m", "join")
    assert [(r["bind"], r["message"]) for r in merged["revisions"]] == [("analytics", "join")]
    assert ids["analytics"] in merged["revisions"][0]["down_revisions"]


def test_new_revisions_json_as_listed(make_app: MakeApp, make_url: MakeURL) -> None:
    """revision --json and merge --json print a new revision as heads --json and log --json
    then list it: with the branch labels it inherits from its bind's first revision."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    first = run_json(app, "revision", "init")["revisions"]
    assert [r["branch_labels"] for r in first] == [["default"], ["analytics"]]
    assert run(app, "upgrade").exit_code == 0
    root = first[1]["revision"]
    written = run_json(app, "revision", "a", "--empty", "--bind", "analytics")["revisions"]
    run(app, "revision", "b", "--empty", "--bind", "analytics", "--parent", root, "--splice")
    merged = run_json(app, "merge", "--bind", "analytics")["revisions"]
    assert run(app, "upgrade").exit_code == 0
    listed = {r["revision"]: r for r in run_json(app, "log")["revisions"]}
    for new in (*written, *merged):
        assert new["branch_labels"] == ["analytics"], new
        # The same object, but for what changed since: applied, and is_head (the merge).
        later = {"applied", "is_head"}
        as_listed = {k: v for k, v in listed[new["revision"]].items() if k not in later}
        assert {k: v for k, v in new.items() if k in as_listed} == as_listed


def test_revision_json_says_why_a_bind_was_skipped(make_app: MakeApp, make_url: MakeURL) -> None:
    """revision --json lists a managed bind without models under "skipped", with the reason."""
    app, _ = make_app(
        {"default": make_url(), "audit": make_url()},
        {"default": schema("user"), "audit": sa.MetaData()},
        ALEMBIC_BINDS={"audit": {"include": True}},
    )
    data = run_json(app, "revision", "init")
    assert [r["bind"] for r in data["revisions"]] == ["default"]
    assert [item["bind"] for item in data["skipped"]] == ["audit"]
    assert data["skipped"][0]["reason"].startswith(
        "not compared with its database: it has no models"
    )


# -- help --------------------------------------------------------------------------------


def test_group_help_whole_summaries(make_app: MakeApp, make_url: MakeURL) -> None:
    """flask db --help at 80 columns: no summary cut with '...', history once as log's alias."""
    app, _ = make_app(make_url())
    result = run(app, "--help")
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:\n", 1)[1]
    assert "..." not in commands
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    names = [line.split()[0] for line in commands.splitlines() if line[:3].strip()]
    assert names.count("history") == 1
    assert names.count("log") == 1
    assert re.search(r"^  history +Alias of log\.$", commands, re.M)
    assert re.search(
        r"^  log +Show the revisions, newest first, marking those applied", commands, re.M
    )
    # The whole first sentence, wrapped: "...applied to" is not where it ends.
    assert "their\n" in commands
    assert "database.\n" in commands


def test_verbose_help_alike(make_app: MakeApp, make_url: MakeURL) -> None:
    """-v does the same on heads, branches and log (each revision in full, as show prints
    it), and their help says so in the same words."""
    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    assert run(app, "revision", "init").exit_code == 0
    for command in ("heads", "branches", "log"):
        text = " ".join(run(app, command, "--help").stdout.split())
        assert "-v, --verbose Show each revision in full, as show does." in text, command
    shown = run(app, "show").stdout
    assert run(app, "heads", "-v").stdout == shown
    assert run(app, "log", "-v").stdout == shown


@pytest.mark.parametrize(
    ("command", "forms"),
    [
        ("upgrade", ["heads", "head", "BIND@head", "+1", "REVISION", "FROM:TO"]),
        ("downgrade", ["-1", "1", "REVISION", "BIND@REV", "base", "FROM:TO"]),
    ],
)
def test_migration_help_teaches_targets(
    make_app: MakeApp, make_url: MakeURL, command: str, forms: list[str]
) -> None:
    """upgrade/downgrade --help list the TARGET forms, examples, common options first."""
    app, _ = make_app(make_url())
    result = run(app, command, "--help")
    assert result.exit_code == 0
    text = result.stdout
    targets = text.split("TARGET is one of:\n", 1)[1].split("Examples:", 1)[0]
    for form in forms:
        assert re.search(rf"^    (\S+, )*{re.escape(form)}[ ,]", targets, re.M), form
    assert f"    flask db {command} --bind analytics" in text
    options = [m.group(1) for m in re.finditer(r"^  (-[-\w, ]+?)(?: [A-Z]|  |$)", text, re.M)]
    first = [o.split(",")[0] for o in options[:4]]
    assert first == ["--bind", "--plan", "--sql", "--output-dir"], options
    assert options.index("--lock-timeout") > options.index("--json")
    assert all(len(line) <= 80 for line in text.splitlines())


def test_no_empty_options_section(make_app: MakeApp, make_url: MakeURL) -> None:
    """A command with no options of its own says so instead of listing only --help."""
    app, _ = make_app(make_url())
    for command in ("mkdir", "init"):
        result = run(app, command, "--help")
        assert result.exit_code == 0
        assert "Options:" not in result.stdout
        assert "This command takes no options." in result.stdout
    assert "Options:" in run(app, "status", "--help").stdout


# -- log on an unreachable bind ----------------------------------------------------------


def closed_port_url(dialect: str, tmp_path: Path) -> str:
    if dialect == "postgresql":
        return "postgresql+psycopg://nobody@127.0.0.1:9/nowhere?connect_timeout=2"
    if dialect == "mysql":
        return "mysql+pymysql://nobody@127.0.0.1:9/nowhere?connect_timeout=2"
    return f"sqlite:///{tmp_path / 'missing' / 'x.db'}"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_log_unreachable_marks_unknown(
    make_app: MakeApp, make_url: MakeURL, tmp_path: Path, dialect: str
) -> None:
    """log warns that an unreachable bind's applied marks are unknown and names the command
    that says why; JSON says null."""
    urls = {"default": make_url(), "analytics": make_url()}
    app = two_binds(make_app, urls)
    ids = written(run(app, "revision", "init"))
    assert run(app, "upgrade").exit_code == 0
    app = two_binds(make_app, {**urls, "analytics": closed_port_url(dialect, tmp_path)})

    for env in ({}, {"FORCE_COLOR": "1", "COLUMNS": "80"}, {"FORCE_COLOR": "1", "COLUMNS": "160"}):
        result = run(app, "log", **env)
        assert result.exit_code == 0, result.output
        assert (
            "analytics: which revisions are applied is unknown (unreachable), so none is "
            "marked. Run 'flask db status --bind analytics' to see why and how to fix it."
            in " ".join(plain(result.stderr).split())
        ), env
        assert "default" not in result.stderr
        lines = plain(result.stdout).splitlines()
        assert any(ids["default"] in line and "applied" in line for line in lines), env
        assert not any(ids["analytics"] in line and "applied" in line for line in lines), env

    data = json.loads(run(app, "log", "--json").stdout)
    applied = {r["bind"]: r["applied"] for r in data["revisions"]}
    assert applied == {"default": True, "analytics": None}

    # -i too: the readable bind is listed and marked, the other said unknown.
    result = run(app, "history", "-i")
    assert result.exit_code == 0, result.output
    assert "analytics: which revisions are applied is unknown (unreachable)" in result.stderr
    assert f"{ids['default']} (head, applied, current)" in result.stdout
    assert f"{ids['analytics']} (head)," in result.stdout


# -- one word for the migrations folder --------------------------------------------------


def test_migrations_folder_one_word(make_app: MakeApp, make_url: MakeURL, tmp_path: Path) -> None:
    """The folder of revisions is the "migrations folder" in every command's words: help,
    mkdir's report, and the errors about it (never "directory", and never both at once)."""
    from flask_alembic import Alembic

    app = two_binds(make_app, {"default": make_url(), "analytics": make_url()})
    location = Path(app.root_path) / "migrations"
    texts = {
        "group help": run(app, "--help").stdout,
        "mkdir help": run(app, "mkdir", "--help").stdout,
        "mkdir": run(app, "mkdir").stderr,
    }
    (tmp_path / "a-file").write_text("")
    for name in ("missing", "a-file"):
        other = Flask("other", root_path=str(tmp_path))
        other.config["ALEMBIC"] = {"script_location": str(tmp_path / name)}
        engine = sa.create_engine("sqlite://")
        Alembic(other, run_mkdir=False, engines=engine, metadatas=schema("user"))
        result = run(other, "upgrade")
        engine.dispose()
        assert result.exit_code == 1, result.output
        texts[name] = result.stderr
    assert f"Migrations folder: {location}" in texts["mkdir"]
    assert "Create the migrations folder if it does not exist." in texts["mkdir help"]
    assert f"The migrations folder {tmp_path / 'missing'} does not exist." in texts["missing"]
    assert f"The migrations folder {tmp_path / 'a-file'} is a file" in texts["a-file"]
    for name, text in texts.items():
        assert "directory" not in text.lower(), (name, text)


def test_plan_and_sql_are_refused_together(make_app: MakeApp, make_url: MakeURL) -> None:
    """--plan with --sql would print one of them silently: a usage error, nothing changed."""
    urls = {"default": make_url(), "analytics": make_url()}
    app = two_binds(make_app, urls)
    assert run(app, "revision", "init").exit_code == 0
    for command in ("upgrade", "downgrade", "stamp"):
        result = run(app, command, "--plan", "--sql", "--bind", "default")
        assert result.exit_code == 2, result.output
        assert result.stderr.splitlines()[-1] == (
            "Error: --plan shows the steps and --sql their SQL: choose one (neither runs anything)."
        )
        assert result.stdout == ""
    assert version_rows(urls["default"]) == set() == version_rows(urls["analytics"])
