"""Importing the app (as ``flask --app`` does) and every module of its package, to find
models the app never imports: their tables are missing from its metadata.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask

from .errors import FlaskAlembicError

if TYPE_CHECKING:
    from .api import AlembicAPI

__all__ = [
    "bind_tables",
    "extension_of",
    "import_failure",
    "load_app",
    "module_of",
    "registration_in_subprocess",
    "relative_path",
    "unregistered_tables",
]


def load_app(import_path: str, root: str | os.PathLike[str] | None = None) -> Flask:
    """The app that ``import_path`` names, as ``flask --app`` finds it: ``module``,
    ``module:app`` or ``module:create_app`` (a factory, called without arguments).

    ``root`` (the project's folder) is put first on ``sys.path`` for the import.
    """
    from flask.cli import ScriptInfo

    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    path = import_path.split(":", 1)[0]
    folder = root if root is not None and ("/" in path or path.endswith(".py")) else None
    try:
        with contextlib.chdir(folder or os.getcwd()):  # a path is relative to the project
            return ScriptInfo(app_import_path=import_path, set_debug_flag=False).load_app()
    except Exception as exc:
        raise FlaskAlembicError(
            f"Could not load the app {import_path!r}: {exc}",
            hint="Name a module and an app or factory in it, as 'flask --app' takes, "
            "e.g. flask_alembic_app = myapp:create_app.",
        ) from exc


def extension_of(app: Flask) -> AlembicAPI:
    """The app's Flask-Alembic extension; an app without one is refused in one line."""
    from .api import AlembicAPI

    alembic = app.extensions.get("alembic")
    if not isinstance(alembic, AlembicAPI):
        raise FlaskAlembicError(
            f"The app {app.name!r} has no Flask-Alembic extension.",
            hint="Call Alembic().init_app(app) in the app factory.",
        )
    return alembic


def module_of(import_path: str, root: str | os.PathLike[str] | None = None) -> str:
    """The module ``import_path`` names, as ``flask --app`` reads it: ``pkg.mod:app`` is
    ``pkg.mod``, a path such as ``src/pkg:create_app`` is ``pkg`` (its folder on
    ``sys.path``)."""
    from flask.cli import prepare_import

    path = import_path.split(":", 1)[0]
    if "/" not in path and os.sep not in path and not path.endswith(".py"):
        return path
    with contextlib.chdir(root or os.getcwd()):
        return prepare_import(path)


def bind_tables(alembic: AlembicAPI, app: Flask) -> dict[str, set[str]]:
    with app.app_context():
        return {b.name: {k for m in b.metadatas for k in m.tables} for b in alembic.registry.all}


def unregistered_tables(
    app: Flask, alembic: AlembicAPI, before: Mapping[str, set[str]], packages: Iterable[str]
) -> dict[str, list[str]]:
    """Per bind, the tables importing every module of ``packages`` adds to its metadata."""
    with app.app_context():
        metadatas = {b.name: b.metadatas for b in alembic.registry.all}
    modules_before = set(sys.modules)
    for package in packages:
        _import_all(package)
    new_modules = [sys.modules[n] for n in set(sys.modules) - modules_before if n in sys.modules]
    found: dict[str, list[str]] = {}
    for name, items in metadatas.items():
        for metadata in items:
            for key, table in metadata.tables.items():
                if key not in before.get(name, set()):
                    found.setdefault(name, []).append(_declared_by(table, new_modules))
    return found


def registration_in_subprocess(
    import_path: str, root: str | os.PathLike[str] | None, packages: Iterable[str]
) -> dict[str, list[str]]:
    """:func:`unregistered_tables` for the app ``import_path`` names, in a new process."""
    import json
    import subprocess

    command = [
        sys.executable,
        "-c",
        "from flask_alembic.app_imports import _registration_main; _registration_main()",
        import_path,
        str(root or ""),
        *packages,
    ]
    # The modules this process can import (pytest's pythonpath and rootdir included).
    path = [entry for entry in sys.path if entry]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ImportError(last)
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def import_failure(packages: Iterable[str], error: str) -> str:
    return (
        f"importing every module of {', '.join(packages)} (to find models the app never "
        f"imports) failed: {error}. Name the packages that hold models in "
        "flask_alembic_models."
    )


def _registration_main() -> None:
    """The registration check's own process: ``APP ROOT PACKAGE...`` in ``sys.argv``."""
    import json

    import_path, root, *packages = sys.argv[1:]
    try:
        app = load_app(import_path, root or None)
        alembic = extension_of(app)
        before = bind_tables(alembic, app)
        with contextlib.redirect_stdout(sys.stderr):
            found = unregistered_tables(app, alembic, before, packages)
    except (ImportError, FlaskAlembicError) as exc:
        sys.exit(str(exc))  # the message alone, as the last line of stderr
    print(json.dumps(found))


def _import_all(package: str) -> None:
    """Import ``package`` and every module under it (not ``__main__`` ones); a module
    that fails to import is named in the error."""

    def load(name: str) -> Any:
        try:
            return importlib.import_module(name)
        except Exception as exc:
            raise ImportError(f"module {name}: {type(exc).__name__}: {exc}") from exc

    def failed(name: str) -> None:
        load(name)  # walk_packages could not import a package: say which, and why

    paths = getattr(load(package), "__path__", None)
    if paths is None:
        return
    for info in pkgutil.walk_packages(paths, prefix=f"{package}.", onerror=failed):
        if info.name.rsplit(".", 1)[-1] != "__main__":
            load(info.name)


def _declared_by(table: sa.Table, modules: Iterable[Any]) -> str:
    """``table 'x' (model pkg.mod.Model, in pkg/mod.py)`` for a table a new module declared."""
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and getattr(value, "__table__", None) is table:
                where = getattr(module, "__file__", None) or module.__name__
                return (
                    f"table {table.name!r} of model {module.__name__}.{value.__name__} "
                    f"(in {relative_path(where)}) is declared"
                )
    return f"table {table.name!r} is declared"


def relative_path(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path
