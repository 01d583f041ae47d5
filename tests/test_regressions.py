"""Behaviours found wrong in review, each pinned by a test."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import models
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic.errors import NotUpToDateError
from flask_alembic.redact import safe_url


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def insert_version(url: str, rev: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text(f"INSERT INTO alembic_version VALUES ('{rev}')"))
    engine.dispose()


def test_stamp_repairs_unknown_revision(make_app: MakeApp, database_url: str) -> None:
    """stamp overwrites a version table holding a revision the scripts do not know."""
    app, alembic = make_app(database_url)
    with app.app_context():
        script = alembic.revision("a")[0]
    insert_version(database_url, "deadbeef0000")
    assert run(app, "current").exit_code == 1
    result = run(app, "stamp", "heads")
    assert result.exit_code == 0, result.output
    assert version_rows(database_url) == {script.revision}
    assert run(app, "current", "--check-heads").exit_code == 0


def test_stamp_purge(make_app: MakeApp, database_url: str) -> None:
    """stamp --purge empties the table, then records the target."""
    app, alembic = make_app(database_url)
    with app.app_context():
        first = alembic.revision("a")[0]
        second = alembic.revision("b", empty=True)[0]
        alembic.upgrade()
    for target, expected in (("heads", second.revision), (first.revision, first.revision)):
        result = run(app, "stamp", "--purge", target)
        assert result.exit_code == 0, result.output
        assert version_rows(database_url) == {expected}


def test_tag_reaches_migrations(make_app: MakeApp, database_url: str, tmp_path: Path) -> None:
    """--tag is passed to the migrations online, not only with --sql."""
    app, alembic = make_app(database_url)
    marker = tmp_path / "tag.txt"
    with app.app_context():
        script = alembic.revision("tagged", empty=True, bind="default")[0]
    path = Path(script.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n    pass",
            "def upgrade() -> None:\n"
            "    from alembic import context\n"
            "    from pathlib import Path\n"
            f"    Path({str(marker)!r}).write_text(str(context.get_tag_argument()))",
        )
    )
    assert run(app, "upgrade", "--tag", "hello").exit_code == 0
    assert marker.read_text() == "hello"


def test_offline_sql_with_cross_bind_dependency(make_app: MakeApp, make_url: MakeURL) -> None:
    """--sql for one bind assumes other binds are migrated, instead of refusing."""
    urls = {"default": make_url(), "reports": make_url()}
    app, alembic = make_app(
        urls,
        {"default": models(), "reports": sa.MetaData()},
        ALEMBIC_BINDS={"reports": {"include": True}},
    )
    with app.app_context():
        base = alembic.revision("users")[0]
        alembic.revision("view", empty=True, bind="reports", depend=base.revision)
    result = run(app, "upgrade", "--sql", "--bind", "reports")
    assert result.exit_code == 0, result.output
    assert "alembic_version" in result.stdout
    assert "CREATE TABLE user" not in result.stdout
    result = run(app, "upgrade", "--sql", "--bind", "reports", "--with-dependencies")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE user" in result.stdout


def test_single_transaction_failure_reports_nothing_applied(
    make_app: MakeApp, make_url: MakeURL
) -> None:
    """With transaction_per_migration off, a failure on PostgreSQL undoes (and reports) all."""
    url = make_url("postgresql")
    app, alembic = make_app(url, ALEMBIC_CONTEXT={"transaction_per_migration": False})
    with app.app_context():
        alembic.revision("a")
        bad = alembic.revision("b", empty=True)[0]
    path = Path(bad.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n    pass", "def upgrade() -> None:\n    raise ValueError('no')"
        )
    )
    result = run(app, "upgrade")
    assert result.exit_code == 1
    assert "default: stopped at base -> base (0 steps" in result.stderr
    assert "Nothing was applied" in result.stderr
    assert version_rows(url) == set()
    assert table_names(url) == set()


def test_revision_all_or_nothing(make_app: MakeApp, make_url: MakeURL) -> None:
    """If one bind cannot be compared, no bind's revision is written."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, alembic = make_app(urls, {"default": models(), "analytics": models()})
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade(bind="default")
    root = Path(app.root_path) / "migrations"
    before = sorted(p.name for p in root.rglob("*.py"))
    app2, alembic2 = make_app(urls, {"default": models(with_name=False), "analytics": models()})
    with app2.app_context(), pytest.raises(NotUpToDateError, match="'analytics'"):
        alembic2.revision("change")
    assert sorted(p.name for p in root.rglob("*.py")) == before


def test_traceback_reaches_the_revision(tmp_path: Path, make_url: MakeURL) -> None:
    """--traceback on a failed migration shows the revision file's own line."""
    url = make_url()
    (tmp_path / "tbapp.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from flask import Flask
            from flask_alembic import Alembic

            def create_app():
                app = Flask(__name__)
                app.config["ALEMBIC_BINDS"] = {{"default": {{"include": True}}}}
                Alembic(app, engines=sa.create_engine({url!r}), metadatas=sa.MetaData())
                return app
            """
        )
    )
    env = {"PATH": "/usr/bin:/bin", "FLASK_APP": "tbapp:create_app"}

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "db", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    assert flask("revision", "x", "--empty").returncode == 0
    (path,) = (tmp_path / "migrations").glob("*_x.py")
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n    pass", "def upgrade() -> None:\n    undefined_name"
        )
    )
    result = flask("--traceback", "upgrade")
    assert result.returncode == 1
    assert f'File "{path}"' in result.stderr
    assert "NameError" in result.stderr
    result = flask("upgrade")
    assert "Traceback" not in result.stderr


def test_missing_template(make_app: MakeApp, database_url: str, project: Path) -> None:
    """A migrations folder without script.py.mako: a clear error, and mkdir restores it."""
    (project / "migrations").mkdir()
    app, _ = make_app(database_url)
    assert not (project / "migrations" / "script.py.mako").exists()  # existing folder untouched
    result = run(app, "revision", "x")
    assert result.exit_code == 1
    assert "script.py.mako is missing" in result.stderr
    assert "flask db mkdir" in result.stderr
    assert run(app, "mkdir").exit_code == 0
    assert (project / "migrations" / "script.py.mako").is_file()
    assert run(app, "revision", "x").exit_code == 0


def test_post_write_hook_silent(make_app: MakeApp, database_url: str) -> None:
    """Post-write hooks do not print through the Python API, nor onto the CLI's stdout."""
    hooks = {"hooks": "noop", "noop.type": "exec", "noop.executable": "true"}
    app, alembic = make_app(database_url, ALEMBIC={"post_write_hooks": hooks})
    buffer = io.StringIO()
    with app.app_context(), redirect_stdout(buffer):
        alembic.revision("a")
    assert buffer.getvalue() == ""
    result = run(app, "revision", "b", "--empty")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.strip().endswith("_b.py")


def test_show_heads_every_bind(make_app: MakeApp, make_url: MakeURL) -> None:
    """show heads shows each bind's head."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, _ = make_app(urls, {"default": models(), "analytics": models()})
    assert run(app, "revision", "init").exit_code == 0
    result = run(app, "show", "heads")
    assert result.stdout.count("Rev: ") == 2
    assert "Bind: default" in result.stdout
    assert "Bind: analytics" in result.stdout


def test_check_behind_heads(make_app: MakeApp, database_url: str) -> None:
    """check on a database behind its scripts says to upgrade, not that models differ."""
    app, _ = make_app(database_url)
    assert run(app, "revision", "init").exit_code == 0
    result = run(app, "check")
    assert result.exit_code == 1
    assert "not at its heads" in result.stderr
    assert "flask db upgrade --bind default" in result.stderr


def test_relative_downgrade_argument(make_app: MakeApp, database_url: str) -> None:
    """`flask db downgrade -1` is a target, not an unknown option."""
    app, alembic = make_app(database_url)
    with app.app_context():
        first = alembic.revision("a")[0]
        alembic.revision("b", empty=True)
        alembic.upgrade()
    result = run(app, "downgrade", "-1")
    assert result.exit_code == 0, result.output
    assert version_rows(database_url) == {first.revision}
    assert run(app, "upgrade", "+1").exit_code == 0
    assert run(app, "downgrade", "--bogus").exit_code == 2


def test_context_options_do_not_clash_offline(make_app: MakeApp, database_url: str) -> None:
    """ALEMBIC_CONTEXT may set options that --sql also sets."""
    app, alembic = make_app(database_url, ALEMBIC_CONTEXT={"literal_binds": True})
    with app.app_context():
        alembic.revision("a")
    result = run(app, "upgrade", "--sql")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE" in result.stdout


def test_empty_heads_message(make_app: MakeApp, database_url: str) -> None:
    """heads says so when there are no revisions yet."""
    app, _ = make_app(database_url)
    result = run(app, "heads")
    assert result.exit_code == 0
    assert "No revisions yet." in result.stderr


def test_secret_query_rendered_plainly() -> None:
    """Hidden query parameters read as ***, not URL-encoded stars."""
    url = sa.make_url("postgresql://u:p@h/db?sslpassword=x&sslmode=require")
    assert safe_url(url) == "postgresql://u:***@h/db?sslmode=require&sslpassword=***"


def test_option_value_minus_one_is_not_a_target(make_app: MakeApp, database_url: str) -> None:
    """`--tag -1 --plan` gives -1 to --tag and only plans; nothing runs."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a")
        alembic.revision("b", empty=True)
        alembic.upgrade()
    before = version_rows(database_url)
    result = run(app, "downgrade", "--tag", "-1", "--plan")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1. default: downgrade")
    assert version_rows(database_url) == before
    assert run(app, "upgrade", "--lock-timeout", "-1").exit_code == 2


def test_current_json_error_is_one_object(make_app: MakeApp, database_url: str) -> None:
    """current --json prints one JSON object even when a bind is in error."""
    import json

    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a")
    insert_version(database_url, "deadbeef0000")
    result = run(app, "current", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)  # exactly one object: this would fail on two
    assert data["binds"][0]["state"] == "ahead/unknown revision"
    assert "deadbeef0000" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("upgrade", "--sql", "--json"), "cannot be combined with --json"),
        (("stamp", "--sql", "--purge"), "--purge cannot be used with --sql"),
        (("upgrade", "--output-dir", "out"), "--output-dir goes with --sql"),
        (("upgrade", "--parallel", "0"), "--parallel"),
    ],
)
def test_conflicting_options(
    make_app: MakeApp, database_url: str, args: tuple[str, ...], message: str
) -> None:
    """Options that cannot go together are usage errors; nothing changes."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a")
    result = run(app, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert table_names(database_url) == set()


def test_bad_parallel_even_with_nothing_to_do(make_app: MakeApp, database_url: str) -> None:
    """A bad ALEMBIC_PARALLEL is reported on a no-op upgrade too; parallel= names itself."""
    from flask_alembic.errors import ConfigurationError

    app, alembic = make_app(database_url, ALEMBIC_PARALLEL="many")
    with app.app_context():
        with pytest.raises(ConfigurationError, match="'ALEMBIC_PARALLEL'"):
            alembic.upgrade()
        with pytest.raises(ConfigurationError, match=r"^parallel must be"):
            alembic.upgrade(parallel=0)


def test_interrupted_result_is_not_ok() -> None:
    """A result carrying an error (an interruption) is not ok."""
    from flask_alembic.executor import MigrationResult
    from flask_alembic.plan import Plan

    plan = Plan(direction="upgrade", steps=(), start={})
    assert MigrationResult(plan=plan, binds=()).ok
    assert not MigrationResult(plan=plan, binds=(), error="interrupted by SIGINT").ok


def test_help_does_not_load_alembic(tmp_path: Path) -> None:
    """`flask db upgrade --help` and a failing --check stay off Alembic's import."""
    (tmp_path / "helpapp.py").write_text(
        textwrap.dedent(
            f"""
            import sqlalchemy as sa
            from flask import Flask
            from flask_alembic import Alembic

            def create_app():
                app = Flask(__name__)
                engine = sa.create_engine("sqlite:///{tmp_path / "h.db"}")
                Alembic(app, engines=engine, metadatas=sa.MetaData())
                return app
            """
        )
    )
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('ALEMBIC', 'alembic' in sys.modules,"
        " 'RICH', 'rich' in sys.modules, file=sys.stderr))\n"
        "from flask.cli import main\n"
        "sys.argv = ['flask', '--app', 'helpapp', 'db'] + sys.argv[1:]\n"
        "main()\n"
    )
    for args in (["upgrade", "--help"], ["status", "--check"]):
        result = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert "ALEMBIC False RICH False" in result.stderr, (args, result.stderr)
    # A run with work to do loads Alembic, but still not Rich when the output is a pipe.
    (tmp_path / "migrations").mkdir(exist_ok=True)
    (tmp_path / "migrations" / "aaaa_first.py").write_text(
        "revision = 'aaaa'\ndown_revision = None\nbranch_labels = ('default',)\n"
        "depends_on = None\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "upgrade"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "ALEMBIC True RICH False" in result.stderr, result.stderr


def test_hints_use_the_registered_command_name(tmp_path: Path) -> None:
    """With command_name="migrate", hints say 'flask migrate ...', not 'flask db ...'."""
    import json

    from flask_alembic import Alembic

    url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = sa.create_engine(url)
    app = Flask("renamed", root_path=str(tmp_path))
    alembic = Alembic(app, command_name="migrate", engines=engine, metadatas=models())
    runner = app.test_cli_runner()
    try:
        with app.app_context():
            alembic.revision("first")
        result = runner.invoke(args=["migrate", "check"])
        assert result.exit_code == 1
        assert "Run 'flask migrate upgrade --bind default' first." in result.stderr
        assert "flask db" not in result.output

        result = runner.invoke(args=["migrate", "current", "--check-heads"])
        assert result.exit_code == 1
        assert "run 'flask migrate upgrade'." in result.stderr

        insert_version(url, "0badc0ffee00")
        result = runner.invoke(args=["migrate", "status", "--json"])
        error = json.loads(result.stdout)["binds"][0]["error"]
        assert "'flask migrate stamp --bind default REV'" in error
        result = runner.invoke(args=["migrate", "upgrade"])
        assert result.exit_code == 1
        assert "'flask migrate stamp --bind default REV'" in result.stderr
        assert "flask db" not in result.output
    finally:
        engine.dispose()


def test_cycles_left_by_a_step_are_collected_during_the_run(
    make_app: MakeApp, make_url: MakeURL, project: Path
) -> None:
    """The cycle collector runs between the steps of a long upgrade: what a step leaves in
    reference cycles (as op.create_table does) is freed during the run, not at its end, so
    memory does not grow with the number of steps."""
    url = make_url()
    app, _ = make_app(url)
    migrations = project / "migrations"
    migrations.mkdir(exist_ok=True)
    marker = project / "freed"
    answer = project / "answer"
    (migrations / "a_first.py").write_text(
        textwrap.dedent(
            f"""
            import weakref
            from pathlib import Path

            revision = "aaaa"
            down_revision = None


            class Node:
                pass


            def upgrade():
                node = Node()
                node.self = node  # a cycle: only the collector frees it
                weakref.finalize(node, Path({str(marker)!r}).touch)


            def downgrade():
                pass
            """
        )
    )
    (migrations / "b_second.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            revision = "bbbb"
            down_revision = "aaaa"


            def upgrade():
                for _ in range(100):
                    garbage = [[] for _ in range(1000)]  # allocations that trigger collections
                del garbage
                freed = Path({str(marker)!r}).exists()
                Path({str(answer)!r}).write_text("freed" if freed else "kept")


            def downgrade():
                pass
            """
        )
    )
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert answer.read_text() == "freed"
    assert version_rows(url) == {"bbbb"}
