"""The apps in examples/, driven through the real ``flask`` command on a copy of each."""

from __future__ import annotations

import ast
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import _server_url
from conftest import CHECKS

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class BindSpec:
    """What one bind of an example should look like after ``revision`` and ``upgrade``."""

    name: str
    #: The SQLite file, relative to the example's instance folder.
    database: str
    #: The folder its revisions are written to, relative to the example folder.
    versions: str
    tables: frozenset[str]


@dataclass(frozen=True)
class Example:
    name: str
    binds: tuple[BindSpec, ...]


EXAMPLES = [
    Example(
        "flask_sqlalchemy_app",
        (BindSpec("default", "blog.db", "migrations", frozenset({"user", "post"})),),
    ),
    Example(
        "flask_sqlalchemy_lite_app",
        (BindSpec("default", "todo.db", "migrations", frozenset({"todo_list", "item"})),),
    ),
    Example(
        "plain_sqlalchemy_app",
        (BindSpec("default", "inventory.db", "migrations", frozenset({"product", "stock"})),),
    ),
    Example(
        "two_binds_app",
        (
            BindSpec("default", "shop.db", "migrations", frozenset({"customer", "orders"})),
            BindSpec("analytics", "analytics.db", "migrations/analytics", frozenset({"page_view"})),
        ),
    ),
]


@dataclass
class Session:
    """One copied example and the ``flask db`` commands run on it, in order."""

    example: Example
    root: Path
    folder: Path
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", str(self.folder), "db", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def result(self, step: str) -> subprocess.CompletedProcess[str]:
        return self.results[step]

    def revision_files(self, bind: BindSpec) -> list[Path]:
        return sorted((self.folder / bind.versions).glob("*.py"))

    def database(self, bind: BindSpec) -> Path:
        return self.folder / "instance" / bind.database


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A command, its exit code and its output, for assertion messages."""
    return (
        f"$ {' '.join(result.args)}\nexit code {result.returncode}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


def flat(text: str) -> str:
    """``text`` with every run of whitespace made one space (reports may wrap lines)."""
    return " ".join(text.split())


def revision_id(path: Path) -> str:
    match = re.search(r"^revision(?:\s*:\s*\w+)?\s*=\s*['\"](\w+)['\"]", path.read_text(), re.M)
    assert match is not None, f"no revision id in {path}"
    return match.group(1)


def tables(database: Path) -> set[str]:
    with closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def version_rows(database: Path) -> list[str]:
    with closing(sqlite3.connect(database)) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


@pytest.fixture(scope="module", params=EXAMPLES, ids=[e.name for e in EXAMPLES])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Session:
    """A copy of one example, after revision "initial", upgrade, current and upgrade again."""
    example: Example = request.param
    root = tmp_path_factory.mktemp(example.name)
    folder = root / example.name
    shutil.copytree(
        EXAMPLES_DIR / example.name,
        folder,
        ignore=shutil.ignore_patterns("migrations", "instance", "__pycache__"),
    )
    session = Session(example, root, folder)
    session.results["revision"] = session.flask("revision", "initial")
    session.results["upgrade"] = session.flask("upgrade")
    session.results["current"] = session.flask("current")
    session.results["upgrade again"] = session.flask("upgrade")
    return session


def test_revision_writes_one_file_per_bind(session: Session) -> None:
    """`db revision "initial"` exits 0 and writes one revision in each bind's folder."""
    result = session.result("revision")
    assert result.returncode == 0, describe(result)
    for bind in session.example.binds:
        files = session.revision_files(bind)
        assert len(files) == 1, f"{bind.name}: {files}\n{describe(result)}"
        assert "initial" in files[0].read_text()


def test_revision_starts_each_bind_branch(session: Session) -> None:
    """Each bind's first revision starts at base and carries the bind name as branch label."""
    for bind in session.example.binds:
        (path,) = session.revision_files(bind)
        module = ast.parse(path.read_text())
        values: dict[str, object] = {}
        for node in module.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id in {"down_revision", "branch_labels"}:
                    values[target.id] = ast.literal_eval(node.value)
        assert values["down_revision"] is None, path
        labels = values["branch_labels"]
        assert labels == bind.name or (isinstance(labels, tuple) and bind.name in labels), path


def test_upgrade_creates_the_tables(session: Session) -> None:
    """`db upgrade` exits 0 and creates each bind's tables in its own database, and only those."""
    result = session.result("upgrade")
    assert result.returncode == 0, describe(result)
    for bind in session.example.binds:
        database = session.database(bind)
        assert database.is_file(), f"{database} missing\n{describe(result)}"
        assert tables(database) == bind.tables | {"alembic_version"}, bind.name


def test_upgrade_records_the_head(session: Session) -> None:
    """After `db upgrade`, each database's alembic_version holds its bind's new revision."""
    for bind in session.example.binds:
        (path,) = session.revision_files(bind)
        assert version_rows(session.database(bind)) == [revision_id(path)], bind.name


def test_current_shows_each_bind_at_its_head(session: Session) -> None:
    """`db current` exits 0 and names every bind with the revision it is at."""
    result = session.result("current")
    assert result.returncode == 0, describe(result)
    output = flat(result.stdout)
    for bind in session.example.binds:
        (path,) = session.revision_files(bind)
        assert bind.name in output, describe(result)
        assert revision_id(path) in output, describe(result)


def test_second_upgrade_has_nothing_to_do(session: Session) -> None:
    """A second `db upgrade` exits 0, says nothing is left to do and changes nothing."""
    result = session.result("upgrade again")
    assert result.returncode == 0, describe(result)
    assert "nothing to do" in flat(result.stdout + result.stderr).lower(), describe(result)
    for bind in session.example.binds:
        (path,) = session.revision_files(bind)
        assert version_rows(session.database(bind)) == [revision_id(path)], bind.name


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_docstring_says_how_to_run(example: Example) -> None:
    """Each example's module docstring shows the commands these tests run."""
    source = (EXAMPLES_DIR / example.name / "__init__.py").read_text()
    docstring = ast.get_docstring(ast.parse(source)) or ""
    for command in ('db revision "initial"', "db upgrade", "db current"):
        assert f"flask --app examples/{example.name} {command}" in docstring


# -- examples/testing_migrations: the pytest plugin on a two-bind app ----------------------

TESTING_EXAMPLE = EXAMPLES_DIR / "testing_migrations"
#: The app's binds (the generated tests, in the order the plugin collects them: CHECKS).
TESTING_BINDS = ("default", "analytics")
DATA_TESTS = (
    "test_order_totals_move_to_cents",
    "test_order_totals_come_back_on_downgrade",
    "test_page_view_paths_are_lowercased",
)
CENTS_REVISION = "shop/migrations/294f3f1230a2_order_totals_in_cents.py"


def copy_testing_example(tmp_path: Path) -> Path:
    folder = tmp_path / "testing_migrations"
    shutil.copytree(
        TESTING_EXAMPLE, folder, ignore=shutil.ignore_patterns("instance", "__pycache__")
    )
    return folder


def run_pytest_process(
    folder: Path, tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``python -m pytest -v`` in ``folder``, a process of its own with its own ini file,
    and that process's id (part of the names of the databases it creates on a server).

    Its temporary files (the plugin's SQLite databases) go under ``tmp_path``, and it
    writes no bytecode or cache, so nothing is left outside the copy.
    """
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PYTEST_", "COV_"))}
    env.update(TMPDIR=str(temp), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:cov"]
    with subprocess.Popen(
        [*command, *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        stdout, stderr = process.communicate(timeout=300)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return result, process.pid


def run_pytest(folder: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run_pytest_process` without the process id."""
    return run_pytest_process(folder, tmp_path, *args)[0]


def outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each test's outcome in ``-v`` output, by its node id."""
    found = re.findall(r"^(tests/\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)", result.stdout, re.M)
    return dict(found)


def server_databases(url: str, pid: int) -> set[str]:
    """The ``fa_test_`` databases on the server of ``url`` that process ``pid`` created
    (other test sessions may be running on the same server)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            names = sa.inspect(connection).get_schema_names()
            if connection.dialect.name == "postgresql":
                names = list(connection.scalars(sa.text("SELECT datname FROM pg_database")))
        return {n for n in names if n.startswith("fa_test_") and f"_{pid}_" in n}
    finally:
        engine.dispose()


def test_testing_example_passes(tmp_path: Path, dialect: str) -> None:
    """The example's own pytest run passes: every generated test per bind, its data tests,
    and the irreversible revision in the summary; the app's own databases are never
    created, and on a server no test database is left."""
    folder = copy_testing_example(tmp_path)
    args: list[str] = []
    url = None
    if dialect != "sqlite":
        url = _server_url(dialect).render_as_string(hide_password=False)
        args = ["-o", f"flask_alembic_servers=* = {url}"]
    result, pid = run_pytest_process(folder, tmp_path, *args)
    assert result.returncode == 0, describe(result)
    where = (
        "temporary SQLite files"
        if url is None
        else f"every bind on {sa.make_url(url).render_as_string(hide_password=True)}"
    )
    assert f"flask-alembic: app shop:create_app; test databases: {where}\n" in result.stdout
    expected = {f"tests/conftest.py::{c}[{b}]" for c in CHECKS for b in TESTING_BINDS}
    expected |= {f"tests/test_data_migrations.py::{t}" for t in DATA_TESTS}
    assert outcomes(result) == dict.fromkeys(expected, "PASSED"), describe(result)
    assert (
        "analytics: 6730c66505ba "
        "(shop/migrations/analytics/6730c66505ba_lowercase_page_view_paths.py): "
        "irreversible: the paths' original case is not kept"
    ) in result.stdout, describe(result)
    assert list((tmp_path / "tmp").iterdir()) == [], "temporary files left behind"
    # The app's own SQLite files (in its instance folder) were never opened.
    assert list((folder / "instance").iterdir()) == []
    if url is not None:
        assert server_databases(url, pid) == set(), "test databases left on the server"


def _reports(stdout: str) -> str:
    """pytest's output before its short summary, which repeats each message in full when
    ``CI`` is set (and cuts it to the terminal's width otherwise)."""
    return stdout.partition("short test summary info")[0]


def test_testing_example_failure_names_bind_and_revision(tmp_path: Path) -> None:
    """A downgrade that forgets a column fails the up/down and no-trace tests of that bind
    only, each naming the revision and its file once, without a chained traceback."""
    folder = copy_testing_example(tmp_path)
    revision = folder / CENTS_REVISION
    source = revision.read_text()
    assert source.count('batch.drop_column("total_cents")\n') == 1
    revision.write_text(source.replace('        batch.drop_column("total_cents")\n', ""))
    result = run_pytest(folder, tmp_path)
    assert result.returncode == 1, describe(result)
    failed = {name for name, outcome in outcomes(result).items() if outcome == "FAILED"}
    assert failed == {
        "tests/conftest.py::test_up_down[default]",
        "tests/conftest.py::test_downgrade_leaves_no_trace[default]",
    }, describe(result)
    trace = (
        f"bind 'default': downgrading revision 294f3f1230a2 ({CENTS_REVISION}) "
        "does not give back the schema from before it:\n  ~ table orders:\n"
        "      + column total_cents (INTEGER, NOT NULL) is left behind"
    )
    upgrade_again = (
        f"bind 'default': revision 294f3f1230a2 ({CENTS_REVISION}) failed to upgrade again"
    )
    reports = _reports(result.stdout)
    assert reports.count(trace) == 1, describe(result)
    assert reports.count(upgrade_again) == 1, describe(result)
    assert "During handling" not in result.stdout, describe(result)


def test_testing_example_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    """A server the plugin cannot log in to errors every test once, naming the server
    without its password, and the fix; the message is printed once per test."""
    admin = _server_url("postgresql").set(username="fa_nobody", password="pw-kept-secret")
    url = admin.render_as_string(hide_password=False)
    result = run_pytest(
        copy_testing_example(tmp_path), tmp_path, "-o", f"flask_alembic_servers=* = {url}"
    )
    assert result.returncode == 1, describe(result)
    assert set(outcomes(result).values()) == {"ERROR"}, describe(result)
    message = (
        f"flask-alembic: Could not create the test database fa_test_\\w+ on "
        f"{re.escape(admin.render_as_string(hide_password=True))}: OperationalError: .*"
        'role "fa_nobody" does not exist. Check the server in flask_alembic_servers is up '
        "and the user may create databases."
    )
    # pytest reports a session fixture's error with each test that uses it.
    errors = len(outcomes(result))
    assert errors == len(CHECKS) * len(TESTING_BINDS) + len(DATA_TESTS), describe(result)
    assert len(re.findall(message, _reports(result.stdout))) == errors, describe(result)
    assert "During handling" not in result.stdout, describe(result)
    assert "pw-kept-secret" not in result.stdout + result.stderr


def test_testing_example_with_the_app_fixture_overridden(tmp_path: Path) -> None:
    """Without the ini option, a no-argument ``flask_alembic_app`` fixture in the
    ``tests/conftest.py`` the generated tests are collected under turns the plugin on."""
    folder = copy_testing_example(tmp_path)
    ini = folder / "pytest.ini"
    lines = ini.read_text().splitlines(keepends=True)
    assert "flask_alembic_app = shop:create_app\n" in lines
    ini.write_text("".join(line for line in lines if "flask_alembic_app" not in line))
    with (folder / "tests" / "conftest.py").open("a") as conftest:
        conftest.write(
            "\n\nimport pytest\n\nfrom shop import create_app\n\n\n"
            '@pytest.fixture(scope="session")\n'
            "def flask_alembic_app():\n"
            "    return create_app()\n"
        )
    result = run_pytest(folder, tmp_path)
    assert result.returncode == 0, describe(result)
    expected = {f"tests/conftest.py::{c}[{b}]" for c in CHECKS for b in TESTING_BINDS}
    expected |= {f"tests/test_data_migrations.py::{t}" for t in DATA_TESTS}
    assert outcomes(result) == dict.fromkeys(expected, "PASSED"), describe(result)


def test_testing_example_choosing_tests(tmp_path: Path) -> None:
    """``flask_alembic_tests`` names the generated tests to collect, one or several a line."""
    folder = copy_testing_example(tmp_path)
    with (folder / "pytest.ini").open("a") as ini:
        ini.write("flask_alembic_tests =\n    test_up_down test_single_head\n    test_upgrade\n")
    result = run_pytest(folder, tmp_path)
    assert result.returncode == 0, describe(result)
    chosen = ("test_single_head", "test_upgrade", "test_up_down")
    expected = {f"tests/conftest.py::{c}[{b}]" for c in chosen for b in TESTING_BINDS}
    expected |= {f"tests/test_data_migrations.py::{t}" for t in DATA_TESTS}
    assert outcomes(result) == dict.fromkeys(expected, "PASSED"), describe(result)


def test_testing_example_choosing_an_unknown_test(tmp_path: Path) -> None:
    """A name in ``flask_alembic_tests`` that is no generated test is a collection error
    naming it and the names there are, not a run that silently checks nothing."""
    folder = copy_testing_example(tmp_path)
    with (folder / "pytest.ini").open("a") as ini:
        ini.write("flask_alembic_tests = test_up_down test_updown\n")
    result = run_pytest(folder, tmp_path)
    assert result.returncode == 2, describe(result)
    assert (
        "flask-alembic: flask_alembic_tests names no test test_updown; the tests are "
        f"{', '.join(CHECKS)}."
    ) in flat(result.stdout), describe(result)


def test_testing_example_model_without_revision(tmp_path: Path) -> None:
    """A model column without a revision fails that bind's models-match test only, showing
    the operation autogenerate would write and a revision command that runs as shown."""
    folder = copy_testing_example(tmp_path)
    models = folder / "shop" / "__init__.py"
    source = models.read_text()
    viewed_at = "    viewed_at: Mapped[datetime] = mapped_column(default=_now)\n"
    assert source.count(viewed_at) == 1
    referrer = "    referrer: Mapped[str | None] = mapped_column(sa.String(500))\n"
    models.write_text(source.replace(viewed_at, viewed_at + referrer))
    result = run_pytest(folder, tmp_path)
    assert result.returncode == 1, describe(result)
    failed = {name for name, outcome in outcomes(result).items() if outcome == "FAILED"}
    assert failed == {"tests/conftest.py::test_models_match[analytics]"}, describe(result)
    assert (
        "bind 'analytics': the models differ from the database upgraded to 6730c66505ba "
        "(shop/migrations/analytics/6730c66505ba_lowercase_page_view_paths.py); autogenerate "
        "would write:\n"
        "    op.add_column('page_view', sa.Column('referrer', sa.String(length=500), "
        "nullable=True))\n"
        "Write a revision: 'flask db revision --bind analytics \"describe the change\"'.\n"
    ) in result.stdout, describe(result)
