"""Code, config and scripts written for Flask-Alembic 3.3.0 work unchanged.

Each test is written as a 3.x user would have written it: a Flask-SQLAlchemy app with
``Alembic(app)``, 3.x's calls, 3.x's ``except`` clauses, 3.x's settings, and scripts that
grep 3.x's words. Then the hints of point 6: none suggests ``upgrade`` when the tables the
next revision creates exist already.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.util import CommandError
from click.testing import Result
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_alembic import Alembic
from flask_alembic.errors import VersionTableMismatchError

App3 = tuple[Flask, SQLAlchemy, Alembic]
MakeApp3 = Callable[..., App3]


@pytest.fixture
def make_app3(project: Path) -> Iterator[MakeApp3]:
    """A Flask-Alembic 3 style app: Flask-SQLAlchemy models, then ``Alembic(app)``."""
    made: list[App3] = []

    def factory(
        url: str,
        binds: dict[str, str] | None = None,
        *,
        alembic: Alembic | None = None,
        **config: Any,
    ) -> App3:
        app = Flask("app3", root_path=str(project))
        app.config["SQLALCHEMY_DATABASE_URI"] = url
        app.config["SQLALCHEMY_BINDS"] = binds or {}
        app.config.update(config)
        db = SQLAlchemy(app)

        class User(db.Model):  # type: ignore[name-defined,misc]
            id = sa.Column(sa.Integer, primary_key=True)
            name = sa.Column(sa.String(50))

        for name in binds or {}:
            type(
                f"Log_{name}",
                (db.Model,),
                {
                    "__tablename__": f"log_{name}",
                    "__bind_key__": name,
                    "id": sa.Column(sa.Integer, primary_key=True),
                },
            )
        extension = alembic if alembic is not None else Alembic()
        extension.init_app(app)
        made.append((app, db, extension))
        return app, db, extension

    yield factory
    for app, db, _ in made:
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def only_error(result: Result) -> str:
    """The one ``Error:`` line of a failed command (no traceback)."""
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.py")}


# -- 1. configuration problems: RuntimeError, at first use ---------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ALEMBIC": "migrations"}, "'ALEMBIC' must be a dict of Alembic options"),
        ({"ALEMBIC_CONTEXT": ["compare_type"]}, "'ALEMBIC_CONTEXT' must be a dict"),
        ({"ALEMBIC": {"script_location": 5}}, "'ALEMBIC['script_location']' must be a folder"),
        ({"ALEMBIC": {"version_locations": [("audit",)]}}, "a pair must be (branch name, folder)"),
        ({"ALEMBIC_BINDS": {"nope": {}}}, "'ALEMBIC_BINDS['nope']' configures a bind"),
    ],
)
def test_bad_config_registers_and_fails_on_first_use(
    project: Path, tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    """An app factory registers the extension with a bad config; the first call raises
    a RuntimeError naming the setting, and the CLI says it in one line, exit 1."""
    app = Flask("factory", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'app.db'}"
    app.config.update(config)
    db = SQLAlchemy(app)
    alembic = Alembic()
    alembic.init_app(app)  # 3.x never raised here: neither do we
    try:
        with app.app_context():
            with pytest.raises(RuntimeError) as info:
                alembic.upgrade()
            assert message in str(info.value)
            with pytest.raises(RuntimeError):
                alembic.current()
        result = run(app, "upgrade")
        assert result.exit_code == 1
        assert message in only_error(result)
        assert (
            not (tmp_path / "app.db").exists()
            or table_names(f"sqlite:///{tmp_path / 'app.db'}") == set()
        )
    finally:
        with app.app_context():
            db.engine.dispose()


def test_no_engine_is_3x_runtime_error(project: Path) -> None:
    """3.x: 'When not using Flask-SQLAlchemy, pass metadatas' -- a RuntimeError at first use."""
    app = Flask("bare", root_path=str(project))
    alembic = Alembic(app)
    with app.app_context(), pytest.raises(RuntimeError, match="No database engine found"):
        alembic.upgrade()


def test_folder_that_cannot_be_made_is_reported_on_use(project: Path, tmp_path: Path) -> None:
    """A migrations folder blocked by a file: init_app passes, mkdir() says why."""
    (project / "blocked").write_text("not a folder")
    app = Flask("blocked", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'b.db'}"
    app.config["ALEMBIC"] = {"script_location": "blocked/migrations"}
    db = SQLAlchemy(app)
    alembic = Alembic(app)
    with app.app_context():
        with pytest.raises(OSError, match=r"Not a directory|File exists"):
            alembic.mkdir()
        db.engine.dispose()


# -- 1. bad revisions: Alembic's CommandError, as 3.x raised -------------------------------


def test_bad_revisions_are_command_errors(
    make_app3: MakeApp3, make_url: MakeURL, dialect: str
) -> None:
    """except CommandError around upgrade, downgrade, stamp, log, revision and merge."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        alembic.revision("users")
        calls: list[Callable[[], object]] = [
            lambda: alembic.upgrade("nope"),
            lambda: alembic.downgrade("nope"),
            lambda: alembic.stamp("nope"),
            lambda: alembic.log("nope"),
            lambda: alembic.revision("x", parent="nope"),
            lambda: alembic.merge(["nope", "other"]),
        ]
        for call in calls:
            with pytest.raises(CommandError, match="nope"):
                call()
    assert table_names(url) == set()
    assert version_rows(url) == set()


def test_revision_when_not_up_to_date_is_command_error(
    make_app3: MakeApp3, make_url: MakeURL, dialect: str
) -> None:
    """3.x: Alembic's 'Target database is not up to date.' was a CommandError."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        alembic.revision("users")
        before = files(Path(app.root_path))
        with pytest.raises(CommandError, match="not at its heads"):
            alembic.revision("again")
        assert files(Path(app.root_path)) == before


def test_unknown_bind_is_key_error(make_app3: MakeApp3, make_url: MakeURL) -> None:
    """migration_contexts['nope'] raises KeyError, and .get('nope') is None, as in 3.x."""
    app, _, alembic = make_app3(make_url())
    with app.app_context():
        with pytest.raises(KeyError):
            alembic.migration_contexts["nope"]
        assert alembic.migration_contexts.get("nope") is None
        assert "nope" not in alembic.ops
        assert alembic.migration_contexts.get("default") is not None


# -- 1. the same default config keys -------------------------------------------------------


def test_default_config_keys(make_app3: MakeApp3, make_url: MakeURL) -> None:
    """ALEMBIC gets path_separator and version_locations, ALEMBIC_CONTEXT compare_server_default."""
    app, _, _ = make_app3(make_url())
    assert app.config["ALEMBIC"] == {
        "script_location": "migrations",
        "path_separator": "os",
        "version_locations": [],
    }
    assert app.config["ALEMBIC_CONTEXT"] == {"compare_server_default": True}


def test_3x_settings_work(make_app3: MakeApp3, make_url: MakeURL, project: Path) -> None:
    """Setting path_separator, version_locations and ALEMBIC_CONTEXT as 3.x users did."""
    url = make_url()
    (project / "more").mkdir()
    app, _, alembic = make_app3(
        url,
        ALEMBIC={"path_separator": "space", "version_locations": ["more"]},
        ALEMBIC_CONTEXT={"compare_type": True},
    )
    with app.app_context():
        script = alembic.revision("users", path="more")[0]
        assert Path(script.path).parent == project / "more"
        alembic.upgrade()
        assert [s.revision for s in alembic.current()] == [script.revision]
        assert alembic.migration_context.opts["compare_type"] is True
    assert version_rows(url) == {script.revision}


# -- 1. (branch, path) version locations and --branch --------------------------------------


def test_branch_tuples_and_revision_branch(
    make_app3: MakeApp3, make_url: MakeURL, dialect: str, project: Path
) -> None:
    """3.x independent branches: the first starts at base labelled, later ones extend
    NAME@head, files go to the tuple's path; plain revisions extend the default branch."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url, ALEMBIC={"version_locations": [("audit", "audit_versions")]})
    with app.app_context():
        alembic.mkdir()
        assert (project / "audit_versions").is_dir()
        users = alembic.revision("users")[0]
        first = alembic.revision("audit one", empty=True, branch="audit")[0]
        assert Path(first.path).parent == project / "audit_versions"
        assert first.down_revision is None
        assert first.branch_labels == {"audit"}
    result = run(app, "revision", "--empty", "--branch", "audit", "audit two")
    assert result.exit_code == 0, result.output
    with app.app_context():
        second = alembic.script_directory.get_revision(
            Path(result.stdout.strip()).name.split("_")[0]
        )
        assert second.down_revision == first.revision
        assert Path(second.path).parent == project / "audit_versions"
        alembic.upgrade()
        # Plain revision: extends the default branch, as 3.x's branch="default" did.
        assert not alembic.needs_revision()
        assert alembic.revision("nothing") == []
        third = alembic.revision("default two", empty=True)[0]
        assert third.down_revision == users.revision
        alembic.upgrade()
        assert sorted(r.revision for r in alembic.heads()) == sorted(
            [third.revision, second.revision]
        )
    assert version_rows(url) == {third.revision, second.revision}
    status = run(app, "status")
    assert status.exit_code == 0
    assert "state=up to date" in status.stdout


def test_branch_with_several_binds(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """--branch BIND is --bind BIND; a new branch goes to the default bind, or to --bind."""
    url, other = make_url(dialect), make_url(dialect)
    app, _, alembic = make_app3(url, {"other": other})
    with app.app_context():
        scripts = alembic.revision("init")
        assert {alembic.bind_of(s) for s in scripts} == {"default", "other"}
        alembic.upgrade()
        by_bind = alembic.revision("o", empty=True, branch="other")
        assert [alembic.bind_of(s) for s in by_bind] == ["other"]
        new = alembic.revision("side", empty=True, branch="side")[0]
        assert alembic.bind_of(new) == "default"
        assert new.branch_labels == {"side"}
    result = run(app, "revision", "--empty", "--branch", "side2", "--bind", "other", "x")
    assert result.exit_code == 0, result.output
    with app.app_context():
        rev = Path(result.stdout.strip()).name.split("_")[0]
        assert alembic.bind_of(rev) == "other"
    result = run(
        app, "revision", "--empty", "--branch", "s", "--bind", "default", "--bind", "other", "x"
    )
    assert result.exit_code == 2
    assert "--branch 's' needs one bind" in only_error(result)


# -- 1. 3.x's words in check and current --check-heads ------------------------------------


def test_check_prints_3x_words(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """'No changes detected.' exit 0, 'Changes detected.' exit 1, with several binds too."""
    url, other = make_url(dialect), make_url(dialect)
    app, db, alembic = make_app3(url, {"other": other})
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade()
    result = run(app, "check")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "No changes detected."
    with app.app_context():
        db.metadatas["other"].tables["log_other"].append_column(sa.Column("note", sa.String(20)))
    result = run(app, "check")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "Changes detected."
    assert "other: add column log_other.note" in result.stdout
    as_json = run(app, "check", "--json")
    assert "Changes detected." not in as_json.stdout


def test_current_check_heads_3x_words(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """'Database is not on all head revisions' and exit 1 when one of two binds is behind."""
    url, other = make_url(dialect), make_url(dialect)
    app, _, alembic = make_app3(url, {"other": other})
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade(bind="default")
    result = run(app, "current", "--check-heads")
    assert result.exit_code == 1
    assert "Database is not on all head revisions" in result.stdout.splitlines()
    assert "Not up to date: other is behind: run 'flask db upgrade --bind other'." in result.stderr
    with app.app_context():
        alembic.upgrade()
    result = run(app, "current", "--check-heads")
    assert result.exit_code == 0
    assert "Database is not on all head revisions" not in result.output


# -- 1. the API, method by method ------------------------------------------------------------


def test_rev_id_override(make_app3: MakeApp3, make_url: MakeURL) -> None:
    """A subclass's rev_id() names new revisions and merges, as in 3.x."""
    counter = iter(range(1795310001, 1795310100))

    class MyAlembic(Alembic):
        def rev_id(self) -> str:
            return str(next(counter))

    app, _, alembic = make_app3(make_url(), alembic=MyAlembic())
    with app.app_context():
        first = alembic.revision("users")[0]
        assert first.revision == "1795310001"
        a = alembic.revision("a", empty=True)[0]
        b = alembic.revision("b", empty=True, parent=first.revision, splice=True)[0]
        merged = alembic.merge([a, b])
        assert (a.revision, b.revision, merged.revision) == (
            "1795310002",
            "1795310003",
            "1795310004",
        )
        alembic.rev_id = lambda: "fixed_id"  # type: ignore[method-assign]
        assert alembic.revision("c", empty=True)[0].revision == "fixed_id"
        with pytest.raises(CommandError, match="already used"):
            alembic.revision("d", empty=True)


def test_targets_as_3x_gave_them(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """Script objects, ints such as -1, lists of one, 'current' in log, heads(True)."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        one = alembic.revision("users")[0]
        two = alembic.revision("two", empty=True)[0]
        three = alembic.revision("three", empty=True)[0]
        alembic.upgrade(one)
        assert [s.revision for s in alembic.current()] == [one.revision]
        assert [s.revision for s in alembic.log("current")] == [
            three.revision,
            two.revision,
            one.revision,
        ]
        assert [s.revision for s in alembic.log(end="current")] == [one.revision]
        alembic.upgrade()
        alembic.downgrade(-1)
        assert [s.revision for s in alembic.current()] == [two.revision]
    result = run(app, "downgrade", "1")  # 3.x: a positive count goes down too
    assert result.exit_code == 0, result.output
    assert version_rows(url) == {one.revision}
    assert run(app, "upgrade", "+1").exit_code == 0
    with app.app_context():
        alembic.downgrade([one])
        assert version_rows(url) == {one.revision}
        alembic.stamp(three)
        assert version_rows(url) == {three.revision}
        assert [s.revision for s in alembic.heads(True)] == [three.revision]
        assert alembic.needs_upgrade() is False
        with pytest.raises(CommandError, match="Several targets"):
            alembic.stamp([one, two])


def test_compare_and_produce_like_3x(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """produce_migrations() with several binds: one upgrade_ops per bind, 3.x's tokens;
    compare_metadata() and needs_revision() see every bind."""
    url, other = make_url(dialect), make_url(dialect)
    app, _, alembic = make_app3(url, {"other": other})
    with app.app_context():
        script = alembic.produce_migrations()
        tokens = {ops.upgrade_token: ops for ops in script.upgrade_ops_list}
        assert set(tokens) == {"default_upgrades", "other_upgrades"}
        assert [d[0] for d in tokens["other_upgrades"].as_diffs()] == ["add_table"]
        assert {d[1].name for d in alembic.compare_metadata() if d[0] == "add_table"} == {
            "user",
            "log_other",
        }
        assert alembic.needs_revision() is True
        assert alembic.produce_migrations("default").upgrade_ops is not None
        alembic.revision("init")
        alembic.upgrade()
        assert alembic.compare_metadata() == []
        assert alembic.needs_revision() is False


# -- 6. hints never steer towards harm -------------------------------------------------------


def created_tables_of(path: str) -> set[str]:
    tree = ast.parse(Path(path).read_text())
    return {
        str(node.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "create_table"
        and isinstance(node.args[0], ast.Constant)
    }


def test_no_upgrade_hint_when_tables_exist(
    make_app3: MakeApp3, make_url: MakeURL, dialect: str
) -> None:
    """A database migrated with another version table: status, current, check and revision
    say the version table is probably misconfigured, never 'upgrade'."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        script = alembic.revision("users")[0]
        assert created_tables_of(script.path) == {"user"}
        alembic.upgrade()
    # The same project, pointed at another version table: it records nothing.
    app, _, alembic = make_app3(url, ALEMBIC_BINDS={"default": {"version_table": "other_version"}})
    before = files(Path(app.root_path))

    status = run(app, "status")
    assert status.exit_code == 0
    assert "state=pending" in status.stdout
    assert "probably misconfigured" in status.stdout
    assert "upgrade'" not in status.output

    current = run(app, "current", "--check-heads")
    assert current.exit_code == 1
    assert "Database is not on all head revisions" in current.stdout
    assert "probably misconfigured" in current.stderr
    # The table that holds this history's revision is named, with the setting to use.
    assert (
        f"'alembic_version' records {script.revision}: revisions of this history. Set "
        "ALEMBIC_BINDS = {'default': {'version_table': 'alembic_version'}} if that is this "
        "database's version table"
    ) in current.stderr
    assert "upgrade'" not in current.output

    for args in (("check",), ("revision", "more")):
        result = run(app, *args)
        assert result.exit_code == 1
        line = only_error(result)
        assert line.startswith(
            "Error: Bind 'default': its version table 'other_version' records no revision, but "
            f"the database already has table(s) 'user' that pending revision {script.revision} "
            "creates; the version table is probably misconfigured"
        )
        assert "upgrade'" not in result.output

    with app.app_context(), pytest.raises(VersionTableMismatchError):
        alembic.needs_upgrade()
    assert files(Path(app.root_path)) == before
    assert version_rows(url) == {script.revision}
    assert version_rows(url, "other_version") == set()

    # No table records a revision of this history: check by hand, then stamp.
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE alembic_version")
    finally:
        engine.dispose()
    current = run(app, "current", "--check-heads")
    assert current.exit_code == 1
    assert "Check which version table holds this database's revision" in current.stderr
    assert "flask db stamp --bind default REV" in current.stderr
    assert "upgrade'" not in current.output


def test_no_upgrade_hint_midway(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """At revision 1, revision 2 creates a table the database has: no upgrade hint."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        first = alembic.revision("users")[0]
        alembic.upgrade()
        second = alembic.revision("audit", empty=True)[0]
    Path(second.path).write_text(
        Path(second.path)
        .read_text()
        .replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n"
            '    op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))\n',
            1,
        )
    )
    assert created_tables_of(second.path) == {"audit"}
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE audit (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    result = run(app, "current", "--check-heads")
    assert result.exit_code == 1
    assert (
        f"default: Bind 'default': its version table 'alembic_version' records {first.revision}, "
        f"but the database already has table(s) 'audit' that pending revision "
        f"{second.revision} creates"
    ) in result.stderr
    assert "upgrade'" not in result.output
    status = run(app, "status", "--json")
    assert status.exit_code == 0
    assert "probably misconfigured" in status.stdout
    with app.app_context():
        assert alembic.applied() == {first.revision}  # the warning hides nothing
    assert version_rows(url) == {first.revision}


def test_upgrade_hint_kept_when_tables_do_not_exist(
    make_app3: MakeApp3, make_url: MakeURL, dialect: str
) -> None:
    """A database that really is behind still gets the upgrade hint."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        alembic.revision("users")
    result = run(app, "current", "--check-heads")
    assert result.exit_code == 1
    assert "Not up to date: default is behind: run 'flask db upgrade'." in result.stderr
    assert "misconfigured" not in result.output
    result = run(app, "check")
    assert result.exit_code == 1
    assert "Run 'flask db upgrade --bind default' first." in only_error(result)


def test_empty_revision_refused_on_unknown_recorded_revision(
    make_app3: MakeApp3, make_url: MakeURL, dialect: str
) -> None:
    """revision --empty on a bind whose version table holds an unknown revision: refused,
    naming the bind and the revision; no file written."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)
    with app.app_context():
        alembic.revision("users")
        alembic.upgrade()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dcafe1234'"))
    finally:
        engine.dispose()
    before = files(Path(app.root_path))
    result = run(app, "revision", "--empty", "x")
    assert result.exit_code == 1
    assert only_error(result).startswith(
        "Error: Bind 'default' is at revision 'f00dcafe1234', which is not in its migration "
        "scripts."
    )
    with app.app_context(), pytest.raises(CommandError, match="f00dcafe1234"):
        alembic.revision("y", empty=True)
    auto = run(app, "revision", "auto")  # autogenerate is refused the same way
    assert auto.exit_code == 1
    assert "'f00dcafe1234', which is not in its migration scripts" in only_error(auto)
    assert files(Path(app.root_path)) == before


def test_3x_command_lines(make_app3: MakeApp3, make_url: MakeURL, dialect: str) -> None:
    """3.x's short options and flags: revision -b/-p/-d/-l, merge -l, heads
    --resolve-dependencies, downgrade N (N steps down)."""
    url = make_url(dialect)
    app, _, alembic = make_app3(url)

    def new(*args: str) -> str:
        result = run(app, "revision", *args)
        assert result.exit_code == 0, result.output
        return Path(result.stdout.strip()).name.split("_")[0]

    base = new("users")
    left = new("--empty", "-l", "left", "left")
    right = new("--empty", "-p", base, "--splice", "-d", left, "right")
    side = new("--empty", "-b", "side", "side")
    with app.app_context():
        assert alembic.script_directory.get_revision(left).branch_labels >= {"left"}
        assert alembic.script_directory.get_revision(right).dependencies == left
        assert alembic.script_directory.get_revision(side).down_revision is None
    heads = run(app, "heads", "--resolve-dependencies")
    assert heads.exit_code == 0, heads.output
    with app.app_context():
        resolved = {s.revision for s in alembic.heads(True)}
    assert resolved == {right, side}
    assert {line.split(" -> ")[-1].split()[0] for line in heads.stdout.splitlines()} == resolved
    merged = run(app, "merge", "-l", "joined", left, right)
    assert merged.exit_code == 0, merged.output
    joined = Path(merged.stdout.strip()).name.split("_")[0]
    assert run(app, "upgrade").exit_code == 0
    assert version_rows(url) == {joined, side}
    result = run(app, "downgrade", "side@-1")
    assert result.exit_code == 0, result.output
    assert version_rows(url) == {joined}


def test_empty_revision_creates_no_sqlite_file(make_app3: MakeApp3, tmp_path: Path) -> None:
    """An empty revision for a SQLite file that does not exist yet leaves it uncreated."""
    database = tmp_path / "later.db"
    app, _, _ = make_app3(f"sqlite:///{database}")
    result = run(app, "revision", "--empty", "first")
    assert result.exit_code == 0, result.output
    assert not database.exists()
