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
