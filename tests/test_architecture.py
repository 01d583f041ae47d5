"""The package's layout: one job per module, imports that only go down, lazy heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import flask_alembic

PACKAGE = Path(flask_alembic.__file__).parent

#: The modules from the top down, as docs/architecture.md lists them. A module may import
#: (at run time, lazily, or for types only) only modules after it in this list.
LAYERS = [
    "pytest_plugin",
    "pytest_checks",
    "testing",
    "app_imports",
    "scratch",
    "snapshot",
    "__init__",
    "extension",
    "cli",
    "api",
    "report_json",
    "report",
    "layout",
    "adopt",
    "migrate",
    "writer",
    "status",
    "drift",
    "lint",
    "lint_run",
    "executor",
    "loader",
    "environment",
    "timeouts",
    "locking",
    "lockfile",
    "planner",
    "registry",
    "history",
    "lockstep",
    "config",
    "_alembic_compat",
    "identity",
    "revision_cache",
    "errors",
    "plan",
    "redact",
    "losses",
    "lint_sql",
    "lint_rules",
    "_collector",
]


def _local_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("flask_alembic."):
            found.add((node.module or "").split(".")[1])
    return found


def test_every_module_is_placed() -> None:
    """Every module of the package has a place in the layers, and the docs list it."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == set(LAYERS)
    architecture = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    for name in LAYERS:
        assert f"`{name}.py`" in architecture, name


def test_imports_only_go_down() -> None:
    """No module imports one above it (type-only and function-level imports included)."""
    upward = []
    for index, name in enumerate(LAYERS):
        allowed = set(LAYERS[index + 1 :])
        for imported in _local_imports(PACKAGE / f"{name}.py"):
            if imported not in allowed:
                upward.append(f"{name} -> {imported}")
    assert not upward


def test_modules_say_their_job() -> None:
    """Every module has a docstring and an ``__all__``."""
    for name in LAYERS:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        assert ast.get_docstring(tree), name
        names = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AugAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        assert "__all__" in names, name


def test_domain_code_spells_no_command_line() -> None:
    """Only the edge names the command group: hints elsewhere hold ``Command`` values."""
    for name in LAYERS:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in docstrings:
                assert "flask db" not in str(node.value), (name, node.value)


def test_noop_commands_load_only_what_they_need(tmp_path: Path) -> None:
    """A no-op upgrade and an up-to-date status load no planner, history, executor or writer."""
    project = tmp_path / "project"
    (project / "migrations").mkdir(parents=True)
    (project / "migrations" / "aaaa_first.py").write_text(
        "revision = 'aaaa'\ndown_revision = None\nbranch_labels = ('default',)\n"
        "depends_on = None\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    url = f"sqlite:///{project / 'app.db'}"
    script = textwrap.dedent(
        f"""
        import sys
        import sqlalchemy as sa
        from flask import Flask
        from flask_alembic import Alembic

        metadata = sa.MetaData()
        sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True))
        app = Flask("x", root_path={str(project)!r})
        engine = sa.create_engine({url!r})
        alembic = Alembic(app, engines=engine, metadatas=metadata)
        with app.app_context():
            if sys.argv[1] == "prepare":
                alembic.upgrade()
            else:
                assert not alembic.upgrade().applied
                assert alembic.status()[0].up_to_date
                loaded = sorted(m for m in sys.modules if m.startswith("flask_alembic."))
                print(" ".join(loaded))
        engine.dispose()
        """
    )
    for step in ("prepare", "check"):
        done = subprocess.run(
            [sys.executable, "-c", script, step], capture_output=True, text=True, check=True
        )
    loaded = set(done.stdout.split())
    for name in ("executor", "planner", "history", "writer", "environment", "_alembic_compat"):
        assert f"flask_alembic.{name}" not in loaded, name
    assert "flask_alembic.migrate" in loaded  # the probe did run the no-op path


def test_architecture_page_lists_the_imports() -> None:
    """docs/architecture.md's import column says what each module really imports."""
    import re

    page = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `(\w+)\.py` \| .* \| (.*) \|$", page, flags=re.MULTILINE)
    assert {name for name, _ in rows} == set(LAYERS)
    for name, cell in rows:
        listed = {
            word.strip()
            for word in re.sub(r"\(.*?\)", "", cell).replace(";", ",").split(",")
            if word.strip() and word.strip() != "nothing of the package"
        }
        assert listed == _local_imports(PACKAGE / f"{name}.py"), name
