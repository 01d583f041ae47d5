"""Memory of a long run: each revision's module let go of once its step has run, the
version table's writes kept out of SQLAlchemy's statement cache; nothing else changes."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeApp
from conftest import table_names
from conftest import version_rows
from flask import Flask

from flask_alembic import Alembic
from flask_alembic.errors import MigrationFailedError

REVISION = '''"""step {number}"""
import sqlalchemy as sa
from alembic import op

with open({log!r}, "a") as log:
    log.write({rev!r} + "\\n")

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("t{number}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("t{number}")
'''

IDS = [f"a{number:011d}" for number in range(1, 5)]


@pytest.fixture
def history(make_app: MakeApp, tmp_path: Path) -> tuple[Flask, Alembic, str, Path]:
    """An app whose four revisions each create a table and log every import of their file."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, alembic = make_app(url)
    log = tmp_path / "imports.log"
    folder = Path(app.root_path) / "migrations"
    with app.app_context():
        alembic.mkdir()
    down = None
    for number, rev in enumerate(IDS, 1):
        text = REVISION.format(number=number, rev=rev, down=down, log=str(log))
        (folder / f"{rev}_step.py").write_text(text)
        down = rev
    return app, alembic, url, log


def imports(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cycle collector off around the test: what is freed is freed by reference counts."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_module_freed_once_its_step_ran(
    history: tuple[Flask, Alembic, str, Path],
    collector_off: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once its step has run, a revision's module is let go of and its code freed at once
    (not left to the cycle collector, which does not see what existed before the run)."""
    # Alembic logs each step with the step as argument: a handler keeping the records
    # (pytest's own) would hold the steps, and through them the modules.
    caplog.set_level(logging.WARNING, logger="alembic.runtime.migration")
    app, alembic, url, log = history
    with app.app_context():
        scripts = [alembic.script_directory.get_revision(rev) for rev in IDS]
        functions = [weakref.ref(script.module.upgrade) for script in scripts]
        assert all(function() is not None for function in functions)
        alembic.upgrade()
        assert [function() for function in functions] == [None] * len(IDS)
    assert version_rows(url) == {IDS[-1]}
    assert {f"t{n}" for n in range(1, 5)} <= table_names(url)
    assert imports(log) == IDS


def test_module_kept_while_held(history: tuple[Flask, Alembic, str, Path]) -> None:
    """A module something else still holds is left whole: only the run's reference goes."""
    app, alembic, url, _ = history
    with app.app_context():
        held = alembic.script_directory.get_revision(IDS[1]).module
        alembic.upgrade()
    assert held.revision == IDS[1]
    assert callable(held.upgrade)
    assert callable(held.downgrade)
    assert version_rows(url) == {IDS[-1]}


def test_second_run_in_one_app_context(history: tuple[Flask, Alembic, str, Path]) -> None:
    """Down and up again in one app context: the modules let go of are imported again,
    and each run does all its work."""
    app, alembic, url, log = history
    with app.app_context():
        alembic.upgrade()
        assert version_rows(url) == {IDS[-1]}
        alembic.downgrade("base")
        assert version_rows(url) == set()
        assert not {f"t{n}" for n in range(1, 5)} & table_names(url)
        alembic.upgrade(IDS[1])
        alembic.upgrade()
    assert version_rows(url) == {IDS[-1]}
    assert {f"t{n}" for n in range(1, 5)} <= table_names(url)
    # Imported for the upgrade, again for the downgrade, then for the two upgrades.
    assert sorted(imports(log)) == sorted(IDS * 2 + IDS[::-1])


def test_shared_loader_keeps_its_modules(history: tuple[Flask, Alembic, str, Path]) -> None:
    """The test harness's loader, shared by many runs, imports each file once."""
    app, alembic, url, log = history
    engine = sa.create_engine(url)
    try:
        alembic._use_engines(app, {"default": engine})
        for _ in range(2):
            with app.app_context():
                alembic.upgrade()
                alembic.downgrade("base")
        assert sorted(imports(log)) == sorted(IDS)
    finally:
        alembic._use_engines(app, None)
        engine.dispose()


def test_broken_last_revision_stops_before_the_first_step(
    history: tuple[Flask, Alembic, str, Path],
) -> None:
    """Steps are built one by one as they run, but every file is imported before the
    first: a file that fails to import at the end of the history changes nothing."""
    app, _, url, _ = history
    folder = Path(app.root_path) / "migrations"
    (folder / "b00000000001_broken.py").write_text(
        f'revision = "b00000000001"\ndown_revision = {IDS[-1]!r}\n'
        "import not_installed_anywhere\n"
        "def upgrade():\n    pass\n"
    )
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code != 0
    assert "b00000000001_broken.py" in result.output
    assert "not_installed_anywhere" in result.output
    assert version_rows(url) == set()
    assert not {f"t{n}" for n in range(1, 5)} & table_names(url)


def test_version_writes_stay_out_of_the_statement_cache(make_app: MakeApp, tmp_path: Path) -> None:
    """Each step's version-table write names its revision ids as literals: none is kept in
    the engine's compiled-statement cache. The revisions' own statements still are."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app, alembic = make_app(url)
    folder = Path(app.root_path) / "migrations"
    with app.app_context():
        alembic.mkdir()
        engine = alembic.registry["default"].engine
    down = None
    for number in range(1, 13):
        rev = f"c{number:011d}"
        (folder / f"{rev}_step.py").write_text(
            f"revision = {rev!r}\ndown_revision = {down!r}\n"
            "import sqlalchemy as sa\nfrom alembic import op\n"
            "def upgrade():\n"
            '    op.get_bind().execute(sa.select(sa.literal_column("42")))\n'
        )
        down = rev
    with app.app_context():
        alembic.upgrade()
    assert version_rows(url) == {"c00000000012"}
    assert engine._compiled_cache is not None
    cached = [str(key) for key in engine._compiled_cache]
    assert not [key for key in cached if "alembic_version" in key and "UPDATE" in key.upper()]
    assert any("42" in key for key in cached)
    assert len(cached) < 12


PLAIN = '''"""plain step {number}"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = {rev!r}
down_revision: str | Sequence[str] | None = {down!r}
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
TABLE = "p{number}"


def upgrade() -> None:
    op.create_table(TABLE, sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table(TABLE)
'''


def _plain_history(
    make_app: MakeApp, url: str, *, side_effect: bool
) -> tuple[Flask, Alembic, str, list[Path]]:
    app, alembic = make_app(url)
    folder = Path(app.root_path) / "migrations"
    with app.app_context():
        alembic.mkdir()
    down, paths = None, []
    for number in range(1, 4):
        rev = f"p{number:011d}"
        text = PLAIN.format(number=number, rev=rev, down=down)
        if side_effect and number == 2:
            text += "\nprint('imported')\n"  # a call at the top level: not plain
        path = folder / f"{rev}_plain.py"
        path.write_text(text)
        paths.append(path)
        down = rev
    return app, alembic, url, paths


def test_plain_module_is_imported_again_for_its_step(make_app: MakeApp, database_url: str) -> None:
    """A plain revision file (imports, literals, functions) is imported before the first
    step, to check it, let go of, and imported again for its step: so a long upgrade
    holds one module at a time. A file changed in between is refused at its step, which
    runs nothing, with the steps before it done."""
    app, alembic, url, paths = _plain_history(make_app, database_url, side_effect=False)

    def edit(plan: object) -> None:
        paths[1].write_text(paths[1].read_text() + "\n# edited during the run\n")

    with app.app_context(), pytest.raises(MigrationFailedError) as info:
        alembic.upgrade(on_plan=edit)
    assert isinstance(info.value, MigrationFailedError)
    assert info.value.message.startswith(
        f"Upgrade of bind 'default' failed at revision p00000000002 ({paths[1]}): "
    )
    assert f"Revision file {paths[1]} changed while it was in use" in info.value.message
    assert version_rows(url) == {"p00000000001"}
    assert "p1" in table_names(url)
    assert "p2" not in table_names(url)
    with app.app_context():
        alembic.upgrade()
    assert version_rows(url) == {"p00000000003"}


def test_module_with_top_level_effects_is_imported_once(
    make_app: MakeApp, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file whose top level does more than a plain one (here a call) is imported once
    per run and kept until its step: the step runs the code that was checked."""
    app, alembic, url, paths = _plain_history(make_app, database_url, side_effect=True)

    def edit(plan: object) -> None:
        paths[1].write_text(paths[1].read_text().replace('TABLE = "p2"', 'TABLE = "px"'))

    with app.app_context():
        alembic.upgrade(on_plan=edit)
    assert capsys.readouterr().out.count("imported") == 1
    assert version_rows(url) == {"p00000000003"}
    assert {"p1", "p2", "p3"} <= table_names(url)
    assert "px" not in table_names(url)


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        (
            '"""doc"""\nimport sqlalchemy as sa\nfrom alembic import op\nrevision = "a"\n'
            "down_revision = None\n\n\ndef upgrade():\n    op.drop_table('t')\n",
            True,
        ),
        ('revision: str = "a"\ndown_revision: str | None = None\nX: "list[int]" = [1, 2]\n', True),
        ("from typing import Union\nrevision: Union[str, None] = 'a'\n", True),
        ("def upgrade(n=1, *, k=None) -> None:\n    global x\n", False),
        ("print('hi')\n", False),
        ("x = 1\n'late docstring'\n", False),
        ("import sqlalchemy as sa\nmeta = sa.MetaData()\n", False),
        ("from os import *\n", False),
        ("class Model:\n    pass\n", False),
        ("import functools\n@functools.cache\ndef upgrade():\n    pass\n", False),
        ("def upgrade(n=[].append(1)):\n    pass\n", False),
        ("def upgrade(n: print()):\n    pass\n", False),
        ("revision: print() = 'a'\n", False),
        ("if True:\n    revision = 'a'\n", False),
        ("with open('x') as f:\n    pass\n", False),
        ("a.b = 1\n", False),
        ("def __getattr__(name):\n    return 1\n", False),
        ("x = y = 1\n", True),
        ("(a, b) = (1, 2)\n", False),
    ],
)
def test_plain_module(source: str, plain: bool) -> None:
    """What a plain module is: running its top level again changes nothing but itself."""
    import ast

    from flask_alembic.revision_cache import plain_module

    assert plain_module(ast.parse(source)) is plain


def test_generated_revisions_are_plain(make_app: MakeApp, database_url: str) -> None:
    """What `flask db revision` writes, autogenerated or empty, is a plain file: a long
    upgrade of such files holds one module at a time."""
    from flask_alembic._alembic_compat import LazyScript

    app, alembic = make_app(database_url)
    with app.app_context():
        first = alembic.revision("first")[0].revision
        second = alembic.revision("second", empty=True)[0].revision
    app, alembic = make_app(database_url)  # a new app: scripts read from the cache
    with app.app_context():
        scripts = [alembic.script_directory.get_revision(rev) for rev in (first, second)]
    assert [type(script) for script in scripts] == [LazyScript, LazyScript]
    assert [getattr(script, "plain", None) for script in scripts] == [True, True]


def test_plain_module_imported_before_the_run(make_app: MakeApp, tmp_path: Path) -> None:
    """A plain file whose module something imported before the run (here the caller,
    through the script directory; with two binds, each bind's view holds copies of the
    scripts) is checked, let go of and imported again like any other: the run does not
    mistake it for a file that changed."""
    urls = {name: f"sqlite:///{tmp_path / (name + '.db')}" for name in ("default", "other")}
    include = {name: {"include": True} for name in urls}
    app, alembic = make_app(urls, {n: sa.MetaData() for n in urls}, ALEMBIC_BINDS=include)
    with app.app_context():
        made = [
            alembic.revision(name, bind=bind, empty=True)[0].revision
            for name, bind in (("a", "default"), ("b", "default"), ("c", "other"))
        ]
    app, alembic = make_app(urls, {n: sa.MetaData() for n in urls}, ALEMBIC_BINDS=include)
    with app.app_context():
        assert len(alembic.plan("upgrade", "heads").steps) == 3  # builds the bind views
        for rev in made:
            assert alembic.script_directory.get_revision(rev).module.revision == rev
        applied = alembic.upgrade().applied
    assert sorted(str(s.revision) for s in applied) == sorted(made)
    assert version_rows(urls["default"]) == {made[1]}
    assert version_rows(urls["other"]) == {made[2]}
