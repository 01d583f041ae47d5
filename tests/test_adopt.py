"""``flask db adopt``: projects of Flask-Migrate, Flask-Alembic 3 and Alembic, with data,
switched to this package (issue 14)."""

from __future__ import annotations

import hashlib
import json
import logging
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from conftest import version_rows
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_alembic import Alembic


def run(app: Flask, *args: str) -> Result:
    """``flask db ARGS`` with stdout not a terminal."""
    return app.test_cli_runner().invoke(args=["db", *args])


def define_models(db: SQLAlchemy, *, with_email: bool = False) -> None:
    columns: list[sa.Column[Any]] = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    ]
    if with_email:
        columns.append(sa.Column("email", sa.String(100)))
    db.Table("person", *columns)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (caches included) and a digest of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def rows(url: str, table: str = "person") -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _logging_kept() -> Iterator[None]:
    """Flask-Migrate's env.py reconfigures logging from alembic.ini: put it back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    disabled = {name: lg.disabled for name, lg in logging.Logger.manager.loggerDict.items()
                if isinstance(lg, logging.Logger)}
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    for name, value in disabled.items():
        logger = logging.Logger.manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger):
            logger.disabled = value


def flask_migrate_project(
    project: Path, url: str, monkeypatch: pytest.MonkeyPatch, **migrate_options: Any
) -> str:
    """A project made by Flask-Migrate itself (init, migrate, upgrade) holding two rows;
    returns its revision id."""
    from flask_migrate import init
    from flask_migrate import Migrate
    from flask_migrate import migrate
    from flask_migrate import upgrade

    monkeypatch.chdir(project)
    app = Flask("oldapp", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db = SQLAlchemy()
    define_models(db)
    db.init_app(app)
    Migrate(app, db, **migrate_options)
    with app.app_context(), warnings.catch_warnings():
        # Flask-Migrate's env.py calls Flask-SQLAlchemy's deprecated get_engine().
        warnings.simplefilter("ignore", DeprecationWarning)
        init()
        migrate(message="people")
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO person (id, name) VALUES (1, 'ada'), (2, 'bob')"))
        db.engine.dispose()
    (revision,) = version_rows(url)
    return revision


def new_app(
    project: Path,
    url: str,
    *,
    keep_migrate: bool = False,
    with_email: bool = False,
    settings: dict[str, Any] | None = None,
) -> Flask:
    """The same project switched to this package (Flask-Migrate registered or not)."""
    app = Flask("newapp", root_path=str(project))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.update(settings or {})
    db = SQLAlchemy()
    define_models(db, with_email=with_email)
    db.init_app(app)
    if keep_migrate:
        from flask_migrate import Migrate

        Migrate(app, db, command="old-db")
    Alembic(app)
    return app


def adopt_json(app: Flask, *args: str) -> dict[str, Any]:
    result = run(app, "adopt", "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def dispose(app: Flask) -> None:
    with app.app_context():
        for engine in app.extensions["sqlalchemy"].engines.values():
            engine.dispose()


def test_flask_migrate_single(
    project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Flask-Migrate project with data adopts with no file or row changed, and a new
    revision then applies on top of the old history."""
    old_rev = flask_migrate_project(project, database_url, monkeypatch)
    before = snapshot(project / "migrations")
    app = new_app(project, database_url, keep_migrate=True)

    plan = adopt_json(app, "--plan")
    assert plan["planned"] is True
    assert plan["after"] is None
    assert snapshot(project / "migrations") == before

    data = adopt_json(app)
    assert data["layout"]["kind"] == "flask-migrate"
    assert data["layout"]["revisions"] == str(project / "migrations" / "versions")
    assert data["settings"] == {
        "ALEMBIC": {"script_location": "migrations"},
        "ALEMBIC_CONTEXT": {
            "compare_server_default": True,
            "compare_type": True,
            "render_as_batch": True,
        },
        "ALEMBIC_BINDS": {"default": {"version_location": "versions"}},
    }
    assert data["before"] == [
        {"bind": "default", "version_table": "alembic_version", "current": [old_rev]}
    ]
    (after,) = data["after"]
    assert (after["bind"], after["state"], after["current"]) == ("default", "up to date", [old_rev])
    assert data["configured"] is False
    assert version_rows(database_url) == {old_rev}
    assert rows(database_url) == [(1, "ada"), (2, "bob")]
    dispose(app)

    # The settings in place: status is up to date, a new revision applies on top.
    app = new_app(project, database_url, settings=data["settings"], with_email=True)
    assert adopt_json(app)["configured"] is True
    result = run(app, "status", "--check")
    assert result.exit_code == 0, result.output
    result = run(app, "revision", "email")
    assert result.exit_code == 0, result.output
    new_file = Path(result.stdout.strip())
    assert new_file.parent == project / "migrations" / "versions"
    result = run(app, "upgrade")
    assert result.exit_code == 0, result.output
    (new_rev,) = version_rows(database_url)
    assert new_rev != old_rev
    assert rows(database_url) == [(1, "ada", None), (2, "bob", None)]
    dispose(app)
    # The old files are untouched.
    after_files = snapshot(project / "migrations")
    assert {k: v for k, v in after_files.items() if "__pycache__" not in k and k != f"versions/{new_file.name}"} == {
        k: v for k, v in before.items() if "__pycache__" not in k
    }
