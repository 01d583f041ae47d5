"""Converting a lockstep history (Flask-Migrate --multidb, Flask-Alembic 3 with several
databases) into one history per bind: the files, the ids, the errors, the writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic.errors import RevisionError
from flask_alembic.errors import ScriptDirectoryError
from flask_alembic.lockstep import apply_conversion
from flask_alembic.lockstep import ARCHIVE_NAME
from flask_alembic.lockstep import BindTarget
from flask_alembic.lockstep import Conversion
from flask_alembic.lockstep import derived_id
from flask_alembic.lockstep import find_lockstep
from flask_alembic.lockstep import ID_MAP_NAME
from flask_alembic.lockstep import is_lockstep_file
from flask_alembic.lockstep import plan_conversion
from flask_alembic.registry import bind_directory_name

# -- Flask-Migrate --multidb, run for real -----------------------------------------------

FLASK_MIGRATE_APP = """
import os

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

step = int(os.environ["STEP"])
app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["MAIN_URL"]
app.config["SQLALCHEMY_BINDS"] = {"users": os.environ["USERS_URL"]}
db = SQLAlchemy(app)


class Item(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    if step >= 2:
        name = db.Column(db.String(50))


class Person(db.Model):
    __bind_key__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    if step >= 3:
        email = db.Column(db.String(50))


Migrate(app, db)
"""


def flask_migrate(project: Path, urls: dict[str, str], step: int, *args: str) -> str:
    """Run Flask-Migrate's own ``flask db ARGS`` on the app at ``step``; its output."""
    env = {
        **os.environ,
        "FLASK_APP": str(project / "fm_app.py"),
        "STEP": str(step),
        "MAIN_URL": urls["default"],
        "USERS_URL": urls["users"],
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def flask_migrate_history(project: Path, urls: dict[str, str]) -> list[str]:
    """Three revisions written by Flask-Migrate --multidb; the databases migrated to the
    second one. Returns the three revision ids, oldest first."""
    (project / "fm_app.py").write_text(FLASK_MIGRATE_APP)
    flask_migrate(project, urls, 1, "init", "--multidb")
    ids: list[str] = []
    for step in (1, 2, 3):
        flask_migrate(project, urls, step, "migrate", "-m", f"step {step}")
        (new,) = {
            p.name.split("_")[0] for p in (project / "migrations" / "versions").glob("*.py")
        } - set(ids)
        ids.append(new)
        if step < 3:
            flask_migrate(project, urls, step, "upgrade")
    return ids


def fm_targets(project: Path) -> list[BindTarget]:
    migrations = project / "migrations"
    return [
        BindTarget("default", "", migrations / "versions", "default"),
        BindTarget("users", "users", migrations / "users", "users"),
    ]


def step3_metadatas() -> dict[str, sa.MetaData]:
    default, users = sa.MetaData(), sa.MetaData()
    sa.Table(
        "item",
        default,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
    sa.Table(
        "person",
        users,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(50)),
    )
    return {"default": default, "users": users}


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def set_version(url: str, rows: tuple[str, ...]) -> None:
    """What ``adopt`` does under the bind's lock: the version table holds ``rows``."""
    engine = sa.create_engine(url)
    table = sa.table("alembic_version", sa.column("version_num"))
    try:
        with engine.begin() as connection:
            connection.execute(sa.delete(table))
            for row in rows:
                connection.execute(sa.insert(table).values(version_num=row))
    finally:
        engine.dispose()


def test_flask_migrate_history_converts_and_upgrades(
    make_app: MakeApp, make_url: MakeURL, project: Path, dialect: str
) -> None:
    """Databases migrated by Flask-Migrate --multidb, with data, upgrade from their mapped
    rows after the conversion; fresh databases upgrade from base."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    old = flask_migrate_history(project, urls)
    for url, table in ((urls["default"], "item"), (urls["users"], "person")):
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.execute(sa.text(f"INSERT INTO {table} (id) VALUES (7)"))
        engine.dispose()
    versions = project / "migrations" / "versions"
    assert [p.name.split("_")[0] for p in find_lockstep([versions])] == sorted(old)

    conversion = plan_conversion([versions], fm_targets(project), "default", project / "migrations")
    apply_conversion(conversion)

    users = [derived_id(rev, "users") for rev in old]
    assert dict(conversion.id_map) == {
        rev: {"default": rev, "users": new} for rev, new in zip(old, users, strict=True)
    }
    assert conversion.new_ids("default", version_rows(urls["default"])) == (old[1],)
    assert conversion.new_ids("users", version_rows(urls["users"])) == (users[1],)
    set_version(urls["users"], conversion.new_ids("users", version_rows(urls["users"])))

    app, _ = make_app(
        urls, step3_metadatas(), ALEMBIC_BINDS={"default": {"version_location": "versions"}}
    )
    result = run(app, "heads")
    assert (result.exit_code, result.output) == (
        0,
        f"default: {old[1]} -> {old[2]} (head), step 3\n"
        f"users: {users[1]} -> {users[2]} (head), step 3\n",
    )
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["default"]) == {old[2]}
    assert version_rows(urls["users"]) == {users[2]}
    engine = sa.create_engine(urls["users"])
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, email FROM person")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(7, None)]
    result = run(app, "check")
    assert result.exit_code == 0, result.output

    fresh = {"default": make_url(dialect), "users": make_url(dialect)}
    app, _ = make_app(
        fresh, step3_metadatas(), ALEMBIC_BINDS={"default": {"version_location": "versions"}}
    )
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert table_names(fresh["default"]) == {"alembic_version", "item"}
    assert table_names(fresh["users"]) == {"alembic_version", "person"}
    assert version_rows(fresh["users"]) == {users[2]}


def test_flask_migrate_files_and_archive(make_url: MakeURL, project: Path) -> None:
    """Flask-Migrate's files: each bind gets its own function bodies and comments; the old
    files, the old template and the id map go to the archive; ours replaces the template."""
    urls = {"default": make_url(), "users": make_url()}
    old = flask_migrate_history(project, urls)
    migrations = project / "migrations"
    old_template = (migrations / "script.py.mako").read_text()
    old_files = {p.name: p.read_text() for p in (migrations / "versions").glob("*.py")}

    conversion = plan_conversion(
        [migrations / "versions"], fm_targets(project), "default", migrations
    )
    apply_conversion(conversion)

    archive = migrations / ARCHIVE_NAME
    assert conversion.archive == archive
    assert {p.name: p.read_text() for p in (archive / "versions").glob("*.py")} == old_files
    assert (archive / "script.py.mako").read_text() == old_template
    assert "def upgrade() -> None:" in (migrations / "script.py.mako").read_text()
    assert (archive / ID_MAP_NAME).is_file()
    first = next((migrations / "users").glob(f"{derived_id(old[0], 'users')}_*.py")).read_text()
    assert first.endswith(
        "def upgrade() -> None:\n"
        "    # ### commands auto generated by Alembic - please adjust! ###\n"
        "    op.create_table('person',\n"
        "    sa.Column('id', sa.Integer(), nullable=False),\n"
        "    sa.PrimaryKeyConstraint('id')\n"
        "    )\n"
        "    # ### end Alembic commands ###\n"
        "\n\n"
        "def downgrade() -> None:\n"
        "    # ### commands auto generated by Alembic - please adjust! ###\n"
        "    op.drop_table('person')\n"
        "    # ### end Alembic commands ###\n"
    )
    assert f"Revision ID: {derived_id(old[0], 'users')}\nRevises:\n" in first
    assert "branch_labels: str | Sequence[str] | None = ('users',)\n" in first
    second = next((migrations / "users").glob(f"{derived_id(old[1], 'users')}_*.py")).read_text()
    assert f"down_revision: str | Sequence[str] | None = {derived_id(old[0], 'users')!r}" in (
        second
    )
    assert "branch_labels: str | Sequence[str] | None = None\n" in second
    assert second.endswith(
        "def upgrade() -> None:\n"
        "    # ### commands auto generated by Alembic - please adjust! ###\n"
        "    pass\n"
        "    # ### end Alembic commands ###\n"
        "\n\n"
        "def downgrade() -> None:\n"
        "    # ### commands auto generated by Alembic - please adjust! ###\n"
        "    pass\n"
        "    # ### end Alembic commands ###\n"
    )
    default = (migrations / "versions" / next(iter(sorted(old_files)))).read_text()
    assert "def upgrade(engine_name)" not in default
    assert "def upgrade_" not in default
    assert find_lockstep([migrations / "versions", migrations / "users"]) == []


# -- Flask-Alembic 3 with several databases (Alembic's multidb template) -----------------

HEADER = '''"""{message}

Revision ID: {rev}
Revises: {revises}
Create Date: 2024-05-01 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
{extra}

# revision identifiers, used by Alembic.
revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = {down!r}
branch_labels: Union[str, Sequence[str], None] = {labels!r}
depends_on: Union[str, Sequence[str], None] = {depends!r}


def upgrade(engine_name: str) -> None:
    """Upgrade schema."""
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name: str) -> None:
    """Downgrade schema."""
    globals()["downgrade_%s" % engine_name]()

'''


def fa3_file(
    folder: Path,
    rev: str,
    down: str | tuple[str, ...] | None,
    bodies: dict[str, tuple[str, str]],
    *,
    labels: tuple[str, ...] | None = None,
    depends: str | None = None,
    extra: str = "",
    tail: str = "",
) -> Path:
    """A revision file in Alembic's multidb template form, as Flask-Alembic 3 writes it."""
    revises = ", ".join(down) if isinstance(down, tuple) else down or ""
    text = HEADER.format(
        message=f"step {rev}",
        rev=rev,
        revises=revises,
        down=down,
        labels=labels,
        depends=depends,
        extra=extra,
    )
    for name, (up, downgrade) in bodies.items():
        text += (
            f"\ndef upgrade_{name}() -> None:\n"
            f'    """Upgrade {name} schema."""\n{textwrap.indent(up, "    ")}\n\n'
            f"def downgrade_{name}() -> None:\n"
            f'    """Downgrade {name} schema."""\n{textwrap.indent(downgrade, "    ")}\n\n'
        )
    path = folder / f"{rev}_step.py"
    path.write_text(text + tail)
    return path


def fa3_history(folder: Path) -> None:
    """A 3.x history: a root labelled 'default', two branches (one empty per bind, one with
    a user label), their merge, then a revision depending on the label; a module-level
    helper and comments in the first."""
    folder.mkdir(parents=True, exist_ok=True)
    fa3_file(
        folder,
        "a1",
        None,
        {
            "default": (
                "# the items\nop.create_table('item', _id())\n",
                "op.drop_table('item')\n",
            ),
            "users": (
                "op.create_table('person', _id())\n\n# people come later\n",
                "op.drop_table('person')\n",
            ),
        },
        labels=("default",),
        extra="\nID_TYPE = sa.Integer  # every table's key\n",
        tail="\n# a helper the bodies share\ndef _id() -> sa.Column[int]:\n"
        "    return sa.Column('id', ID_TYPE, primary_key=True)\n",
    )
    fa3_file(
        folder,
        "b2",
        "a1",
        {
            "default": ("op.add_column('item', sa.Column('name', sa.String(20)))\n", "pass\n"),
            "users": ("pass\n", "pass\n"),
        },
    )
    fa3_file(
        folder,
        "c3",
        "a1",
        {
            "default": ("pass\n", "pass\n"),
            "users": ("op.add_column('person', sa.Column('email', sa.String(20)))\n", "pass\n"),
        },
        labels=("feature",),
    )
    fa3_file(
        folder,
        "d4",
        ("b2", "c3"),
        {"default": ("pass\n", "pass\n"), "users": ("pass\n", "pass\n")},
    )
    fa3_file(
        folder,
        "e5",
        "d4",
        {
            "default": (
                "op.create_table('note', sa.Column('id', sa.Integer, primary_key=True))\n",
                "op.drop_table('note')\n",
            ),
            "users": (
                "op.create_table('audit', sa.Column('id', sa.Integer, primary_key=True))\n",
                "op.drop_table('audit')\n",
            ),
        },
        depends="feature",
    )


def fa3_targets(migrations: Path) -> list[BindTarget]:
    return [
        BindTarget("default", "default", migrations, "default"),
        BindTarget("users", "users", migrations / "users", "users"),
    ]


def identifiers(path: Path) -> dict[str, object]:
    """The revision identifiers of a file, read as Alembic would."""
    import ast

    values: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert node.value is not None
            values[node.target.id] = ast.literal_eval(node.value)
    return values


def test_flask_alembic_3_history_maps_merges_depends_and_labels(project: Path) -> None:
    """Merges and depends_on are mapped per bind; 'default' and the user label stay on the
    default bind; the users bind's first revision carries its own label."""
    migrations = project / "migrations"
    fa3_history(migrations)
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    u = {rev: derived_id(rev, "users") for rev in ("a1", "b2", "c3", "d4", "e5")}
    files = {(f.bind, f.old_id): f for f in conversion.files}
    assert [f.new_id for f in conversion.files if f.bind == "users"] == list(u.values())
    apply_conversion(conversion)

    def ids(bind: str, rev: str) -> dict[str, object]:
        return identifiers(files[(bind, rev)].path)

    assert ids("default", "a1") == {
        "revision": "a1",
        "down_revision": None,
        "branch_labels": ("default",),
        "depends_on": None,
    }
    assert ids("users", "a1")["branch_labels"] == ("users",)
    assert ids("default", "c3")["branch_labels"] == ("feature",)
    assert ids("users", "c3")["branch_labels"] is None
    assert ids("default", "d4")["down_revision"] == ("b2", "c3")
    assert ids("users", "d4")["down_revision"] == (u["b2"], u["c3"])
    assert ids("default", "e5")["depends_on"] == "feature"
    assert ids("users", "e5")["depends_on"] == u["c3"]
    assert (
        files[("users", "d4")]
        .path.read_text()
        .startswith(f'"""step d4\n\nRevision ID: {u["d4"]}\nRevises: {u["b2"]}, {u["c3"]}\n')
    )
    assert files[("users", "a1")].source == (
        f'"""step a1\n\nRevision ID: {u["a1"]}\nRevises:\n'
        'Create Date: 2024-05-01 10:00:00.000000\n\n"""\n\n'
        "from collections.abc import Sequence\n\n"
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        "ID_TYPE = sa.Integer  # every table's key\n\n"
        "# revision identifiers, used by Alembic.\n"
        f"revision: str = {u['a1']!r}\n"
        "down_revision: str | Sequence[str] | None = None\n"
        "branch_labels: str | Sequence[str] | None = ('users',)\n"
        "depends_on: str | Sequence[str] | None = None\n\n\n"
        "# a helper the bodies share\n"
        "def _id() -> sa.Column[int]:\n"
        "    return sa.Column('id', ID_TYPE, primary_key=True)\n\n\n"
        "def upgrade() -> None:\n"
        '    """Upgrade users schema."""\n'
        "    op.create_table('person', _id())\n\n"
        "    # people come later\n\n\n"
        "def downgrade() -> None:\n"
        '    """Downgrade users schema."""\n'
        "    op.drop_table('person')\n"
    )
    assert "# the items\n    op.create_table('item', _id())" in files[("default", "a1")].source


def test_flask_alembic_3_history_upgrades(
    make_app: MakeApp, make_url: MakeURL, project: Path, dialect: str
) -> None:
    """The converted 3.x history loads with this package and runs on fresh databases."""
    migrations = project / "migrations"
    fa3_history(migrations)
    apply_conversion(plan_conversion([migrations], fa3_targets(migrations), "default", migrations))
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    app, _ = make_app(urls)
    result = run(app, "heads")
    assert (result.exit_code, result.output) == (
        0,
        f"default: d4 -> e5 (head, label: feature), step e5\n"
        f"users: {derived_id('d4', 'users')} -> {derived_id('e5', 'users')} "
        "(head), step e5\n",
    )
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert table_names(urls["default"]) == {"alembic_version", "item", "note"}
    assert table_names(urls["users"]) == {"alembic_version", "person", "audit"}
    assert version_rows(urls["default"]) == {"e5"}
    assert version_rows(urls["users"]) == {derived_id("e5", "users")}
    result = run(app, "downgrade", "base")
    assert result.exit_code == 0, result.output
    assert table_names(urls["users"]) == {"alembic_version"}


def test_plan_is_stable(project: Path) -> None:
    """Planning twice gives the same ids and the same files, and writes nothing."""
    migrations = project / "migrations"
    fa3_history(migrations)
    before = sorted(p.relative_to(migrations) for p in migrations.rglob("*"))
    first = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    second = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    assert first == second
    assert derived_id("a1", "users") == "40782f543a8f"
    assert sorted(p.relative_to(migrations) for p in migrations.rglob("*")) == before


# -- what cannot be converted ------------------------------------------------------------


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def no_users_function(m: Path) -> str:
    path = m / "b2_step.py"
    replace_in(path, "def upgrade_users()", "def upgrade_people()")
    replace_in(path, "def downgrade_users()", "def downgrade_people()")
    return (
        f"Cannot convert {path}: upgrade_people() is for a database that is none of the "
        "binds ('default', 'users'). Configure that database as a bind of the app, or "
        "delete its functions from the file if the database is gone."
    )


def no_downgrade(m: Path) -> str:
    path = m / "c3_step.py"
    replace_in(path, "def downgrade_users()", "def _old_downgrade_users()")
    return (
        f"Cannot convert {path}: it has no downgrade_users() function for bind 'users'. Add "
        "downgrade_users() (with 'pass' if nothing changes there), then convert again."
    )


def custom_dispatch(m: Path) -> str:
    path = m / "d4_step.py"
    replace_in(
        path,
        '    globals()["upgrade_%s" % engine_name]()',
        '    print(engine_name)\n    globals()["upgrade_%s" % engine_name]()',
    )
    return (
        f"Cannot convert {path}: its upgrade(engine_name) does more than call "
        "upgrade_<name>(); that code cannot be split between the binds. Move that code into "
        "each upgrade_<name>() that needs it, then convert again."
    )


def duplicate_id(m: Path) -> str:
    (m / "z9_copy.py").write_text((m / "c3_step.py").read_text().replace("feature", "other"))
    return (
        f"Revision id 'c3' is used by two files, {m / 'c3_step.py'} and {m / 'z9_copy.py'}; "
        "only one of them would ever run. Give one of them a new id (its 'revision' "
        "variable, and every down_revision or depends_on naming it), or delete the copy."
    )


def derived_collision(m: Path) -> str:
    taken = derived_id("a1", "users")
    path = m / "e5_step.py"
    replace_in(path, "'e5'", repr(taken))
    return (
        f"Cannot convert {path}: its new id {taken!r} for bind 'default' is already the id "
        "of revision a1 for bind 'users'. Give this revision a new id (its 'revision' "
        "variable, and every down_revision or depends_on naming it), then convert again."
    )


def missing_parent(m: Path) -> str:
    path = m / "b2_step.py"
    replace_in(path, "= 'a1'", "= 'zz'")
    return (
        f"Cannot convert {path}: its down_revision 'zz' is not a revision of the history. "
        "Restore the missing file, or fix its down_revision."
    )


def label_of_a_bind(m: Path) -> str:
    path = m / "c3_step.py"
    replace_in(path, "('feature',)", "('users',)")
    replace_in(m / "e5_step.py", "'feature'", "'users'")
    return (
        f"Cannot convert {path}: its branch label 'users' is the label of bind 'users', whose "
        "first revision carries it. Rename the label (and every depends_on naming it), then "
        "convert again."
    )


def helper_calls_a_bind_function(m: Path) -> str:
    path = m / "b2_step.py"
    replace_in(path, "    pass\n", "    upgrade_default()\n")
    return (
        f"Cannot convert {path}: some of its code calls upgrade_default(), which the "
        "conversion splits into one file per bind. Put that code in a helper function of "
        "its own, then convert again."
    )


def bind_function_with_arguments(m: Path) -> str:
    path = m / "c3_step.py"
    replace_in(path, "def upgrade_default()", "def upgrade_default(verbose=False)")
    return (
        f"Cannot convert {path}: its upgrade_default() takes arguments or has decorators, "
        "which a bind's upgrade() and downgrade() cannot have. Move that into a helper the "
        "function calls, then convert again."
    )


def two_statements_on_a_line(m: Path) -> str:
    path = m / "b2_step.py"
    replace_in(path, "import sqlalchemy as sa\n", "import sqlalchemy as sa; import os\n")
    return (
        f"Cannot convert {path}: line 11 holds two top-level statements. Put each top-level "
        "statement on its own line, then convert again."
    )


def not_python(m: Path) -> str:
    path = m / "b2_step.py"
    replace_in(path, "def upgrade_users()", "def upgrade_users(")
    return f"Cannot convert {path}: it is not valid Python"


def archive_exists(m: Path) -> str:
    (m / ARCHIVE_NAME).mkdir()
    return (
        f"The archive folder {m / ARCHIVE_NAME} already exists: a lockstep history was "
        "converted here before. Move that folder out of the migrations folder, then convert "
        "again."
    )


@pytest.mark.parametrize(
    "spoil",
    [
        no_users_function,
        no_downgrade,
        custom_dispatch,
        duplicate_id,
        derived_collision,
        missing_parent,
        label_of_a_bind,
        helper_calls_a_bind_function,
        bind_function_with_arguments,
        two_statements_on_a_line,
        not_python,
        archive_exists,
    ],
)
def test_refused(project: Path, spoil: Callable[[Path], str]) -> None:
    """What cannot be converted is refused with one line naming the file and the fix."""
    migrations = project / "migrations"
    fa3_history(migrations)
    expected = spoil(migrations)
    with pytest.raises(ScriptDirectoryError) as caught:
        plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_no_lockstep_file(project: Path) -> None:
    """A folder of single-database revisions is not a lockstep history."""
    migrations = project / "migrations"
    migrations.mkdir()
    (migrations / "a_one.py").write_text(
        "revision = 'a'\ndown_revision = None\n\ndef upgrade():\n    pass\n\n"
        "def downgrade():\n    pass\n"
    )
    assert not is_lockstep_file(migrations / "a_one.py")
    with pytest.raises(ScriptDirectoryError, match=r"^No lockstep revision file \(one whose"):
        plan_conversion([migrations], fa3_targets(migrations), "default", migrations)


def test_single_database_start(project: Path, make_app: MakeApp, make_url: MakeURL) -> None:
    """A history begun with one database: its first files become the default bind's only;
    the other bind starts at the first lockstep file, with its label."""
    migrations = project / "migrations"
    fa3_history(migrations)
    (migrations / "a0_start.py").write_text(
        '"""start\n\nRevision ID: a0\nRevises:\n"""\nfrom alembic import op\n\n'
        "revision = 'a0'\ndown_revision = None\nbranch_labels = ('default',)\n"
        "depends_on = None\n\n\ndef upgrade():\n    op.execute('SELECT 1')\n\n\n"
        "def downgrade():\n    pass\n"
    )
    replace_in(
        migrations / "a1_step.py",
        "down_revision: Union[str, Sequence[str], None] = None",
        "down_revision: Union[str, Sequence[str], None] = 'a0'",
    )
    replace_in(migrations / "a1_step.py", "('default',)", "None")
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    assert conversion.id_map["a0"] == {"default": "a0", "users": None}
    assert conversion.new_ids("users", ["a0"]) == ()
    assert conversion.new_ids("users", []) == ()
    assert conversion.new_ids("users", ["a1"]) == (derived_id("a1", "users"),)
    apply_conversion(conversion)
    a1 = identifiers(migrations / "users" / f"{derived_id('a1', 'users')}_step.py")
    assert (a1["down_revision"], a1["branch_labels"]) == (None, ("users",))
    assert identifiers(migrations / "a1_step.py")["down_revision"] == "a0"
    assert "op.execute('SELECT 1')" in (migrations / "a0_start.py").read_text()
    urls = {"default": make_url(), "users": make_url()}
    app, _ = make_app(urls)
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["users"]) == {derived_id("e5", "users")}


def test_new_ids_of_an_unknown_revision(project: Path) -> None:
    """A database at a revision the old history does not have is named, with its bind."""
    migrations = project / "migrations"
    fa3_history(migrations)
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    with pytest.raises(RevisionError, match=r"^Bind 'users' records revision 'zz', which"):
        conversion.new_ids("users", ["zz"])


def test_archive_is_never_a_bind_folder() -> None:
    """No bind's folder can be named like the archive, which Alembic never scans."""
    assert bind_directory_name(ARCHIVE_NAME) != ARCHIVE_NAME


def snapshot(root: Path) -> dict[str, str | None]:
    return {
        str(p.relative_to(root)): p.read_text() if p.is_file() else None
        for p in sorted(root.rglob("*"))
    }


def test_write_failure_changes_nothing(project: Path) -> None:
    """A write that fails half way leaves every folder as it was, and names the path."""
    migrations = project / "migrations"
    fa3_history(migrations)
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    last = conversion.files[-1].path
    last.parent.mkdir()
    # Something sits where the last file is written first: the write fails there.
    (last.parent / f".{last.name}.lockstep-tmp").mkdir()
    before = snapshot(project)
    with pytest.raises(ScriptDirectoryError) as caught:
        apply_conversion(conversion)
    blocked = last.parent / f".{last.name}.lockstep-tmp"
    assert str(caught.value) == (
        f"Cannot write the converted history: File exists ({blocked}); nothing was changed. "
        "Fix what is named (a read-only folder, a full disk, something in the way), then "
        "convert again."
    )
    assert snapshot(project) == before


def test_apply_checks_before_writing(project: Path) -> None:
    """A new file's path taken since the plan: refused before anything is written."""
    migrations = project / "migrations"
    fa3_history(migrations)
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    target = conversion.files[-1].path
    target.parent.mkdir()
    target.write_text("# mine\n")
    before = snapshot(project)
    with pytest.raises(ScriptDirectoryError, match=r"the file already exists\. Move it away"):
        apply_conversion(conversion)
    assert snapshot(project) == before


def test_conversion_is_a_value(project: Path) -> None:
    """The plan is a plain value: its fields say what will move where."""
    migrations = project / "migrations"
    fa3_history(migrations)
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    assert isinstance(conversion, Conversion)
    assert conversion.template == migrations / "script.py.mako"
    assert conversion.old_files == tuple(
        migrations / f"{rev}_step.py" for rev in ("a1", "b2", "c3", "d4", "e5")
    )
    assert [(f.bind, f.path.parent) for f in conversion.files][:1] == [("default", migrations)]


def test_other_spellings(project: Path, make_app: MakeApp, make_url: MakeURL) -> None:
    """A __future__ import, a decorated helper, an f-string dispatch, one-line functions and
    two-space indentation all survive, and the files run."""
    migrations = project / "migrations"
    migrations.mkdir()
    (migrations / "f1_odd.py").write_text(
        '"""odd\n\nRevision ID: f1\nRevises:\n"""\n'
        "from __future__ import annotations\n\n"
        "import functools\n\n"
        "from alembic import op\n"
        "import sqlalchemy as sa\n\n"
        "revision = 'f1'\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade(engine_name):\n"
        '  globals()[f"upgrade_{engine_name}"]()\n\n\n'
        "def downgrade(engine_name):\n"
        '  globals()["downgrade_" + engine_name]()\n\n\n'
        "@functools.cache\n"
        "def table_name(bind: str) -> str:\n"
        "  return f'{bind}_table'\n\n\n"
        "def upgrade_(): op.create_table(table_name('main'), sa.Column('id', sa.Integer))\n\n\n"
        "def downgrade_(): op.drop_table(table_name('main'))\n\n\n"
        "def upgrade_users():\n"
        "  op.create_table(table_name('users'), sa.Column('id', sa.Integer))\n\n\n"
        "def downgrade_users():\n"
        "  op.drop_table(table_name('users'))\n"
    )
    targets = [
        BindTarget("default", "", migrations, "default"),
        BindTarget("users", "users", migrations / "users", "users"),
    ]
    conversion = plan_conversion([migrations], targets, "default", migrations)
    default, users = (f.source for f in conversion.files)
    assert default.startswith(
        '"""odd\n\nRevision ID: f1\nRevises:\n"""\n\nfrom __future__ import annotations\n\n'
        "from collections.abc import Sequence\n"
    )
    assert "\n@functools.cache\ndef table_name(bind: str) -> str:\n" in users
    assert "def upgrade() -> None:\n    op.create_table(table_name('main')" in default
    assert "def upgrade() -> None:\n  op.create_table(table_name('users')" in users
    apply_conversion(conversion)
    urls = {"default": make_url(), "users": make_url()}
    app, _ = make_app(urls)
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert table_names(urls["default"]) == {"alembic_version", "main_table"}
    assert table_names(urls["users"]) == {"alembic_version", "users_table"}


OLD_ENV = """
import sqlalchemy as sa
from alembic import context

engine = sa.create_engine(context.config.attributes["url"])
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations(engine_name=context.config.attributes["engine_name"])
engine.dispose()
"""


def run_old_history(migrations: Path, urls: dict[str, str], *targets: str) -> None:
    """Migrate each database with the lockstep history, as Flask-Alembic 3 did: plain
    Alembic, every database recording the same ids. The env.py lives in a folder of its
    own: in the version location, Alembic would load it as a revision."""
    from alembic import command
    from alembic.config import Config

    env = migrations.parent / "old_env"
    env.mkdir()
    (env / "env.py").write_text(OLD_ENV)
    for name, url in urls.items():
        config = Config()
        config.set_main_option("script_location", str(env))
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", str(migrations))
        config.attributes.update(url=url, engine_name=name)
        for target in targets:
            command.upgrade(config, target)


def test_flask_alembic_3_databases_on_two_branches_upgrade(
    make_app: MakeApp, make_url: MakeURL, project: Path, dialect: str
) -> None:
    """Databases that the 3.x history left at two heads get two rows each, and the merge
    and the next revision apply on both binds."""
    migrations = project / "migrations"
    fa3_history(migrations)
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    run_old_history(migrations, urls, "b2", "c3")
    assert version_rows(urls["users"]) == {"b2", "c3"}
    conversion = plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    apply_conversion(conversion)
    for name, url in urls.items():
        set_version(url, conversion.new_ids(name, sorted(version_rows(url))))
    assert version_rows(urls["users"]) == {derived_id("b2", "users"), derived_id("c3", "users")}

    app, _ = make_app(urls)
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    assert version_rows(urls["default"]) == {"e5"}
    assert version_rows(urls["users"]) == {derived_id("e5", "users")}
    assert table_names(urls["default"]) == {"alembic_version", "item", "note"}
    assert table_names(urls["users"]) == {"alembic_version", "person", "audit"}
    engine = sa.create_engine(urls["users"])
    columns = {c["name"] for c in sa.inspect(engine).get_columns("person")}
    engine.dispose()
    assert columns == {"id", "email"}


def test_refused_while_a_stopped_conversion_has_its_journal(project: Path) -> None:
    """A journal in the script location: a conversion was stopped midway. Planning another
    one is refused, naming the journal and the command that finishes it."""
    from flask_alembic.lockstep import JOURNAL_NAME

    migrations = project / "migrations"
    fa3_history(migrations)
    journal = migrations / JOURNAL_NAME
    journal.write_text("{}\n")
    before = snapshot(project)
    with pytest.raises(ScriptDirectoryError) as caught:
        plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    assert str(caught.value) == (
        f"A conversion was stopped midway here: {journal} says what it moves where. "
        "Run 'flask db adopt' again: it finishes (or undoes) that conversion first."
    )
    assert snapshot(project) == before


def test_refused_staging_folder_without_journal(project: Path) -> None:
    """A staging folder no journal explains (left by an older version): refused, and the
    hint does not claim the old files are still in their folders."""
    migrations = project / "migrations"
    fa3_history(migrations)
    staging = migrations / ".lockstep-archive.lockstep-tmp"
    staging.mkdir()
    with pytest.raises(ScriptDirectoryError) as caught:
        plan_conversion([migrations], fa3_targets(migrations), "default", migrations)
    assert str(caught.value) == (
        f"The folder {staging} is left from a conversion that was stopped, and no journal "
        "says what it moved there. Move each revision file in it back to the same place "
        "in the migrations folder, delete what is left of it, then convert again."
    )


def test_refused_a_folder_outside_the_migrations_folder(project: Path, tmp_path: Path) -> None:
    """A bind's folder, or the old revisions, outside the migrations folder: refused before
    anything is written, naming the bind or the folder (the journal that lets a killed
    run finish names files relative to the migrations folder only)."""
    migrations = project / "migrations"
    fa3_history(migrations)
    elsewhere = tmp_path / "elsewhere"
    targets = [
        BindTarget("default", "default", migrations, "default"),
        BindTarget("users", "users", elsewhere / "users", "users"),
    ]
    before = snapshot(tmp_path)
    with pytest.raises(ScriptDirectoryError) as caught:
        plan_conversion([migrations], targets, "default", migrations)
    assert str(caught.value) == (
        f"Bind 'users' would keep its revisions in {elsewhere / 'users'}, outside the "
        f"migrations folder {migrations}: adopt converts only into it. Choose a "
        "version_location inside the migrations folder for it, then convert again."
    )
    with pytest.raises(ScriptDirectoryError) as caught:
        plan_conversion([migrations], fa3_targets(migrations), "default", elsewhere)
    assert str(caught.value) == (
        f"The revisions in {migrations} are outside the migrations folder {elsewhere}: adopt "
        "converts only a history kept inside it. Move the revision files into the "
        "migrations folder's versions folder, then convert again."
    )
    assert snapshot(tmp_path) == before
    # Through a link to a folder inside, it is inside.
    (project / "linked").symlink_to(migrations)
    plan_conversion([migrations], fa3_targets(project / "linked"), "default", migrations)


#: A journal of a conversion stopped with only the archive's rename left.
STOPPED = {
    "phase": "moving",
    "temps": [],
    "folders": [".lockstep-archive.lockstep-tmp"],
    "moves": [[".lockstep-archive.lockstep-tmp", ".lockstep-archive"]],
}


def test_a_journal_names_files_relative_to_its_folder(project: Path, tmp_path: Path) -> None:
    """The journal's paths are relative to the folder it is in: copied elsewhere, it
    finishes the copy's conversion and leaves the original's alone."""
    import json
    import shutil

    from flask_alembic.lockstep import JOURNAL_NAME
    from flask_alembic.lockstep import recover

    migrations = project / "migrations"
    (migrations / ".lockstep-archive.lockstep-tmp").mkdir(parents=True)
    (migrations / JOURNAL_NAME).write_text(json.dumps(STOPPED), encoding="utf-8")
    copy = tmp_path / "copy"
    shutil.copytree(migrations, copy)
    before = snapshot(migrations)
    assert recover(copy) == "finished"
    assert snapshot(copy) == {".lockstep-archive": None}
    assert snapshot(migrations) == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"phase": "done"}, "its phase is 'done'"),
        ({"phase": None}, "its phase is None"),
        ({"temps": "a"}, "its 'temps' is not a list of paths"),
        ({"folders": [1]}, "its 'folders' is not a list of paths"),
        ({"moves": [["a"]]}, "its 'moves' is not a list of [from, to] pairs"),
        ({"moves": {}}, "its 'moves' is not a list of [from, to] pairs"),
        ({"moves": [[1, 2]]}, "its 'moves' is not a list of paths"),
        ({"moves": []}, "its last move is not the one to .lockstep-archive"),
        ({"moves": [["a", "b"]]}, "its last move is not the one to .lockstep-archive"),
        ({"temps": ["../outside"]}, "'../outside' is not a path inside {migrations}"),
        ({"temps": ["a/../../outside"]}, "'a/../../outside' is not a path inside {migrations}"),
        ({"temps": ["{outside}"]}, "'{outside}' is not a path inside {migrations}"),
        ({"folders": [""]}, "'' is not a path inside {migrations}"),
        (
            {"moves": [["{outside}", "a"], *STOPPED["moves"]]},
            "'{outside}' is not a path inside {migrations}",
        ),
        ([], "it is not a JSON object"),
    ],
    ids=[
        "unknown-phase",
        "no-phase",
        "temps-a-string",
        "folders-not-strings",
        "move-not-a-pair",
        "moves-not-a-list",
        "move-not-strings",
        "no-move",
        "last-move-not-the-archive",
        "parent-folder",
        "parent-folder-inside",
        "absolute",
        "empty",
        "absolute-move",
        "not-an-object",
    ],
)
def test_a_journal_of_another_shape_is_refused(
    project: Path, tmp_path: Path, change: object, reason: str
) -> None:
    """A journal edited by hand (or from another version) is refused as a whole, with the
    one-line "Cannot read the journal" error naming it; nothing is moved or removed, in
    the migrations folder or outside it."""
    import json

    from flask_alembic.lockstep import JOURNAL_NAME
    from flask_alembic.lockstep import recover

    migrations = project / "migrations"
    outside = tmp_path / "outside"
    outside.write_text("keep\n", encoding="utf-8")
    (migrations / ".lockstep-archive.lockstep-tmp").mkdir(parents=True)
    text = json.dumps({**STOPPED, **change} if isinstance(change, dict) else change)
    journal = migrations / JOURNAL_NAME
    journal.write_text(text.replace("{outside}", str(outside)), encoding="utf-8")
    before = snapshot(tmp_path)
    with pytest.raises(ScriptDirectoryError) as caught:
        recover(migrations)
    assert str(caught.value) == (
        f"Cannot read the journal {journal} of a conversion that was stopped: "
        f"{reason.format(migrations=migrations, outside=outside)}. Put the migrations "
        "folder back as it was before adopting, from the backup (without "
        f"{JOURNAL_NAME} and the folders adopt made), then run adopt again."
    )
    assert snapshot(tmp_path) == before


def test_undoing_removes_the_moved_copy_of_a_file_put_back_by_hand(project: Path) -> None:
    """Killed while undoing a conversion, after the operator put back the old revision the
    conversion had moved: undoing removes the moved copy when it is the same byte for
    byte, so no staging folder is left; a copy that differs is kept."""
    import json

    from flask_alembic.lockstep import JOURNAL_NAME
    from flask_alembic.lockstep import recover

    migrations = project / "migrations"
    staging = migrations / ".lockstep-archive.lockstep-tmp"
    (staging / "versions").mkdir(parents=True)
    (migrations / "versions").mkdir()
    for name, moved in (("same.py", "old\n"), ("edited.py", "older\n")):
        (migrations / "versions" / name).write_text("old\n", encoding="utf-8")
        (staging / "versions" / name).write_text(moved, encoding="utf-8")
    journal = {
        "phase": "undoing",
        "temps": [],
        "folders": [".lockstep-archive.lockstep-tmp", ".lockstep-archive.lockstep-tmp/versions"],
        "moves": [
            ["versions/same.py", ".lockstep-archive.lockstep-tmp/versions/same.py"],
            ["versions/edited.py", ".lockstep-archive.lockstep-tmp/versions/edited.py"],
            *STOPPED["moves"],
        ],
    }
    (migrations / JOURNAL_NAME).write_text(json.dumps(journal), encoding="utf-8")
    assert recover(migrations) == "undone"
    assert snapshot(migrations) == {
        ".lockstep-archive.lockstep-tmp": None,
        ".lockstep-archive.lockstep-tmp/versions": None,
        ".lockstep-archive.lockstep-tmp/versions/edited.py": "older\n",
        "versions": None,
        "versions/edited.py": "old\n",
        "versions/same.py": "old\n",
    }
