"""Several databases: per-bind branches, the planner across binds, --bind everywhere."""

from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import AmbiguousTargetError
from flask_alembic.errors import ConfigurationError
from flask_alembic.errors import MigrationFailedError
from flask_alembic.errors import ScriptDirectoryError
from flask_alembic.errors import UnknownBindError


def schema(table: str, *columns: str) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        table,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(c, sa.String(20)) for c in columns),
    )
    return metadata


def three_binds(make_app: MakeApp, urls: dict[str, str], **config: object) -> tuple[Flask, Alembic]:
    metadatas = {
        "default": schema("user", "name"),
        "analytics": schema("event", "kind"),
        "audit-log": schema("entry", "what"),
    }
    return make_app(urls, {k: metadatas[k] for k in urls}, **config)


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def test_three_servers(make_app: MakeApp, make_url: MakeURL) -> None:
    """Default on PostgreSQL, analytics on MariaDB, audit-log on SQLite, each on its own."""
    urls = {
        "default": make_url("postgresql"),
        "analytics": make_url("mysql"),
        "audit-log": make_url("sqlite"),
    }
    app, alembic = three_binds(make_app, urls)
    root = Path(app.root_path) / "migrations"
    with app.app_context():
        written = alembic.revision("init")
        assert sorted(alembic.bind_of(s) for s in written) == ["analytics", "audit-log", "default"]
        assert {Path(s.path).parent for s in written} == {
            root,
            root / "analytics",
            root / "audit-log",
        }
        for script in written:
            ast.parse(Path(script.path).read_text())  # a plain, valid Python file
            assert script.down_revision is None
            assert script.branch_labels == {alembic.bind_of(script)}

        result = alembic.upgrade(bind="analytics")
        assert [s.bind for s in result.applied] == ["analytics"]
        assert "event" in table_names(urls["analytics"])
        assert table_names(urls["default"]) == set()
        assert table_names(urls["audit-log"]) == set()

        result = alembic.upgrade()
        assert {s.bind for s in result.applied} == {"default", "audit-log"}
        assert "user" in table_names(urls["default"])
        assert "entry" in table_names(urls["audit-log"])
        assert not alembic.needs_upgrade()

        alembic.downgrade("base", bind="audit-log")
        assert table_names(urls["audit-log"]) == {"alembic_version"}
        assert "user" in table_names(urls["default"])
        assert "event" in table_names(urls["analytics"])
        assert alembic.needs_upgrade()
        assert not alembic.needs_upgrade(bind=["default", "analytics"])

    cli = run(app, "current", "--check-heads")
    assert cli.exit_code == 1
    assert "audit-log: base (1 pending)" in cli.stdout
    cli = run(app, "upgrade", "--bind", "audit-log")
    assert cli.exit_code == 0, cli.output
    assert run(app, "current", "--check-heads").exit_code == 0


def test_revision_per_changed_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """revision writes only for binds whose models changed; --bind limits autogenerate."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        first = alembic.revision("init", bind="analytics")
        assert [alembic.bind_of(s) for s in first] == ["analytics"]
        alembic.upgrade(bind="analytics")
        second = alembic.revision("more")
        assert [alembic.bind_of(s) for s in second] == ["default"]
        alembic.upgrade()
        assert alembic.revision("nothing") == []
        with pytest.raises(UnknownBindError, match="needs one bind"):
            alembic.revision("empty", empty=True)
        empty = alembic.revision("empty", empty=True, bind="analytics")
        assert empty[0].down_revision == first[0].revision
    result = run(app, "revision", "x", "--empty")
    assert result.exit_code == 2
    assert "--bind NAME" in result.stderr


def test_relative_target_needs_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """+1/-1 with several binds selected is refused; BIND@+1 works."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        alembic.revision("init")
        with pytest.raises(AmbiguousTargetError, match="--bind default"):
            alembic.upgrade("+1")
        alembic.upgrade("analytics@+1")
        assert "event" in table_names(urls["analytics"])
        assert table_names(urls["default"]) == set()
        alembic.upgrade("+1", bind="default")
        alembic.downgrade("analytics@-1")
        assert table_names(urls["analytics"]) == {"alembic_version"}
    result = run(app, "downgrade")
    assert result.exit_code == 2
    assert "goes one step back, which needs a single bind" in result.stderr


def test_bind_added_later(make_app: MakeApp, make_url: MakeURL) -> None:
    """A bind added after ten revisions of another starts its own branch; old files unchanged."""
    default_url = make_url()
    app, alembic = make_app({"default": default_url}, {"default": schema("user", "name")})
    with app.app_context():
        alembic.revision("init")
        for number in range(9):
            alembic.revision(f"step {number}", empty=True)
        alembic.upgrade()
    root = Path(app.root_path) / "migrations"
    before = {p.name: p.read_text() for p in root.glob("*.py")}
    assert len(before) == 10

    analytics_url = make_url()
    app2, alembic2 = make_app(
        {"default": default_url, "analytics": analytics_url},
        {"default": schema("user", "name"), "analytics": schema("event", "kind")},
    )
    with app2.app_context():
        assert not alembic2.needs_upgrade(bind="default")
        written = alembic2.revision("analytics init")
        assert [alembic2.bind_of(s) for s in written] == ["analytics"]
        assert written[0].down_revision is None
        result = alembic2.upgrade()
        assert [s.bind for s in result.applied] == ["analytics"]
    assert {p.name: p.read_text() for p in root.glob("*.py")} == before
    assert "event" in table_names(analytics_url)


def test_with_dependencies_locks_the_dependency(make_app: MakeApp, make_url: MakeURL) -> None:
    """`upgrade --bind reports --with-dependencies` also takes the lock of bind default,
    which it migrates too: while another holder has it, the command times out, and neither
    database changes.

    Guards the locking of every involved bind in migrate.migrate: locking only the selected
    binds lets the command migrate default under another process's lock.
    """
    from flask_alembic.identity import Identities
    from flask_alembic.lockfile import sqlite_lock_path
    from flask_alembic.locking import lock_binds

    urls = {"default": make_url(), "reports": make_url()}
    app, alembic = make_app(
        urls,
        {"default": sa.MetaData(), "reports": sa.MetaData()},
        ALEMBIC_BINDS={name: {"include": True} for name in urls},
    )
    with app.app_context():
        base = alembic.revision("base", empty=True, bind="default")[0]
        after = alembic.revision("after", empty=True, bind="reports", depend=base.revision)[0]
        # A flock taken here conflicts with the command's own: each opens the file anew.
        with lock_binds([alembic.registry["default"]], 5, Identities()):
            result = run(
                app, "upgrade", "--bind", "reports", "--with-dependencies", "--lock-timeout", "0.5"
            )
    assert result.exit_code == 1, result.output
    lock_file = sqlite_lock_path(
        sa.make_url(urls["default"]).database or "", None, "alembic_version"
    )
    assert result.stderr.splitlines() == [
        "Waiting for another process migrating bind 'default'...",
        "Error: Timed out after 0.5s waiting for the migration lock of bind 'default' (held by "
        f"process {os.getpid()} (lock file {lock_file})): another process is migrating it. "
        "Wait for it to finish, or raise the wait with --lock-timeout / ALEMBIC_LOCK_TIMEOUT.",
    ]
    assert version_rows(urls["default"]) == set()
    assert version_rows(urls["reports"]) == set()

    result = run(app, "upgrade", "--bind", "reports", "--with-dependencies")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["default"]) == {base.revision}
    assert version_rows(urls["reports"]) == {after.revision}


def test_cross_bind_dependency(make_app: MakeApp, make_url: MakeURL) -> None:
    """A dependency on another bind's revision runs there first, and is refused alone."""
    urls = {"default": make_url(), "reports": make_url()}
    app, alembic = make_app(
        urls,
        {"default": schema("user"), "reports": sa.MetaData()},
        ALEMBIC_BINDS={"reports": {"include": True}},  # no models: revisions by hand
    )
    with app.app_context():
        base = alembic.revision("users")[0]
    script = Path(app.root_path) / "migrations"
    result = run(
        app, "revision", "report view", "--bind", "reports", "--empty", "--depend", base.revision
    )
    assert result.exit_code == 0, result.output
    report_file = Path(result.stdout.strip())
    assert report_file.parent == script / "reports"
    # The reports migration reads the user table through its own database: it must only
    # run on the reports database, after default's revision.
    text = report_file.read_text().replace(
        "def upgrade() -> None:\n    pass",
        "def upgrade() -> None:\n    op.create_table('report', sa.Column('id', sa.Integer))",
    )
    report_file.write_text(text)

    result = run(app, "upgrade", "--bind", "reports")
    assert result.exit_code == 1
    assert f"depends on revision {base.revision} of bind 'default'" in result.stderr
    assert "--with-dependencies" in result.stderr
    assert table_names(urls["reports"]) == set()
    assert table_names(urls["default"]) == set()

    result = run(app, "upgrade", "--bind", "reports", "--plan", "--with-dependencies")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"1. default: upgrade base -> {base.revision}")
    assert lines[1].startswith("2. reports: upgrade base -> ")

    result = run(app, "upgrade", "--bind", "reports", "--with-dependencies")
    assert result.exit_code == 0, result.output
    assert "user" in table_names(urls["default"])
    assert "report" not in table_names(urls["default"])
    assert "user" not in table_names(urls["reports"])
    assert "report" in table_names(urls["reports"])
    # The dependency is recorded only in its own bind's version table.
    assert version_rows(urls["default"]) == {base.revision}
    assert base.revision not in version_rows(urls["reports"])

    result = run(app, "downgrade", "base", "--bind", "default")
    assert result.exit_code == 1
    assert "Downgrade bind 'reports' below revision" in result.stderr
    result = run(app, "downgrade", "base", "--bind", "default", "--bind", "reports", "--plan")
    assert result.stdout.splitlines()[0].startswith("1. reports: downgrade")
    result = run(app, "downgrade", "base", "--bind", "default", "--bind", "reports")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["default"]) == set()
    assert version_rows(urls["reports"]) == set()


def test_dependency_cycle(make_app: MakeApp, make_url: MakeURL) -> None:
    """A depends_on cycle across binds is refused, naming the revisions."""
    urls = {"default": make_url(), "reports": make_url()}
    app, _ = make_app(urls, {"default": schema("user"), "reports": sa.MetaData()})
    root = Path(app.root_path) / "migrations"
    (root / "reports").mkdir()
    body = textwrap.dedent(
        """
        revision = {rev!r}
        down_revision = None
        branch_labels = ({label!r},)
        depends_on = {dep!r}
        def upgrade():
            pass
        def downgrade():
            pass
        """
    )
    (root / "a1.py").write_text(body.format(rev="aaaa0001", label="default", dep="bbbb0001"))
    (root / "reports" / "b1.py").write_text(
        body.format(rev="bbbb0001", label="reports", dep="aaaa0001")
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "aaaa0001" in result.stderr
    assert "bbbb0001" in result.stderr
    assert "ycle" in result.stderr
    assert table_names(urls["default"]) == set()


def test_two_binds_one_database(make_app: MakeApp, database_url: str) -> None:
    """Two binds on one database need distinct version tables; then they coexist."""
    urls = {"default": database_url, "analytics": database_url}
    metadatas = {"default": schema("user"), "analytics": schema("event")}
    app, alembic = make_app(urls, metadatas)
    with (
        app.app_context(),
        pytest.raises(ConfigurationError, match=r"'default' and 'analytics'.*version_table"),
    ):
        alembic.heads()
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "ALEMBIC_BINDS" in result.stderr

    app, alembic = make_app(
        urls, metadatas, ALEMBIC_BINDS={"analytics": {"version_table": "analytics_version"}}
    )
    with app.app_context():
        written = alembic.revision("init")
        assert len(written) == 2
        # Neither bind proposes to drop the other's tables.
        for script in written:
            text = Path(script.path).read_text()
            assert "drop_table" not in text.split("def downgrade")[0]
        alembic.upgrade()
        assert alembic.revision("again") == []
        assert not alembic.needs_revision()
    assert {"user", "event", "alembic_version", "analytics_version"} <= table_names(database_url)
    assert len(version_rows(database_url, "analytics_version")) == 1
    assert len(version_rows(database_url)) == 1


def test_existing_single_database_directory(
    make_app: MakeApp, database_url: str, project: Path
) -> None:
    """A plain Alembic history at the top of migrations/ is adopted unchanged by default."""
    root = project / "migrations"
    root.mkdir()
    (root / "script.py.mako").write_text(
        (Path(__file__).parent.parent / "migrations_template" / "script.py.mako").read_text()
    )
    body = textwrap.dedent(
        """
        from alembic import op
        import sqlalchemy as sa
        revision = {rev!r}
        down_revision = {down!r}
        branch_labels = None
        depends_on = None
        def upgrade():
            {up}
        def downgrade():
            pass
        """
    )
    (root / "1111_first.py").write_text(
        body.format(
            rev="1111aaaa", down=None, up="op.create_table('old', sa.Column('id', sa.Integer))"
        )
    )
    (root / "2222_second.py").write_text(body.format(rev="2222bbbb", down="1111aaaa", up="pass"))
    before = {p.name: p.read_text() for p in root.glob("*.py")}
    app, alembic = make_app(database_url, schema("old"))
    with app.app_context():
        assert [s.revision for s in alembic.heads()] == ["2222bbbb"]
        alembic.upgrade("1111aaaa")
        assert version_rows(database_url) == {"1111aaaa"}
        alembic.upgrade()
        new = alembic.revision("third", empty=True)[0]
        assert new.down_revision == "2222bbbb"
        assert not new.branch_labels
    assert {p.name: p.read_text() for p in root.glob("*.py") if p.name in before} == before


def test_plan_equals_run(make_app: MakeApp, make_url: MakeURL) -> None:
    """--plan prints exactly the steps upgrade then applies, in order."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        written = {alembic.bind_of(s): s.revision for s in alembic.revision("init")}
        more = alembic.revision("more", empty=True, bind="default")[0].revision
        plan = alembic.plan("upgrade", "heads")
    first, analytics = written["default"], written["analytics"]
    expected = [("default", first), ("default", more), ("analytics", analytics)]
    assert [(s.bind, s.revision) for s in plan.steps] == expected
    result = run(app, "upgrade", "--plan")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"1. default: upgrade base -> {first} init",
        f"2. default: upgrade {first} -> {more} more",
        f"3. analytics: upgrade base -> {analytics} init",
    ]
    with app.app_context():
        applied = alembic.run_plan(plan, parallel=1)
    assert [(s.bind, s.revision) for s in applied.applied] == expected
    assert version_rows(urls["default"]) == {more}
    assert version_rows(urls["analytics"]) == {analytics}


def test_bind_moved_since_the_plan(make_app: MakeApp, make_url: MakeURL) -> None:
    """A plan run after its bind moved is refused before any step, naming the bind.

    Guards the executor's "a bind moved since the plan was made" check (``_steps`` in
    executor.py): without it, the plan's steps run again from where the plan started.
    """
    from flask_alembic.errors import PlanChangedError

    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        written = {alembic.bind_of(s): s for s in alembic.revision("init")}
        more = alembic.revision("more", empty=True, bind="default")[0]
        plan = alembic.plan("upgrade", "heads")
        first = written["default"].revision
        assert [(s.bind, s.revision) for s in plan.steps] == [
            ("default", first),
            ("default", more.revision),
            ("analytics", written["analytics"].revision),
        ]
        alembic.upgrade(first, bind="default")  # another process, after the plan was made
        with pytest.raises(PlanChangedError) as info:
            alembic.run_plan(plan, parallel=1)
    assert info.value.bind == "default"
    assert str(info.value) == (
        f"Upgrade of bind 'default' failed at revision {first} ({written['default'].path}): "
        f"Bind 'default' is at {first}, not at base as planned: another process changed it. "
        "Run the command again to plan from the databases' new state."
    )
    assert info.value.result is not None
    assert info.value.result.applied == ()
    assert version_rows(urls["default"]) == {first}
    assert version_rows(urls["analytics"]) == set()


def test_failure_then_rerun(make_app: MakeApp, make_url: MakeURL) -> None:
    """A failing step stops the run; earlier steps stay applied; a fixed re-run completes."""
    urls = {"default": make_url(), "analytics": make_url(), "audit-log": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        written = {alembic.bind_of(s): s for s in alembic.revision("init")}
    broken = Path(written["analytics"].path)
    good = broken.read_text()
    broken.write_text(
        good.replace(
            "def upgrade() -> None:\n", "def upgrade() -> None:\n    raise RuntimeError('boom')\n"
        )
    )

    # One after another, so the bind after the failure is reported as not run.
    result = run(app, "upgrade", "--parallel", "1")
    assert result.exit_code == 1
    assert f"Failed: analytics: base -> {written['analytics'].revision}" in result.stderr
    assert "RuntimeError: boom" in result.stderr
    assert f"Not run: audit-log: base -> {written['audit-log'].revision}" in result.stderr
    assert "default: upgraded base ->" in result.stderr
    assert version_rows(urls["default"]) == {written["default"].revision}
    assert version_rows(urls["analytics"]) == set()
    assert table_names(urls["audit-log"]) == set()

    with app.app_context():
        with pytest.raises(MigrationFailedError, match=r"bind 'analytics' failed.*boom") as info:
            alembic.upgrade(parallel=1)
        assert info.value.result is not None

    broken.write_text(good)
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert "default:" not in result.stderr  # already applied: not run again
    assert version_rows(urls["analytics"]) == {written["analytics"].revision}
    assert version_rows(urls["audit-log"]) == {written["audit-log"].revision}


def test_bind_option_everywhere(make_app: MakeApp, make_url: MakeURL) -> None:
    """Every command takes --bind and limits itself to the named binds."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    assert run(app, "revision", "init").exit_code == 0
    assert run(app, "upgrade", "--bind", "default").exit_code == 0
    with app.app_context():
        head = alembic.heads(bind="analytics")[0].revision
        default_head = alembic.heads(bind="default")[0].revision
    line = f"analytics: <base> -> {head} (head), init\n"
    for command, code, stdout, stderr in [
        ("current", 0, "analytics: base (1 pending)\n", ""),
        ("heads", 0, line, ""),
        ("log", 0, line, ""),
        ("branches", 0, "", "No branch points.\n"),
        (
            "check",
            1,
            "",
            f"Error: Bind 'analytics' is at base, not at its heads ({head}), so its models "
            "cannot be compared with its database. Run 'flask db upgrade --bind analytics' "
            "first.\n",
        ),
    ]:
        result = run(app, command, "--bind", "analytics")
        assert (result.exit_code, result.stdout, result.stderr) == (code, stdout, stderr), command
    result = run(app, "current")
    assert result.stdout == f"default: {default_head} (head)\nanalytics: base (1 pending)\n"
    result = run(app, "show", head, "--bind", "default")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Unknown revision '{head}' (looked in bind(s): default). Run 'flask db log' "
        "to list the revisions, or 'flask db heads' for the heads.\n"
    )
    result = run(app, "show", head, "--bind", "analytics")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:4] == [
        "Bind: analytics",
        f"Rev: {head} (head)",
        "Parent: <base>",
        "Branch names: analytics",
    ]
    result = run(app, "stamp", "--bind", "analytics")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == f"plan 1. analytics: stamp base -> {head}"
    assert version_rows(urls["analytics"]) == {head}
    assert version_rows(urls["default"]) == {default_head}
    result = run(app, "upgrade", "analytics@head", "--bind", "default")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Target 'analytics@head' belongs to bind 'analytics', which is not selected. "
        "Add --bind analytics, or drop --bind.\n"
    )


def test_check_heads_needs_every_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """`current --check-heads` exits 1 while any one bind is behind its heads.

    Guards the ``all(...)`` in cli.current: with ``any(...)``, one bind at its heads
    would be enough to exit 0.
    """
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        written = {alembic.bind_of(s): s.revision for s in alembic.revision("init")}
        alembic.upgrade(bind="default")
    result = run(app, "current", "--check-heads")
    assert result.exit_code == 1
    assert result.stdout == (
        f"default: {written['default']} (head)\nanalytics: base (1 pending)\n"
        "Database is not on all head revisions\n"
    )
    assert result.stderr == (
        "Not up to date: analytics is behind: run 'flask db upgrade --bind analytics'.\n"
    )
    result = run(app, "current", "--check-heads", "--bind", "default")
    assert (result.exit_code, result.stderr) == (0, "")
    with app.app_context():
        alembic.upgrade(bind="analytics")
    result = run(app, "current", "--check-heads")
    assert (result.exit_code, result.stderr) == (0, "")


def test_ops_and_contexts_per_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """ops[name] and migration_contexts[name] act on that bind's own database."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade()
        alembic.ops["analytics"].drop_column("event", "kind")
        alembic.migration_contexts["analytics"].connection.commit()  # type: ignore[union-attr]
        assert [d[0] for d in alembic.compare_metadata(bind="analytics")] == ["add_column"]
        assert alembic.compare_metadata(bind="default") == []
        assert alembic.needs_revision()
        assert not alembic.needs_revision(bind="default")
        with pytest.raises(UnknownBindError, match="Known binds"):
            alembic.ops["nope"]
    engine = sa.create_engine(urls["default"])
    assert "name" in {c["name"] for c in sa.inspect(engine).get_columns("user")}
    engine.dispose()


def test_no_default_bind_accessors(make_app: MakeApp, make_url: MakeURL) -> None:
    """With no 'default' bind, single-database accessors explain the per-bind ones."""
    urls = {"one": make_url(), "two": make_url()}
    app, alembic = make_app(urls, {"one": schema("a"), "two": schema("b")})
    with app.app_context(), pytest.raises(UnknownBindError, match=r"migration_contexts\[name\]"):
        alembic.context  # noqa: B018


def test_plain_alembic_reads_the_files(make_app: MakeApp, make_url: MakeURL) -> None:
    """Alembic's own ScriptDirectory loads every bind's revisions: they are plain revisions."""
    urls = {"default": make_url(), "audit-log": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        written = alembic.revision("init")
    root = Path(app.root_path) / "migrations"
    plain = ScriptDirectory(str(root), version_locations=[str(root), str(root / "audit-log")])
    assert {r.revision for r in plain.walk_revisions()} == {s.revision for s in written}
    assert plain.get_revisions("audit-log@head")[0] is not None


def test_broken_history_across_binds(make_app: MakeApp, make_url: MakeURL) -> None:
    """A revision whose parent belongs to another bind is refused with the fix."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        written = {alembic.bind_of(s): s for s in alembic.revision("init")}
    root = Path(app.root_path) / "migrations"
    (root / "analytics" / "bad.py").write_text(
        f"revision = 'badd0001'\ndown_revision = {written['default'].revision!r}\n"
        "def upgrade():\n    pass\ndef downgrade():\n    pass\n"
    )
    with app.app_context(), pytest.raises(ScriptDirectoryError, match="depends_on"):
        alembic.heads()


def test_merge_per_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """merge --bind A --bind B merges each bind's heads in its own history."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        roots = {alembic.bind_of(s): s for s in alembic.revision("init")}
        for name, root in roots.items():
            alembic.revision("left", empty=True, bind=name)
            alembic.revision("right", empty=True, bind=name, parent=root.revision, splice=True)
    result = run(app, "merge")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Several binds have more than one head: default, analytics. Merge each with "
        "--bind, repeated: 'flask db merge --bind default --bind analytics' writes one merge "
        "revision per bind."
    ]
    result = run(app, "merge", "--bind", "default", "--bind", "analytics")
    assert result.exit_code == 0, result.output
    with app.app_context():
        for name in roots:
            heads = alembic.heads(bind=name)
            assert len(heads) == 1
            assert alembic.bind_of(heads[0]) == name
        alembic.upgrade()
        assert not alembic.needs_upgrade()


def test_status_with_pending_cross_bind_dependency(make_app: MakeApp, make_url: MakeURL) -> None:
    """current/status count a bind's own pending steps even when they depend on another bind."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = three_binds(make_app, urls)
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade()
        alembic.revision("needs analytics", empty=True, bind="default", depend="analytics@head")
        statuses = {s.bind: s for s in alembic.status()}
        assert statuses["default"].pending == 1
        assert statuses["analytics"].up_to_date
        assert alembic.needs_upgrade()
    result = run(app, "current")
    assert result.exit_code == 0, result.output
    assert "default: " in result.stdout
    assert "(1 pending)" in result.stdout


def test_ambiguous_revision_across_binds(make_app: MakeApp, make_url: MakeURL) -> None:
    """A prefix matching revisions of two binds is refused, naming both; nothing runs."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, _ = three_binds(make_app, urls)
    assert run(app, "revision", "a", "--bind", "default", "--rev-id", "abcd0001").exit_code == 0
    assert run(app, "revision", "b", "--bind", "analytics", "--rev-id", "abcd0002").exit_code == 0
    result = run(app, "upgrade", "abcd")
    assert result.exit_code == 1
    assert "matches revisions in binds default, analytics" in result.stderr
    assert "BIND@REV" in result.stderr
    assert table_names(urls["default"]) == set()
    assert table_names(urls["analytics"]) == set()
    result = run(app, "upgrade", "analytics@abcd")
    assert result.exit_code == 0, result.output
    assert table_names(urls["default"]) == set()
