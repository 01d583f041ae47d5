"""What a red team found the linter missed, said wrongly, or let escape, pinned one case
each: each failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeApp
from conftest import MakeURL
from test_lint_rules import BASE_DOWN
from test_lint_rules import BASE_UP
from test_lint_rules import body
from test_lint_rules import lint
from test_lint_rules import MY
from test_lint_rules import PG
from test_lint_rules import project
from test_lint_rules import rules
from test_lint_rules import SQLITE
from test_lint_rules import write

CASES = [
    # A column's index=True, unique=True: Alembic emits them after the ADD COLUMN.
    (
        "column-index",
        PG,
        'op.add_column("account", sa.Column("e", sa.String(50), index=True))',
        ["create-index-blocking"],
        "an index of table 'account'",
    ),
    (
        "column-unique",
        PG,
        'op.add_column("account", sa.Column("f", sa.String(50), unique=True))',
        ["add-unique-constraint"],
        "a unique constraint of table 'account'",
    ),
    (
        "sql-column-unique",
        PG,
        'op.execute("ALTER TABLE account ADD COLUMN c int UNIQUE")',
        ["add-unique-constraint"],
        "'account'",
    ),
    # A type change PostgreSQL rewrites the table for, though both types are strings.
    (
        "char-longer",
        PG,
        'op.alter_column("account", "name", type_=sa.CHAR(100), existing_type=sa.CHAR(50))',
        ["change-column-type"],
        "CHAR(100)",
    ),
    (
        "varchar-using",
        PG,
        'op.alter_column("account", "name", type_=sa.Text, existing_type=sa.String(50), '
        'postgresql_using="upper(name)")',
        ["change-column-type"],
        "TEXT",
    ),
    # A table of the same name created in another schema is not the one changed.
    (
        "other-schema",
        PG,
        'op.create_table("account", sa.Column("id", sa.Integer), schema="archive")\n'
        'op.drop_column("account", "name")',
        ["drop-column"],
        "column 'name' of table 'account'",
    ),
    (
        "schema-in-message",
        PG,
        'op.drop_table("legacy", schema="app")',
        ["drop-table"],
        "'app.legacy'",
    ),
    (
        "sql-generated-column",
        PG,
        "op.execute('ALTER TABLE account ADD COLUMN c int GENERATED ALWAYS AS (id * 2) STORED')",
        ["add-column-volatile-default"],
        "a generated column",
    ),
    (
        "drop-schema",
        PG,
        'op.execute("DROP SCHEMA app CASCADE")',
        ["drop-table"],
        "schema 'app' and every table in it",
    ),
    (
        "data-changing-cte",
        PG,
        'op.execute("WITH d AS (DELETE FROM account RETURNING id) SELECT * FROM d")\n'
        'op.drop_column("account", "email")',
        ["data-change-in-schema-migration", "drop-column"],
        "DELETE account",
    ),
    (
        "select-unknown-function",
        PG,
        'op.execute("SELECT drop_everything()")',
        ["raw-sql"],
        "DROP_EVERYTHING",
    ),
    (
        "reset-lock-timeout",
        PG,
        "op.execute(\"SET lock_timeout = '2s'\")\n"
        'op.execute("RESET lock_timeout")\n'
        'op.drop_column("account", "email")',
        ["drop-column", "no-lock-timeout"],
        "drop column account.email",
    ),
    (
        "zero-lock-timeout",
        PG,
        'op.execute("SET lock_timeout = \'0s\'")\nop.drop_column("account", "email")',
        ["drop-column", "no-lock-timeout"],
        "drop column account.email",
    ),
    (
        "rename-without-column-keyword",
        PG,
        'op.execute("ALTER TABLE account RENAME name TO full_name")',
        ["rename-column"],
        "column 'name' of table 'account' to 'full_name'",
    ),
    ("alter-index-rename", PG, 'op.execute("ALTER INDEX ix_account_name RENAME TO ix_n")', [], ""),
    (
        "default-null",
        PG,
        'op.add_column("account", sa.Column("n", sa.Integer, nullable=False, '
        'server_default=sa.text("NULL")))',
        ["add-not-null-column"],
        "'n'",
    ),
    (
        "stable-default",
        PG,
        'op.add_column("account", sa.Column("ts", sa.DateTime, '
        "server_default=sa.text(\"timezone('utc', now())\")))",
        [],
        "",
    ),
    (
        "batch-on-postgresql-once",
        PG,
        'with op.batch_alter_table("account") as batch:\n    batch.drop_column("email")',
        ["drop-column"],
        "'email'",
    ),
    (
        "sql-fulltext-in-alter",
        MY,
        'op.execute("ALTER TABLE account ADD FULLTEXT INDEX ft (name)")',
        ["create-index-blocking"],
        "FULLTEXT",
    ),
]


@pytest.mark.parametrize(
    ("on", "upgrade", "expected", "named"),
    [pytest.param(on, up, exp, named, id=name) for name, on, up, exp, named in CASES],
)
def test_review_case(
    make_app: MakeApp, make_url: MakeURL, on: str, upgrade: str, expected: list[str], named: str
) -> None:
    app, alembic, folder = project(make_app, make_url, on)
    write(folder, "r1", "r0", body(upgrade, on))
    found = lint(app, alembic, "r1")
    assert rules(found) == expected
    assert any(named in f.message for f in found) or not expected


def test_sys_exit_is_a_finding(make_app: MakeApp, make_url: MakeURL) -> None:
    """A revision calling sys.exit() does not end the lint (a CI gate that exits 0)."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", 'op.drop_column("account", "email")\nimport sys\nsys.exit(0)')
    found = lint(app, alembic, "r1")
    assert rules(found) == ["drop-column", "offline-failure"]
    assert "SystemExit" in next(f.message for f in found if f.rule == "offline-failure")


def test_revision_output_stays_off_stdout(
    make_app: MakeApp, make_url: MakeURL, capfd: pytest.CaptureFixture[str]
) -> None:
    """What a revision prints would break ``lint --json``."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", 'print("hello from the revision")\nop.drop_column("account", "x")')
    assert rules(lint(app, alembic, "r1")) == ["drop-column"]
    assert "hello from the revision" not in capfd.readouterr().out


def test_sql_too_deep_for_the_parser(make_app: MakeApp, make_url: MakeURL) -> None:
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", "op.execute('SELECT ' + '(' * 3000 + '1' + ')' * 3000)")
    assert rules(lint(app, alembic, "r1")) == ["raw-sql"]


def test_bound_values_stay_out_of_messages(make_app: MakeApp, make_url: MakeURL) -> None:
    """A construct's values are rendered to be read, never shown: one may be a secret."""
    app, alembic, folder = project(make_app, make_url, PG)
    write(
        folder,
        "r1",
        "r0",
        body("op.execute(sa.text('ALTER ROLE app PASSWORD :p').bindparams(p='s3cr3t-pw'))", PG),
    )
    (found,) = lint(app, alembic, "r1")
    assert found.rule == "raw-sql"
    assert "s3cr3t-pw" not in found.message
    assert ":p" in found.message


def test_lint_allow_is_read_before_the_revision_runs(make_app: MakeApp, make_url: MakeURL) -> None:
    """Code in upgrade() cannot accept its own findings."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(
        folder,
        "r1",
        "r0",
        'op.drop_column("account", "email")\n'
        'globals()["lint_allow"] = {"drop-column": "said by the code"}',
    )
    (found,) = lint(app, alembic, "r1")
    assert (found.rule, found.accepted) == ("drop-column", False)


@pytest.mark.parametrize(
    ("timeouts", "override"),
    [
        pytest.param({"lock_timeout": 5}, None, id="bind-timeouts"),
        pytest.param({}, "timeouts = {'lock_timeout': 5}", id="revision-timeouts"),
    ],
)
def test_configured_timeouts_and_an_autocommit_block(
    make_app: MakeApp, make_url: MakeURL, timeouts: dict[str, float], override: str | None
) -> None:
    """The bind's and the revision's timeouts are a SET LOCAL: the block's COMMIT ends
    them, so DDL inside the block runs without one (a concurrent index build needs none);
    the executor sets them again after the block, so the DDL there is guarded."""
    app, alembic = make_app(make_url(PG), ALEMBIC_BINDS={"default": {"timeouts": timeouts}})
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    block = (
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("ix_e", "account", ["email"], postgresql_concurrently=True)\n'
    )
    after = 'op.add_column("account", sa.Column("nick", sa.String(20)))'
    write(folder, "r1", "r0", block + after, raw_allow=override)
    assert lint(app, alembic, "r1") == []
    write(folder, "r1", "r0", block + "    " + after, raw_allow=override)
    (found,) = lint(app, alembic, "r1")
    assert (found.rule, found.message) == (
        "no-lock-timeout",
        "runs DDL (add column account.nick) without a lock timeout",
    )


X_BRANCH = (
    "from alembic import context\n"
    'if context.get_x_argument(as_dictionary=True).get("cleanup"):\n'
    '    op.drop_column("account", "email")'
)


def test_x_arguments_reach_the_linted_code(make_app: MakeApp, make_url: MakeURL) -> None:
    """Code branching on -x is seen along the branch the run takes."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", X_BRANCH)
    assert lint(app, alembic, "r1") == []
    with app.app_context():
        found = alembic.lint("r1", x_arguments=["cleanup=1"]).findings
    assert [f.rule for f in found] == ["drop-column"]


def test_refuse_lints_with_the_runs_x_arguments(make_app: MakeApp, make_url: MakeURL) -> None:
    """ALEMBIC_LINT = "refuse" judges the code the run will run, -x included: nothing runs."""
    from conftest import table_names
    from conftest import version_rows

    url = make_url()
    app, alembic = make_app(url, ALEMBIC_LINT="refuse")
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    write(folder, "r1", "r0", X_BRANCH)
    with app.app_context():
        alembic.upgrade("r0")
    result = app.test_cli_runner().invoke(args=["db", "-x", "cleanup=1", "upgrade"])
    assert result.exit_code == 1
    assert "unaccepted lint error drop-column" in result.stderr
    assert version_rows(url) == {"r0"}
    assert "account" in table_names(url)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])  # no -x: nothing dropped
    assert result.exit_code == 0, result.output
    assert version_rows(url) == {"r1"}


@pytest.mark.parametrize(
    "call",
    [
        "op.get_context().bind.execute(sa.text('ALTER TABLE account DROP COLUMN email'))",
        "op.get_context().connection.execute(sa.text('ALTER TABLE account DROP COLUMN email'))",
        "from alembic import context\n"
        "context.get_bind().execute(sa.text('ALTER TABLE account DROP COLUMN email'))",
        "op.get_context().impl.drop_column('account', sa.Column('email', sa.String(50)))",
    ],
    ids=["context-bind", "context-connection", "environment-get-bind", "impl-directly"],
)
def test_every_way_to_the_connection_is_read(
    make_app: MakeApp, make_url: MakeURL, call: str
) -> None:
    """SQL sent through the migration context's own connection, or its impl, is read."""
    app, alembic, folder = project(make_app, make_url, PG)
    write(folder, "r1", "r0", body(call, PG))
    found = lint(app, alembic, "r1")
    assert [(f.rule, f.message) for f in found] == [
        ("drop-column", "drops column 'email' of table 'account'")
    ]


def test_refuse_stops_at_what_it_could_not_see(make_app: MakeApp, make_url: MakeURL) -> None:
    """A revision that reads the database stops the offline run: "refuse" refuses the
    unaccepted offline-failure (what follows the read was never seen)."""
    from conftest import version_rows

    url = make_url()
    app, alembic = make_app(url, ALEMBIC_LINT="refuse")
    folder = Path(app.root_path) / "migrations"
    folder.mkdir(exist_ok=True)
    write(folder, "r0", None, BASE_UP, downgrade=BASE_DOWN)
    write(
        folder,
        "r1",
        "r0",
        "n = op.get_bind().execute(sa.text('SELECT count(*) FROM account')).scalar()\n"
        'op.drop_column("account", "email")',
    )
    with app.app_context():
        alembic.upgrade("r0")
        with pytest.raises(Exception, match="unaccepted lint finding offline-failure"):
            alembic.upgrade()
    assert version_rows(url) == {"r0"}


def test_module_level_print_stays_off_stdout(
    make_app: MakeApp, make_url: MakeURL, capfd: pytest.CaptureFixture[str]
) -> None:
    app, alembic, folder = project(make_app, make_url, SQLITE)
    path = write(folder, "r1", "r0", 'op.drop_column("account", "x")')
    path.write_text('print("imported!")\n' + path.read_text())
    assert rules(lint(app, alembic, "r1")) == ["drop-column"]
    assert "imported!" not in capfd.readouterr().out


def test_a_revision_that_cannot_be_judged(make_app: MakeApp, make_url: MakeURL) -> None:
    """A type the dialect cannot render fails that revision's judging, not the lint."""
    app, alembic, folder = project(make_app, make_url, MY)
    write(
        folder,
        "r1",
        "r0",
        'op.alter_column("account", "name", type_=sa.String(), existing_type=sa.String(50))',
    )
    write(folder, "r2", "r1", 'op.drop_column("account", "email")')
    found = lint(app, alembic, "r1", "r2")
    assert [(f.revision, f.rule) for f in found] == [
        ("r1", "offline-failure"),
        ("r2", "drop-column"),
    ]
    assert "could not be judged for mysql" in found[0].message


def test_lockstep_file_is_refused_as_upgrade_refuses_it(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    from flask_alembic.errors import ScriptDirectoryError

    app, alembic, folder = project(make_app, make_url, SQLITE)
    path = write(folder, "r1", "r0", "pass")
    path.write_text(path.read_text().replace("def upgrade():", "def upgrade(engine_name):"))
    with pytest.raises(ScriptDirectoryError, match="lockstep history"):
        lint(app, alembic, "r1")


def test_lint_by_file_path(make_app: MakeApp, make_url: MakeURL) -> None:
    """A revision file's path names it (CI: the files a change adds)."""
    from flask_alembic.errors import RevisionError

    app, alembic, folder = project(make_app, make_url, SQLITE)
    path = write(folder, "r1", "r0", 'op.drop_column("account", "email")')
    assert [(f.revision, f.rule) for f in lint(app, alembic, str(path))] == [("r1", "drop-column")]
    with pytest.raises(RevisionError, match="is not a revision file"):
        lint(app, alembic, str(folder / "nope.py"))


def test_a_misspelt_rule_gets_a_suggestion(make_app: MakeApp, make_url: MakeURL) -> None:
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(folder, "r1", "r0", 'op.drop_column("account", "email")', allow={"drop-columns": "x"})
    found = {f.rule: f for f in lint(app, alembic, "r1")}
    assert set(found) == {"drop-column", "invalid-allow"}
    assert found["invalid-allow"].message == (
        "lint_allow names 'drop-columns', which is no rule (did you mean 'drop-column'?)"
    )


@pytest.mark.parametrize(
    ("on", "setting", "query", "default_query"),
    [
        pytest.param(
            PG,
            "SET lock_timeout = '2s'",
            "SHOW lock_timeout",
            "SELECT reset_val FROM pg_settings WHERE name = 'lock_timeout'",
            id="postgresql",
        ),
        pytest.param(
            MY,
            "SET SESSION foreign_key_checks = 0",
            "SELECT @@SESSION.foreign_key_checks",
            "SELECT @@GLOBAL.foreign_key_checks",
            id="mariadb",
        ),
    ],
)
def test_session_settings_stay_out_of_the_pool(
    make_app: MakeApp,
    make_url: MakeURL,
    on: str,
    setting: str,
    query: str,
    default_query: str,
) -> None:
    """What a revision SETs for its session does not reach the app's next connection:
    the migration's server connection is closed, not given back to the pool."""

    app, alembic, folder = project(make_app, make_url, on)
    write(
        folder,
        "r1",
        "r0",
        f'op.execute("{setting}")\nop.add_column("account", sa.Column("nick", sa.String(20)))',
    )
    with app.app_context():
        alembic.upgrade()
        engine = alembic.registry["default"].engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql(query).scalar() == (
            connection.exec_driver_sql(default_query).scalar()
        )


def test_no_entry_is_unused_after_an_offline_failure(make_app: MakeApp, make_url: MakeURL) -> None:
    """What follows an offline failure was not seen: an entry for it is not unused."""
    app, alembic, folder = project(make_app, make_url, SQLITE)
    write(
        folder,
        "r1",
        "r0",
        'op.create_foreign_key("fk", "account", "other", ["other_id"], ["id"])\n'
        'op.drop_table("legacy")',
        allow={"drop-table": "gone since 2.0"},
    )
    assert rules(lint(app, alembic, "r1")) == ["offline-failure"]
