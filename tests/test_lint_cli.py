"""Where the linter runs: ``flask db lint``, ``revision``, ``upgrade --plan`` and
``ALEMBIC_LINT`` (``warn``, ``refuse``, ``off``), through Flask's CLI runner."""

from __future__ import annotations

import json
import textwrap
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
from flask_alembic.errors import LintRefusedError

#: The keys of a finding in ``lint --json``, in their order.
FINDING_KEYS = [
    "bind",
    "revision",
    "path",
    "rule",
    "severity",
    "message",
    "fix",
    "accepted",
    "reason",
]


def run(app: Flask, *args: str, **kwargs: Any) -> Result:
    """Invoke ``flask db ARGS`` with stdout not a terminal."""
    return app.test_cli_runner().invoke(args=["db", *args], **kwargs)


def run_json(app: Flask, *args: str) -> Any:
    result = run(app, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write(
    project: Path,
    bind: str,
    rev: str,
    down: str | None,
    upgrade: str,
    downgrade: str = 'raise RuntimeError("no way back")',
    *,
    allow: dict[str, str] | None = None,
) -> Path:
    """A revision file of ``bind`` with these bodies (``downgrade`` raises by default:
    not an empty one, so that ``missing-downgrade`` stays quiet)."""
    folder = project / "migrations" if bind == "default" else project / "migrations" / bind
    folder.mkdir(parents=True, exist_ok=True)
    labels = repr((bind,)) if down is None else "None"
    allowed = "" if allow is None else f"lint_allow = {allow!r}\n"
    path = folder / f"{rev}_{bind}.py"
    path.write_text(
        f'"""{rev} of {bind}\n\nRevision ID: {rev}\nRevises: {down or ""}\n"""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = {labels}\n"
        f"depends_on = None\n{allowed}\n\n"
        f"def upgrade():\n{textwrap.indent(upgrade, '    ')}\n\n\n"
        f"def downgrade():\n{textwrap.indent(downgrade, '    ')}\n"
    )
    return path


CREATE_USER = (
    'op.create_table("user", sa.Column("id", sa.Integer, primary_key=True), '
    'sa.Column("name", sa.String(50)))'
)
CREATE_EVENT = 'op.create_table("event", sa.Column("id", sa.Integer, primary_key=True))'
DROP_NAME = 'op.drop_column("user", "name")'


def two_binds(make_app: MakeApp, urls: dict[str, str], **config: object) -> tuple[Flask, Alembic]:
    """``default`` (a ``user`` table) and ``other`` (an ``event`` table)."""
    event = sa.MetaData()
    sa.Table("event", event, sa.Column("id", sa.Integer, primary_key=True))
    return make_app(urls, {"default": models(), "other": event}, **config)


def risky_project(project: Path, *, allow: dict[str, str] | None = None) -> None:
    """``default``: ``a1`` creates ``user``, ``b2`` drops its ``name`` column (an error
    finding); ``other``: ``c3`` creates ``event``, ``d4`` adds a nullable column to it."""
    write(project, "default", "a1", None, CREATE_USER, 'op.drop_table("user")')
    write(
        project,
        "default",
        "b2",
        "a1",
        DROP_NAME,
        'op.add_column("user", sa.Column("name", sa.String(50)))',
        allow=allow,
    )
    write(project, "other", "c3", None, CREATE_EVENT, 'op.drop_table("event")')
    write(
        project,
        "other",
        "d4",
        "c3",
        'op.add_column("event", sa.Column("note", sa.String(20)))',
        'op.drop_column("event", "note")',
    )


@pytest.fixture
def setup(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> tuple[Flask, Alembic, dict[str, str]]:
    """Two SQLite binds, each at its first revision, with one revision pending each."""
    urls = {"default": make_url(), "other": make_url()}
    app, alembic = two_binds(make_app, urls)
    risky_project(project)
    with app.app_context():
        alembic.upgrade("a1", bind="default")
        alembic.upgrade("c3", bind="other")
    return app, alembic, urls


# -- flask db lint -----------------------------------------------------------------------


def test_lint_pending_by_default(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """Without arguments (or with --pending), the revisions upgrade would run are linted."""
    app, _, _ = setup
    for args in ((), ("--pending",)):
        result = run(app, "lint", *args)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "default: b2: error drop-column: drops column 'name' of table 'user'; fix: "
            "Remove the column from the models and deploy that first; drop the column in a "
            "later release."
        ]
        assert result.stderr.splitlines()[-1] == (
            "Linted 2 revisions: 1 error, 0 warnings, 0 info; 0 accepted."
        )


def test_lint_all_and_named(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """--all lints every revision of each bind; named revisions only
    those."""
    app, _, _ = setup
    result = run(app, "lint", "--all")
    assert result.exit_code == 0, result.output
    assert "Linted 4 revisions: 1 error" in result.stderr
    result = run(app, "lint", "a1", "d4")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == "Linted 2 revisions: no findings.\n"


def test_lint_bind(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """--bind lints that bind's revisions only."""
    app, _, _ = setup
    data = run_json(app, "lint", "--all", "--bind", "other")
    assert data == {"version": 1, "findings": []}
    data = run_json(app, "lint", "--bind", "default")
    assert [(f["bind"], f["revision"], f["rule"]) for f in data["findings"]] == [
        ("default", "b2", "drop-column")
    ]


def test_lint_json_shape(setup: tuple[Flask, Alembic, dict[str, str]], project: Path) -> None:
    """--json prints exactly the documented object: version, and findings with nine keys."""
    app, _, _ = setup
    result = run(app, "lint", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data == {
        "version": 1,
        "findings": [
            {
                "bind": "default",
                "revision": "b2",
                "path": str(project / "migrations" / "b2_default.py"),
                "rule": "drop-column",
                "severity": "error",
                "message": "drops column 'name' of table 'user'",
                "fix": "Remove the column from the models and deploy that first; drop the "
                "column in a later release.",
                "accepted": False,
                "reason": None,
            }
        ],
    }
    assert list(data["findings"][0]) == FINDING_KEYS
    assert result.stderr == ""  # only JSON: the summary is not said


def test_lint_accepted(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """An accepted finding is listed as accepted with its reason, and counted so."""
    app, _ = two_binds(make_app, {"default": make_url(), "other": make_url()})
    risky_project(project, allow={"drop-column": "unused since 2.3"})
    result = run(app, "lint")
    assert result.exit_code == 0, result.output
    assert (
        "default: b2: accepted error drop-column: drops column 'name' of table 'user'; "
        "reason: unused since 2.3\n" in result.stdout
    )
    assert "1 accepted." in result.stderr
    finding = run_json(app, "lint", "b2")["findings"][0]
    assert (finding["accepted"], finding["reason"]) == (True, "unused since 2.3")


def test_strict_fails_on_unaccepted_error(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """--strict exits 1 when an error finding is not accepted; without it, 0."""
    app, _, _ = setup
    assert run(app, "lint").exit_code == 0
    result = run(app, "lint", "--strict")
    assert result.exit_code == 1
    assert (
        "--strict: 1 error or warning finding is not accepted: fix it, or accept " in result.stderr
    )
    assert run(app, "lint", "--strict", "--json").exit_code == 1


def test_strict_passes_when_all_accepted(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """--strict exits 0 when every error and warning finding is accepted."""
    app, _ = two_binds(make_app, {"default": make_url(), "other": make_url()})
    risky_project(project, allow={"drop-column": "unused since 2.3"})
    result = run(app, "lint", "--all", "--strict")
    assert result.exit_code == 0, result.output
    assert "accepted error drop-column" in result.stdout


def test_strict_fails_on_unaccepted_warning(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """A warning counts for --strict too: an upgrade() that does something with an
    empty downgrade()."""
    app, _ = make_app(make_url())
    write(project, "default", "a1", None, CREATE_USER, "pass")
    result = run(app, "lint", "--strict")
    assert result.exit_code == 1
    assert "default: a1: warning missing-downgrade" in result.stdout


def test_lint_nothing(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """Nothing pending, or no revisions at all: one line says so; exit 0, --strict too."""
    app, alembic = make_app(make_url())
    result = run(app, "lint", "--strict")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "Nothing to lint: no revision is pending.\n"
    assert run(app, "lint", "--all").stderr == "No revisions to lint: there are none yet.\n"
    write(project, "default", "a1", None, CREATE_USER, 'op.drop_table("user")')
    with app.app_context():
        alembic.upgrade()
    assert run(app, "lint").stderr == "Nothing to lint: no revision is pending.\n"


def test_lint_errors(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """Unknown revision, another bind's revision, --all with revisions, --pending with
    --all: one line each, non-zero exit."""
    app, _, _ = setup
    result = run(app, "lint", "zz9")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Cannot lint 'zz9': ")
    assert len(result.stderr.splitlines()) == 1

    result = run(app, "lint", "--bind", "other", "b2")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Revision b2 belongs to bind 'default', which is not selected. "
        "Add --bind default, or drop --bind.\n"
    )

    result = run(app, "lint", "--all", "b2")
    assert result.exit_code == 2
    assert "Error: --all chooses the revisions, and so do REVISIONS" in result.stderr

    result = run(app, "lint", "--pending", "--all")
    assert result.exit_code == 2
    assert "Error: --pending and --all are two choices: give one." in result.stderr

    result = run(app, "lint", "--bind", "nope")
    assert result.exit_code == 2
    assert "nope" in result.stderr


def test_lint_api_refuses_all_with_revisions(
    setup: tuple[Flask, Alembic, dict[str, str]],
) -> None:
    """The Python API refuses named revisions with all=True (the CLI's usage error)."""
    app, alembic, _ = setup
    with app.app_context(), pytest.raises(Exception, match="not both"):
        alembic.lint("b2", all=True)


def test_unreachable_database_no_password(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """--pending needs the databases: an unreachable one is one error line, which never
    shows the URL's password; --all and named revisions need no database."""
    secret = "s3cr3t-pw"
    url = f"postgresql+psycopg://someone:{secret}@127.0.0.1:1/nowhere"
    app, _ = make_app(url)
    write(project, "default", "a1", None, CREATE_USER, "pass")
    result = run(app, "lint")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.splitlines()) == 1
    result_json = run(app, "lint", "--json")
    assert result_json.exit_code == 1
    assert json.loads(result_json.stdout)["error"]["message"]
    outputs = [result, result_json, run(app, "upgrade", "--plan"), run(app, "revision", "x")]
    for args in (("--all",), ("a1",), ("--all", "--json"), ("--all", "--strict")):
        done = run(app, "lint", *args)
        assert "missing-downgrade" in done.stdout, args
        outputs.append(done)
    for done in outputs:
        assert secret not in done.output
        assert secret not in done.stderr


def test_rich_output_keeps_ids_whole(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """On a narrow terminal, long revision ids and rule ids are never cut."""
    app, _ = make_app(make_url())
    rev = "2026_12_01_drop_the_name_column"
    write(project, "default", "a1", None, CREATE_USER, 'op.drop_table("user")')
    write(project, "default", rev, "a1", DROP_NAME, "pass", allow={"drop-column": "old"})
    result = run(app, "lint", "--all", env={"FORCE_COLOR": "1", "COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    from rich.text import Text

    plain = Text.from_ansi(result.stdout).plain
    assert rev in plain
    assert "missing-downgrade" in plain
    assert "drop-column" in plain
    assert "accepted" in plain
    assert "\x1b[" in result.stdout
    result = run(app, "lint", "--all", env={"FORCE_COLOR": "1", "COLUMNS": "100"})
    plain = Text.from_ansi(result.stdout).plain
    assert "accepted  drop-column" in plain
    assert "reason: old" in plain
    assert "warning   missing-downgrade  has a downgrade() that does nothing" in plain


# -- revision ----------------------------------------------------------------------------


def test_revision_prints_findings(make_app: MakeApp, make_url: MakeURL) -> None:
    """revision lints the files it writes: one line per unaccepted finding and a hint;
    --json gives each file its findings; "off" says nothing."""
    url = make_url()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        models().create_all(connection)
    engine.dispose()
    # The models lost the column "name": autogenerate drops it.
    app, alembic = make_app(url, models(with_name=False))
    with app.app_context():
        alembic.stamp(alembic.revision("base", empty=True)[0].revision)
    result = run(app, "revision", "drop name")
    assert result.exit_code == 0, result.output
    rev = Path(result.stdout.strip()).name.split("_")[0]
    assert f"Lint: default: {rev}: error drop-column: drops column 'name' of table 'user'" in (
        result.stderr
    )
    assert f"'flask db lint {rev}' shows how to fix each." in result.stderr
    # The "base" revision was empty: nothing to undo, no finding said for it.
    assert result.stderr.count("Lint: ") == 1

    app.config["ALEMBIC_LINT"] = "off"
    data = run_json(app, "revision", "again", "--empty")
    assert data["revisions"][0]["findings"] is None
    result = run(app, "revision", "drop name 2", "--parent", rev, "--splice")
    assert "Lint:" not in result.stderr

    app.config["ALEMBIC_LINT"] = "warn"
    with app.app_context():
        alembic.stamp("heads", purge=True)
        base = alembic.heads()[0].revision
    data = run_json(app, "revision", "drop name 3", "--parent", base)
    findings = data["revisions"][0]["findings"]
    assert [(f["rule"], f["severity"], f["accepted"]) for f in findings] == [
        ("drop-column", "error", False)
    ]
    assert list(findings[0]) == FINDING_KEYS


# -- upgrade --plan, upgrade and ALEMBIC_LINT --------------------------------------------


def test_plan_shows_findings(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """upgrade --plan shows each step's unaccepted findings under it; --json per step."""
    app, _, _ = setup
    result = run(app, "upgrade", "--plan")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "1. default: upgrade a1 -> b2 b2 of default",
        "   error drop-column: drops column 'name' of table 'user'",
        "2. other: upgrade c3 -> d4 d4 of other",
    ]
    assert "Lint: 1 error in 1 revision; 'flask db lint b2' shows how" in result.stderr
    data = run_json(app, "upgrade", "--plan")
    assert [[f["rule"] for f in s["findings"]] for s in data["steps"]] == [["drop-column"], []]
    assert list(data["steps"][0]["findings"][0]) == FINDING_KEYS
    # A downgrade's steps run downgrade(), which is not linted.
    data = run_json(app, "downgrade", "--plan", "--bind", "default", "base")
    assert [s["findings"] for s in data["steps"]] == [None]


def test_plan_rich_shows_findings(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """On a terminal, the findings follow the plan's table, each with its step's number."""
    app, _, _ = setup
    result = run(app, "upgrade", "--plan", env={"FORCE_COLOR": "1", "COLUMNS": "100"})
    from rich.text import Text

    plain = [line.rstrip() for line in Text.from_ansi(result.stdout).plain.splitlines()]
    assert plain[0] == "upgrade plan (2 steps)"
    assert plain[-1] == "1. error drop-column: drops column 'name' of table 'user'"
    assert "Lint: 1 error in 1 revision" in Text.from_ansi(result.stderr).plain


def test_off_lints_nothing(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """ALEMBIC_LINT = "off": no findings in plans, and upgrade runs what "refuse" would
    stop. flask db lint still lints when asked."""
    app, _, urls = setup
    app.config["ALEMBIC_LINT"] = "off"
    result = run(app, "upgrade", "--plan")
    assert "drop-column" not in result.output
    assert [s["findings"] for s in run_json(app, "upgrade", "--plan")["steps"]] == [None, None]
    assert run(app, "lint", "--strict").exit_code == 1
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert "drop-column" not in result.output
    assert version_rows(urls["default"]) == {"b2"}


def test_warn_runs_as_before(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """ALEMBIC_LINT = "warn" (the default): upgrade runs as it always did, without linting
    (which would run each revision's code once more, offline); --plan shows the findings."""
    app, _, urls = setup
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert "drop-column" not in result.stderr
    assert "Lint" not in result.stderr
    assert version_rows(urls["default"]) == {"b2"}
    assert version_rows(urls["other"]) == {"d4"}


def _state(urls: dict[str, str]) -> dict[str, tuple[set[str], set[str], list[str]]]:
    """Each database's version rows, tables and the columns of its table."""
    found = {}
    for name, url in urls.items():
        engine = sa.create_engine(url)
        try:
            inspector = sa.inspect(engine)
            table = "user" if name == "default" else "event"
            columns = [c["name"] for c in inspector.get_columns(table)]
        finally:
            engine.dispose()
        found[name] = (version_rows(url), table_names(url), columns)
    return found


def test_refuse_stops_every_bind(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """ALEMBIC_LINT = "refuse": an unaccepted error finding stops the upgrade before any
    step runs, on any bind (the other bind's clean step included): CLI and Python API."""
    app, alembic, urls = setup
    app.config["ALEMBIC_LINT"] = "refuse"
    before = _state(urls)
    assert before["default"][0] == {"a1"}
    assert before["other"][0] == {"c3"}

    result = run(app, "upgrade")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(
        "Error: Refused to upgrade: revision b2 of bind 'default' has unaccepted lint error "
        "drop-column; nothing was run. "
    )
    assert 'lint_allow = {"drop-column": "..."}' in lines[-1]
    assert str(Path(app.root_path) / "migrations" / "b2_default.py") in lines[-1]
    assert 'ALEMBIC_LINT = "warn"' in lines[-1]
    assert "(started)" not in result.stderr
    assert _state(urls) == before

    result = run(app, "upgrade", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["revision"] == "b2"
    assert _state(urls) == before

    with app.app_context():
        with pytest.raises(LintRefusedError) as caught:
            alembic.upgrade()
        assert (caught.value.bind, caught.value.revision) == ("default", "b2")
        assert [f.rule for f in caught.value.findings] == ["drop-column"]
        with pytest.raises(LintRefusedError):
            alembic.upgrade("b2", bind="default")
        with pytest.raises(LintRefusedError):
            alembic.run_plan(alembic.plan("upgrade", "heads"))
    assert _state(urls) == before

    # The other bind alone has nothing refused.
    result = run(app, "upgrade", "--bind", "other")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["other"]) == {"d4"}
    assert version_rows(urls["default"]) == {"a1"}


def test_refuse_lets_accepted_through(make_app: MakeApp, make_url: MakeURL, project: Path) -> None:
    """With "refuse", an accepted error finding (and an unaccepted warning) runs."""
    urls = {"default": make_url(), "other": make_url()}
    app, _alembic = two_binds(make_app, urls, ALEMBIC_LINT="refuse")
    risky_project(project, allow={"drop-column": "unused since 2.3"})
    write(
        project, "other", "e5", "d4", 'op.add_column("event", sa.Column("x", sa.Integer))', "pass"
    )
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert "plan    warning missing-downgrade" in result.stderr
    assert version_rows(urls["default"]) == {"b2"}
    assert version_rows(urls["other"]) == {"e5"}


def test_refuse_downgrade_and_stamp_run(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """Only upgrades are linted: a downgrade and a stamp run under "refuse"."""
    app, _, urls = setup
    app.config["ALEMBIC_LINT"] = "refuse"
    assert run(app, "stamp", "--bind", "default", "b2").exit_code == 0
    assert version_rows(urls["default"]) == {"b2"}
    assert run(app, "downgrade", "--bind", "other", "base").exit_code == 0
    assert version_rows(urls["other"]) == set()


@pytest.mark.parametrize("value", ["refuse ", "strict", True, None])
def test_bad_setting(setup: tuple[Flask, Alembic, dict[str, str]], value: object) -> None:
    """A bad ALEMBIC_LINT is one error naming the setting and its three values, before
    anything runs."""
    app, alembic, urls = setup
    app.config["ALEMBIC_LINT"] = value
    before = _state(urls)
    files = sorted((Path(app.root_path) / "migrations").rglob("*.py"))
    for args in (("upgrade",), ("upgrade", "--plan"), ("revision", "x")):
        result = run(app, *args)
        assert result.exit_code == 1, args
        assert result.stderr == (
            f'Error: \'ALEMBIC_LINT\' must be "warn", "refuse" or "off", got {value!r}. '
            '"warn" (the default) shows what the linter finds; "refuse" also stops an upgrade '
            'before it runs a revision with an error finding; "off" lints only when asked.\n'
        ), args
    assert _state(urls) == before
    assert sorted((Path(app.root_path) / "migrations").rglob("*.py")) == files
    with app.app_context(), pytest.raises(ConfigurationError, match="ALEMBIC_LINT"):
        alembic.upgrade()


def test_refuse_per_dialect(
    make_app: MakeApp, database_url: str, dialect: str, project: Path
) -> None:
    """An index built without CONCURRENTLY is an error on PostgreSQL only: "refuse" stops
    it there and lets it run on MariaDB and SQLite."""
    app, alembic = make_app(database_url, ALEMBIC_LINT="refuse")
    write(project, "default", "a1", None, CREATE_USER, 'op.drop_table("user")')
    write(
        project,
        "default",
        "b2",
        "a1",
        'op.create_index("ix_user_name", "user", ["name"])',
        'op.drop_index("ix_user_name", table_name="user")',
        allow={"no-lock-timeout": "a test database"} if dialect == "postgresql" else None,
    )
    with app.app_context():
        alembic.upgrade("a1")
    result = run(app, "upgrade")
    if dialect == "postgresql":
        assert result.exit_code == 1
        assert "unaccepted lint error create-index-blocking" in result.stderr
        assert version_rows(database_url) == {"a1"}
        engine = sa.create_engine(database_url)
        try:
            assert sa.inspect(engine).get_indexes("user") == []
        finally:
            engine.dispose()
    else:
        assert result.exit_code == 0, result.output
        assert version_rows(database_url) == {"b2"}


def test_lint_per_dialect(
    make_app: MakeApp, database_url: str, dialect: str, project: Path
) -> None:
    """Each bind is linted in its own dialect: the same revision has an error on
    PostgreSQL (and the no-lock-timeout it accepts), and nothing on MariaDB and SQLite,
    where an entry of lint_allow for a PostgreSQL-only rule is not reported as unused."""
    app, _ = make_app(database_url)
    write(project, "default", "a1", None, CREATE_USER, 'op.drop_table("user")')
    write(
        project,
        "default",
        "b2",
        "a1",
        'op.create_index("ix_user_name", "user", ["name"])',
        'op.drop_index("ix_user_name", table_name="user")',
        allow={"no-lock-timeout": "a test database"},
    )
    findings = run_json(app, "lint")["findings"]
    found = [(f["revision"], f["rule"], f["severity"], f["accepted"]) for f in findings]
    if dialect == "postgresql":
        assert found == [
            ("b2", "create-index-blocking", "error", False),
            ("b2", "no-lock-timeout", "warning", True),
        ]
        assert findings[0]["fix"] != findings[1]["fix"]
        assert run(app, "lint", "--strict").exit_code == 1
    else:
        assert found == []
        result = run(app, "lint", "--strict")
        assert (result.exit_code, result.stderr) == (0, "Linted 2 revisions: no findings.\n")


def test_on_lint_from_python(setup: tuple[Flask, Alembic, dict[str, str]]) -> None:
    """From Python, on_lint receives the plan's findings ("warn" lints only when it is
    given); "off" never calls it; a plan with nothing to do lints nothing."""
    app, alembic, urls = setup
    from flask_alembic.lint import LintReport

    reports: list[LintReport] = []
    with app.app_context():
        app.config["ALEMBIC_LINT"] = "off"
        alembic.upgrade("d4", bind="other", on_lint=reports.append)
        assert reports == []
        app.config["ALEMBIC_LINT"] = "warn"
        alembic.upgrade(on_lint=reports.append)
        (report,) = reports
        assert [(f.revision, f.rule) for f in report.findings] == [("b2", "drop-column")]
        assert report.linted == (("default", "b2"),)
        alembic.upgrade(on_lint=reports.append)
    assert len(reports) == 1
    assert version_rows(urls["default"]) == {"b2"}


# -- without the linter's SQL parser (the lint extra) ------------------------------------


def test_without_the_parser(
    setup: tuple[Flask, Alembic, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without sqlglot, "warn" says in one line that nothing was linted (revision and
    upgrade --plan still work); lint and "refuse" stop with what to install, nothing run."""
    from flask_alembic import lint_sql

    app, _, urls = setup
    monkeypatch.setattr(lint_sql, "available", lambda: False)
    note = "Not linted: the linter needs its SQL parser: pip install 'Flask-Alembic[lint]'."

    result = run(app, "upgrade", "--plan")
    assert result.exit_code == 0, result.output
    assert note in result.stderr.splitlines()
    assert "drop-column" not in result.output

    result = run(app, "lint")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: Linting migrations needs a SQL parser, which is not installed. "
        "pip install 'Flask-Alembic[lint]' (it installs sqlglot)."
    ]

    app.config["ALEMBIC_LINT"] = "refuse"
    before = _state(urls)
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "needs a SQL parser" in result.stderr
    assert _state(urls) == before

    app.config["ALEMBIC_LINT"] = "warn"
    result = run(app, "revision", "nothing", "--empty", "--bind", "other")
    assert result.exit_code == 0, result.output
    assert note in result.stderr.splitlines()
    assert Path(result.stdout.strip()).exists()
