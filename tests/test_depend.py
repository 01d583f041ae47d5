"""``revision --depend`` resolves against what the same command writes (issue 15, point 8).

With model changes in two binds, ``--depend default@head`` names the default bind's *new*
revision: it is written first and the other bind's new revision depends on it, while the
default revision does not depend on itself or on its own parent.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import RevisionError
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


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def header(path: str | Path) -> dict[str, object]:
    """The module-level ``revision``, ``down_revision``, ``depends_on``... of a file, read
    with :mod:`ast`, without importing it or asking Alembic."""
    values: dict[str, object] = {}
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target: ast.expr = node.target
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(node.value)  # type: ignore[arg-type]
            except ValueError:
                continue
    return values


def files(app: Flask) -> set[Path]:
    return set((Path(app.root_path) / "migrations").rglob("*.py"))


class Project:
    """Two binds at their first revisions, both databases upgraded; ``changed()`` is the
    same app with a new column in each bind's models (or in ``only`` those binds)."""

    def __init__(self, make_app: MakeApp, urls: dict[str, str], **config: object) -> None:
        self.make_app = make_app
        self.urls = urls
        self.config = config
        app, alembic = make_app(urls, self.metadatas(()), **config)
        with app.app_context():
            self.first = {
                name: alembic.revision("init", bind=name, label=label)[0].revision
                for name, label in (("default", "core"), ("analytics", None))
            }
            alembic.upgrade()
        self.app = app

    def metadatas(self, changed: tuple[str, ...]) -> dict[str, sa.MetaData]:
        return {
            "default": schema("user", *(["email"] if "default" in changed else [])),
            "analytics": schema("event", *(["country"] if "analytics" in changed else [])),
        }

    def changed(self, only: tuple[str, ...] = ("default", "analytics")) -> tuple[Flask, Alembic]:
        return self.make_app(self.urls, self.metadatas(only), **self.config)


@pytest.fixture
def two(make_app: MakeApp, make_url: MakeURL) -> Project:
    return Project(make_app, {"default": make_url(), "analytics": make_url()})


def written(result: Result) -> dict[str, dict[str, object]]:
    """Bind -> the header of the file the command wrote for it, in the order written."""
    assert result.exit_code == 0, result.output
    found = {}
    for line in result.stdout.splitlines():
        bind = "analytics" if Path(line).parent.name == "analytics" else "default"
        found[bind] = header(line)
    return found


def test_cli_new_dependency_on_every_dialect(
    make_app: MakeApp, make_url: MakeURL, dialect: str
) -> None:
    """`revision --depend default@head` with changes in both binds: the analytics file
    depends on the new default file, which depends on nothing; the plan runs default's
    new revision first, and upgrade applies both on real databases."""
    two = Project(make_app, {"default": make_url(dialect), "analytics": make_url(dialect)})
    app, _ = two.changed()
    new = written(run(app, "revision", "add columns", "--depend", "default@head"))
    assert list(new) == ["default", "analytics"]
    default, analytics = new["default"], new["analytics"]
    assert default["down_revision"] == two.first["default"]
    assert default["depends_on"] is None  # never itself nor its parent
    assert analytics["down_revision"] == two.first["analytics"]
    assert analytics["depends_on"] == default["revision"]

    plan = run(app, "upgrade", "--plan")
    assert plan.exit_code == 0, plan.output
    steps = [line for line in plan.stdout.splitlines() if not line.startswith(" ")]  # no lint
    assert [line.split(" ->")[0] for line in steps] == [
        f"1. default: upgrade {two.first['default']}",
        f"2. analytics: upgrade {two.first['analytics']}",
    ]
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(two.urls["default"]) == {default["revision"]}
    assert version_rows(two.urls["analytics"]) == {analytics["revision"]}
    for bind, table, column in (("default", "user", "email"), ("analytics", "event", "country")):
        engine = sa.create_engine(two.urls[bind])
        try:
            assert column in {c["name"] for c in sa.inspect(engine).get_columns(table)}
        finally:
            engine.dispose()


def test_cli_dependency_on_the_later_bind_is_written_first(two: Project) -> None:
    """`--depend analytics@head`: analytics's new file is written (and listed) first, the
    default one depends on it, and the plan runs analytics first."""
    app, _ = two.changed()
    result = run(app, "revision", "add columns", "--depend", "analytics@head")
    new = written(result)
    assert list(new) == ["analytics", "default"]
    assert result.stderr.index("Generated analytics") < result.stderr.index("Generated default")
    assert new["analytics"]["depends_on"] is None
    assert new["default"]["depends_on"] == new["analytics"]["revision"]
    plan = run(app, "upgrade", "--plan")
    assert [line.split(":")[0] for line in plan.stdout.splitlines()] == [
        "1. analytics",
        "2. default",
    ]
    assert run(app, "upgrade").exit_code == 0
    assert version_rows(two.urls["default"]) == {new["default"]["revision"]}


@pytest.mark.parametrize("token", ["default@heads", "core@head", "core@heads"])
def test_cli_other_spellings_of_the_head(two: Project, token: str) -> None:
    """`BIND@heads`, and a branch label of the bind with `@head`/`@heads`, name the new
    revision too."""
    app, _ = two.changed()
    new = written(run(app, "revision", "add columns", "--depend", token))
    assert new["analytics"]["depends_on"] == new["default"]["revision"]
    assert new["default"]["depends_on"] is None


def test_api_new_dependency(two: Project) -> None:
    """The Python API resolves as the command does, and returns the scripts in the order
    written."""
    app, alembic = two.changed()
    with app.app_context():
        default, analytics = alembic.revision("add columns", depend="default@head")
        assert alembic.bind_of(default) == "default"
        assert default.dependencies is None
        assert default.down_revision == two.first["default"]
        assert analytics.dependencies == default.revision
        plan = alembic.plan("upgrade", "heads")
        assert [(s.bind, s.revision) for s in plan.steps] == [
            ("default", default.revision),
            ("analytics", analytics.revision),
        ]
        alembic.upgrade()
    assert version_rows(two.urls["analytics"]) == {analytics.revision}


def test_api_later_bind_first(two: Project) -> None:
    app, alembic = two.changed()
    with app.app_context():
        first, second = alembic.revision("add columns", depend=["analytics@head"])
        assert alembic.bind_of(first) == "analytics"
        assert second.dependencies == first.revision
        assert first.dependencies is None


def test_concrete_id_keeps_meaning_that_revision(two: Project) -> None:
    """A revision id (or a Script) names that revision, not whatever the command writes;
    for its own bind it is the parent, so it is left out there."""
    app, alembic = two.changed()
    old = two.first["default"]
    new = written(run(app, "revision", "add columns", "--depend", old[:8]))
    assert new["analytics"]["depends_on"] == old
    assert new["default"]["depends_on"] is None
    assert new["default"]["down_revision"] == old

    app, alembic = two.changed()
    with app.app_context():
        script = alembic.script_directory.get_revision(old)
        assert script is not None
        revs = alembic.revision("more", depend=script, bind="analytics", empty=True)
        assert [r.dependencies for r in revs] == [old]


def test_dependency_without_changes_is_its_existing_head(two: Project) -> None:
    """Only analytics changed: `default@head` is the default bind's head as it is."""
    app, _ = two.changed(only=("analytics",))
    new = written(run(app, "revision", "add country", "--depend", "default@head"))
    assert list(new) == ["analytics"]
    assert new["analytics"]["depends_on"] == two.first["default"]


def test_bind_restricted_to_the_dependent(two: Project) -> None:
    """`--bind analytics`: default gets no file, so its head is the existing one."""
    app, _ = two.changed()
    new = written(
        run(app, "revision", "add country", "--bind", "analytics", "--depend", "default@head")
    )
    assert list(new) == ["analytics"]
    assert new["analytics"]["depends_on"] == two.first["default"]


def test_empty_revisions(two: Project) -> None:
    """--empty: on its own bind, `BIND@head` is the parent and left out; on another
    bind, it is that bind's head."""
    app, alembic = two.changed()
    own = written(
        run(app, "revision", "data", "--empty", "--bind", "default", "--depend", "default@head")
    )
    assert own["default"]["depends_on"] is None
    assert own["default"]["down_revision"] == two.first["default"]
    other = written(
        run(app, "revision", "data", "--empty", "--bind", "analytics", "--depend", "default@head")
    )
    assert other["analytics"]["depends_on"] == own["default"]["revision"]
    with app.app_context():
        [script] = alembic.revision("more", empty=True, bind="default", depend="default@heads")
        assert script.dependencies is None


def test_own_bind_revision_it_does_not_build_on_is_kept(two: Project) -> None:
    """A revision of the same bind on another branch is a real dependency (Alembic's way
    for one branch to wait for another): it is kept; only what the new revision already
    builds on is left out."""
    app, _ = two.changed()
    root = two.first["default"]
    second = written(run(app, "revision", "second", "--empty", "--bind", "default"))["default"]
    side = written(
        run(
            app,
            "revision",
            "side",
            "--empty",
            "--bind",
            "default",
            "--parent",
            root,
            "--splice",
            "--depend",
            str(second["revision"]),
            "--depend",
            root,
        )
    )["default"]
    assert side["down_revision"] == root
    assert side["depends_on"] == second["revision"]


def test_single_bind_heads(make_app: MakeApp, make_url: MakeURL) -> None:
    """With one bind, `--depend heads` names that bind's head: the new revision's parent,
    left out."""
    app, _ = make_app(make_url(), schema("user"))
    first = written(run(app, "revision", "init"))["default"]
    new = written(run(app, "revision", "more", "--empty", "--depend", "heads"))["default"]
    assert new["down_revision"] == first["revision"]
    assert new["depends_on"] is None


def test_cycle_is_refused(two: Project) -> None:
    """Each bind depending on the other's new revision is a cycle: refused, in one line,
    before any file is written."""
    app, alembic = two.changed()
    before = files(app)
    result = run(app, "revision", "x", "--depend", "default@head", "--depend", "analytics@head")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --depend default@head, --depend analytics@head would make the new revisions "
        "of binds 'default', 'analytics' depend on each other. Write one bind's revision "
        "first with 'flask db revision MESSAGE --bind default', then the others with "
        "--depend default@head."
    ]
    assert result.stdout == ""
    assert files(app) == before
    with app.app_context(), pytest.raises(RevisionError, match="depend on each other"):
        alembic.revision("x", depend=["analytics@head", "default@head"])
    assert files(app) == before


def test_cycle_names_only_its_binds(make_app: MakeApp, make_url: MakeURL) -> None:
    """A third bind that only depends on the two binds of a cycle is not part of it: the
    error names the two binds and their --depend options only."""
    urls = {"default": make_url(), "analytics": make_url(), "billing": make_url()}
    tables = {"default": "user", "analytics": "event", "billing": "invoice"}

    def app_with(column: tuple[str, ...]) -> tuple[Flask, Alembic]:
        return make_app(urls, {b: schema(t, *column) for b, t in tables.items()})

    app, alembic = app_with(())
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade()
    app, alembic = app_with(("note",))
    before = files(app)
    result = run(app, "revision", "x", "--depend", "default@head", "--depend", "analytics@head")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --depend default@head, --depend analytics@head would make the new revisions "
        "of binds 'default', 'analytics' depend on each other. Write one bind's revision "
        "first with 'flask db revision MESSAGE --bind default', then the others with "
        "--depend default@head."
    ]
    assert files(app) == before


def test_bare_bind_name_is_said(two: Project) -> None:
    """--depend NAME names the revision labelled NAME, the bind's first: the file is
    written as asked, and a warning says so and gives NAME@head; NAME@head gets none."""
    app, _ = two.changed(("analytics",))
    head = written(run(app, "revision", "x", "--bind", "default", "--empty"))["default"]
    result = run(app, "revision", "y", "--bind", "analytics", "--depend", "default")
    assert result.exit_code == 0, result.output
    assert header(result.stdout.strip())["depends_on"] == two.first["default"]
    assert result.stderr.splitlines()[-1] == (
        f"Warning: --depend default names revision {two.first['default']}, the first revision "
        "of bind 'default' (it carries the label 'default'), not its head. For the bind's "
        "head, write --depend default@head (or edit depends_on in the new file)."
    )
    Path(result.stdout.strip()).unlink()
    result = run(app, "revision", "y", "--bind", "analytics", "--depend", "default@head")
    assert header(result.stdout.strip())["depends_on"] == head["revision"]
    assert "Warning" not in result.stderr
    assert "BIND@head" in run(app, "revision", "--help").stdout
    # The Python API says it too, in what it returns.
    Path(result.stdout.strip()).unlink()
    with app.app_context():
        done = app.extensions["alembic"].write_revisions(
            "z", bind="analytics", depend=["default"], empty=True
        )
    assert done.scripts[0].dependencies == two.first["default"]
    assert done.warnings == [
        f"--depend default names revision {two.first['default']}, the first revision "
        "of bind 'default' (it carries the label 'default'), not its head. For the bind's "
        "head, write --depend default@head (or edit depends_on in the new file)."
    ]


def test_dependency_bind_without_revisions(make_app: MakeApp, make_url: MakeURL) -> None:
    """`BIND@head` of a bind with no revision yet, which the command does not write: an
    error naming the bind and the fix, no file written."""
    urls = {"default": make_url(), "reports": make_url()}
    app, _ = make_app(
        urls,
        {"default": schema("user"), "reports": sa.MetaData()},
        ALEMBIC_BINDS={"reports": {"include": True}},
    )
    result = run(app, "revision", "x", "--depend", "reports@head")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --depend 'reports@head' names no revision: bind 'reports' has none yet. "
        "Write its first revision with 'flask db revision MESSAGE --bind reports' first, "
        "or leave --depend out."
    ]
    assert files(app) == set()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("--depend", "nosuchbind@head"),
            2,
            "Error: --depend 'nosuchbind@head' names bind 'nosuchbind', which is unknown (and "
            "not a branch label or a revision either). Known binds: 'default', 'analytics'; "
            "name one, as in --depend default@head.",
        ),
        (
            ("--depend", "heads"),
            1,
            "Error: --depend 'heads' does not say which bind's heads the revision depends on: "
            "this app has several binds (default, analytics). Name the bind, as in --depend "
            "default@head.",
        ),
        (
            ("--depend", "base"),
            1,
            "Error: --depend 'base' names no revision: base is before every bind's first "
            "revision. Give a revision id, or a bind's head as in --depend default@head.",
        ),
        (
            ("--depend", "default@base"),
            1,
            "Error: --depend 'default@base' names no revision: base is before the first "
            "revision of bind 'default'. Give a revision id, or a bind's head as in "
            "--depend default@head.",
        ),
        (
            ("--depend", "analytics@-1"),
            1,
            "Error: --depend 'analytics@-1' counts steps, but a dependency names a revision. "
            "Give a revision id, or a bind's head as in --depend default@head.",
        ),
        (
            ("--depend", "+1"),
            1,
            "Error: --depend '+1' counts steps, but a dependency names a revision. "
            "Give a revision id, or a bind's head as in --depend default@head.",
        ),
        (
            ("--depend", "default@nope"),
            1,
            "Error: --depend 'default@nope' names no single revision of bind 'default': No "
            "such revision or branch 'nope'. Give a revision id, or every head of the bind "
            "as in --depend default@heads.",
        ),
        (
            ("--depend", " "),
            1,
            "Error: --depend was given an empty revision. Give a revision id, as in "
            "--depend default@head.",
        ),
        (
            ("--depend", "default@head", "--rev-id", "abcd1234"),
            2,
            "Error: --rev-id needs one bind, but several are selected. Name one with --bind NAME.",
        ),
    ],
)
def test_hostile_depend(two: Project, args: tuple[str, ...], code: int, message: str) -> None:
    """A --depend that names no revision, or an unknown bind: one line naming it and the
    fix, a non-zero exit, no file written, no database changed."""
    app, _ = two.changed()
    before = files(app)
    result = run(app, "revision", "x", *args)
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines() == [message]
    assert result.stdout == ""
    assert files(app) == before
    assert version_rows(two.urls["default"]) == {two.first["default"]}
    assert version_rows(two.urls["analytics"]) == {two.first["analytics"]}


def test_unknown_bind_through_the_api(two: Project) -> None:
    app, alembic = two.changed()
    with app.app_context(), pytest.raises(UnknownBindError, match="'nosuchbind'"):
        alembic.revision("x", depend="nosuchbind@head")


def test_ambiguous_prefix(make_app: MakeApp, make_url: MakeURL) -> None:
    """A prefix that starts ids in two binds, or two ids in one bind, is refused in one line
    asking for more characters; nothing is written."""
    urls = {"default": make_url(), "analytics": make_url()}
    app, _ = make_app(urls, {"default": schema("user"), "analytics": schema("event")})
    for bind, rev in (("default", "abcd0001"), ("analytics", "abcd0002")):
        assert run(app, "revision", "init", "--bind", bind, "--rev-id", rev).exit_code == 0
    assert (
        run(
            app, "revision", "two", "--empty", "--bind", "default", "--rev-id", "abce0003"
        ).exit_code
        == 0
    )
    before = files(app)
    result = run(app, "revision", "x", "--empty", "--bind", "analytics", "--depend", "abcd")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: Revision 'abcd' is ambiguous: it matches revisions in binds default, "
        "analytics. Give more characters of the revision id, or prefix it with the bind: "
        "BIND@REV."
    ]
    result = run(app, "revision", "x", "--empty", "--bind", "analytics", "--depend", "default@abc")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert "'default@abc'" in result.stderr
    assert "bind 'default'" in result.stderr
    assert files(app) == before


def test_hook_choice_is_kept(make_app: MakeApp, make_url: MakeURL) -> None:
    """A process_revision_directives hook that sets depends_on itself has the last word."""

    def hook(context: object, revision: object, directives: list[Any]) -> None:
        for directive in directives:
            directive.depends_on = None

    two = Project(
        make_app,
        {"default": make_url(), "analytics": make_url()},
        ALEMBIC_CONTEXT={"process_revision_directives": hook},
    )
    app, _ = two.changed()
    new = written(run(app, "revision", "add columns", "--depend", "default@head"))
    assert new["analytics"]["depends_on"] is None
    assert new["default"]["depends_on"] is None


def test_only_the_dependency_changed(two: Project) -> None:
    """Only default changed: `--depend default@head` adds nothing to its own file."""
    app, _ = two.changed(only=("default",))
    new = written(run(app, "revision", "add email", "--depend", "default@head"))
    assert list(new) == ["default"]
    assert new["default"]["depends_on"] is None
    assert new["default"]["down_revision"] == two.first["default"]


def test_bind_not_managed(make_app: MakeApp, make_url: MakeURL) -> None:
    """`--depend legacy@head` for a bind that is not managed says so and how to change it."""
    urls = {"default": make_url(), "legacy": make_url()}
    app, _ = make_app(urls, {"default": schema("user"), "legacy": sa.MetaData()})
    result = run(app, "revision", "x", "--depend", "legacy@head")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: Bind 'legacy' is not managed: it has no models: its metadata has no tables. "
        "Give it models (and import "
        "them before the first command), or set ALEMBIC_BINDS = {'legacy': {'include': "
        "True}} to migrate it with revisions written by hand."
    ]
    assert files(app) == set()
