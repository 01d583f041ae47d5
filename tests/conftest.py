"""Fixtures: throwaway databases on SQLite, PostgreSQL and MariaDB, and small apps.

PostgreSQL and MariaDB tests read their server URLs from environment variables:

- ``FLASK_ALEMBIC_TEST_POSTGRESQL_URL``, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``
- ``FLASK_ALEMBIC_TEST_MYSQL_URL``, e.g. ``mysql+pymysql://root@127.0.0.1:3306/test``

Unset, those tests are skipped; with ``CI`` set, an unset or unreachable server fails them.
Every test gets databases of its own, created before and dropped after it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from flask_alembic import Alembic

URL_ENV = {
    "postgresql": "FLASK_ALEMBIC_TEST_POSTGRESQL_URL",
    "mysql": "FLASK_ALEMBIC_TEST_MYSQL_URL",
}
DIALECTS = ["sqlite", "postgresql", "mysql"]

#: A Flask app module for tests that run the real ``flask`` command in a subprocess: its
#: ``create_app()`` makes the binds ``default`` and ``other`` from the ``URL_DEFAULT`` and
#: ``URL_OTHER`` environment variables (those set), each with one table ``m``.
URL_APP = """
import os
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic

def create_app():
    app = Flask(__name__)
    engines = {
        name: sa.create_engine(os.environ["URL_" + name.upper()])
        for name in ("default", "other")
        if "URL_" + name.upper() in os.environ
    }
    metadata = sa.MetaData()
    sa.Table("m", metadata, sa.Column("id", sa.Integer, primary_key=True))
    Alembic(app, engines=engines, metadatas=dict.fromkeys(engines, metadata))
    return app
"""


MakeURL = Callable[..., str]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Leave nothing in the temporary folder: pytest keeps its emptied ``pytest-of-USER``.

    A passing session's folder is gone already (``tmp_path_retention_policy = "failed"``);
    the parent stays when another session still uses it, as ``rmdir`` then refuses.
    """
    import contextlib
    import getpass
    import tempfile

    root = os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()
    with contextlib.suppress(OSError, KeyError):  # not empty, never made, or no user name
        os.rmdir(Path(root) / f"pytest-of-{getpass.getuser()}")


def _server_url(dialect: str) -> sa.URL:
    """The admin URL of a server, or skip (fail in CI) when it is not available."""
    name = URL_ENV[dialect]
    raw = os.environ.get(name)
    in_ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    if not raw:
        if in_ci:
            pytest.fail(f"{name} is not set; CI must run the {dialect} tests.")
        pytest.skip(f"set {name} to run the {dialect} tests")
    url = sa.make_url(raw)
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if in_ci:
            pytest.fail(f"{dialect} server at {url!r} is unreachable: {exc}")
        pytest.skip(f"{dialect} server at {url!r} is unreachable")
    finally:
        engine.dispose()
    return url


class Databases:
    """Creates databases for one test and drops them afterwards."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.created: list[tuple[sa.URL, str]] = []

    def __call__(self, dialect: str = "sqlite", *, password: str | None = None) -> str:
        name = f"fa_{uuid.uuid4().hex[:12]}"
        if dialect == "sqlite":
            return f"sqlite:///{self.tmp_path / (name + '.db')}"
        admin = _server_url(dialect)
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
                if password is not None:
                    self._create_user(conn, dialect, name, password)
        finally:
            engine.dispose()
        self.created.append((admin, name))
        url = admin.set(database=name)
        if password is not None:
            url = url.set(username=name, password=password)
        return url.render_as_string(hide_password=False)

    @staticmethod
    def _create_user(conn: sa.Connection, dialect: str, name: str, password: str) -> None:
        quoted = password.replace("'", "''")
        if dialect == "postgresql":
            conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{quoted}'"))
            conn.execute(sa.text(f"ALTER DATABASE {name} OWNER TO {name}"))
        else:
            conn.execute(sa.text(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{quoted}'"))
            conn.execute(sa.text(f"CREATE USER '{name}'@'localhost' IDENTIFIED BY '{quoted}'"))
            conn.execute(sa.text(f"GRANT ALL ON {name}.* TO '{name}'@'%'"))
            conn.execute(sa.text(f"GRANT ALL ON {name}.* TO '{name}'@'localhost'"))

    def drop_all(self) -> None:
        for admin, name in self.created:
            engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
            try:
                with engine.connect() as conn:
                    if admin.get_backend_name() == "postgresql":
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
                    else:
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
                        for host in ("%", "localhost"):
                            conn.execute(sa.text(f"DROP USER IF EXISTS '{name}'@'{host}'"))
            finally:
                engine.dispose()


@pytest.fixture
def make_url(tmp_path: Path) -> Iterator[MakeURL]:
    """A factory for fresh databases: ``make_url("postgresql")`` -> URL string."""
    databases = Databases(tmp_path)
    yield databases
    databases.drop_all()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on SQLite, PostgreSQL and MariaDB."""
    value: str = request.param
    if value != "sqlite":
        _server_url(value)
    return value


@pytest.fixture
def database_url(make_url: MakeURL, dialect: str) -> str:
    """A fresh database on each dialect."""
    return make_url(dialect)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty folder to be the app's root (its migrations go here)."""
    root = tmp_path / "project"
    root.mkdir()
    return root


def models(metadata: sa.MetaData | None = None, *, with_name: bool = True) -> sa.MetaData:
    """A tiny schema: one ``user`` table."""
    metadata = metadata if metadata is not None else sa.MetaData()
    columns: list[sa.Column[object]] = [sa.Column("id", sa.Integer, primary_key=True)]
    if with_name:
        columns.append(sa.Column("name", sa.String(50)))
    sa.Table("user", metadata, *columns)
    return metadata


MakeApp = Callable[..., tuple[Flask, Alembic]]


@pytest.fixture
def make_app(project: Path) -> Iterator[MakeApp]:
    """Build a plain-SQLAlchemy app: ``make_app({"default": url}, {"default": metadata})``."""
    engines: list[sa.Engine] = []

    def factory(
        urls: dict[str, str] | str,
        metadatas: dict[str, sa.MetaData] | sa.MetaData | None = None,
        **config: object,
    ) -> tuple[Flask, Alembic]:
        if isinstance(urls, str):
            urls = {"default": urls}
        bind_engines = {name: sa.create_engine(url) for name, url in urls.items()}
        engines.extend(bind_engines.values())
        if metadatas is None:
            metadatas = {name: models() for name in urls}
        app = Flask("testapp", root_path=str(project))
        app.config.update(config)
        alembic = Alembic(app, engines=bind_engines, metadatas=metadatas)
        return app, alembic

    yield factory
    for engine in engines:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def version_rows(url: str, table: str = "alembic_version") -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return set()
            return {row[0] for row in conn.execute(sa.text(f"SELECT version_num FROM {table}"))}
    finally:
        engine.dispose()


#: The pytest plugin's generated tests, in the order it collects them (the spec the tests of
#: tests/test_pytest_plugin.py and tests/test_examples.py hold it to).
CHECKS = (
    "test_single_head",
    "test_upgrade",
    "test_models_match",
    "test_up_down",
    "test_downgrade_leaves_no_trace",
    "test_models_registered",
)
