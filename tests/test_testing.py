"""flask_alembic.testing without pytest's plugin: emptying test databases, and the ones a
killed session left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import _server_url

from flask_alembic import scratch


def _server_databases(admin: sa.URL) -> set[str]:
    engine = sa.create_engine(admin, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            if admin.get_backend_name() == "postgresql":
                rows = connection.execute(sa.text("SELECT datname FROM pg_database"))
            else:
                rows = connection.execute(
                    sa.text("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
                )
            return {name for (name,) in rows}
    finally:
        engine.dispose()


def test_reset_empties_every_kind_of_object(dialect: str) -> None:
    """After ``reset()`` a test database holds nothing: tables, a view, an index, and on
    PostgreSQL a second schema, an enum type, a sequence and a function are all gone."""
    servers = {} if dialect == "sqlite" else {"*": _server_url(dialect)}
    databases = scratch.Databases({"default": sa.make_url("sqlite:///app.db")}, servers)
    try:
        engine = databases.engines["default"]
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(9))"))
            connection.execute(sa.text("CREATE INDEX ix_t_name ON t (name)"))
            connection.execute(sa.text("CREATE VIEW v AS SELECT id FROM t"))
            connection.execute(sa.text("INSERT INTO t (id, name) VALUES (1, 'kept?')"))
            if dialect == "postgresql":
                connection.execute(sa.text("CREATE SCHEMA other"))
                connection.execute(sa.text("CREATE TABLE other.u (id INTEGER)"))
                connection.execute(sa.text("CREATE TYPE mood AS ENUM ('ok')"))
                connection.execute(sa.text("CREATE SEQUENCE counter"))
                connection.execute(
                    sa.text("CREATE FUNCTION one() RETURNS int AS 'SELECT 1' LANGUAGE sql")
                )
        databases.reset()
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            assert inspector.get_table_names() == []
            assert inspector.get_view_names() == []
            if dialect == "postgresql":
                assert not inspector.has_schema("other")
                postgresql: Any = inspector  # a PGInspector: it lists enum types
                assert postgresql.get_enums() == []
                assert inspector.get_sequence_names() == []
                assert (
                    connection.execute(
                        sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'one'")
                    ).scalar()
                    == 0
                )
            # Still usable after the reset.
            connection.execute(sa.text("CREATE TABLE again (id INTEGER)"))
    finally:
        databases.close()


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_a_killed_sessions_databases_are_dropped(server: str) -> None:
    """A database a process of this machine made and that process is gone (killed before
    it could drop it) is dropped when the next session starts on that server; one whose
    process still runs, and one made elsewhere, are kept."""
    admin = _server_url(server)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(gone.stdout)
    prefix = scratch.DATABASE_PREFIX
    left = f"{prefix}{scratch._MACHINE}_{dead_pid}_0000aaaa"
    running = f"{prefix}{scratch._MACHINE}_{os.getppid()}_0000bbbb"
    elsewhere = f"{prefix}00000000_{dead_pid}_0000cccc"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            for name in (left, running, elsewhere):
                connection.execute(sa.text(f"CREATE DATABASE {name}"))
        databases = scratch.Databases({"default": sa.make_url("sqlite:///app.db")}, {"*": admin})
        try:
            mine = databases.url("default").database
            found = _server_databases(admin)
            assert mine in found
            assert left not in found
            assert {running, elsewhere} <= found
        finally:
            databases.close()
        assert mine not in _server_databases(admin)
    finally:
        with engine.connect() as connection:
            for name in (left, running, elsewhere):
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


def test_two_spellings_of_one_database_share_a_test_database(tmp_path: Path) -> None:
    """Binds whose URLs name one database in two spellings (another driver, ``localhost``
    for ``127.0.0.1``, a relative SQLite path) get one test database, as they share one in
    the app; another database gets its own."""
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        urls = {
            "a": sa.make_url("postgresql+psycopg://app@127.0.0.1:5432/real"),
            "b": sa.make_url("postgresql+psycopg2://other@localhost/real"),
            "c": sa.make_url(f"sqlite:///{tmp_path / 'app.db'}"),
            "d": sa.make_url("sqlite:///./app.db"),
            "e": sa.make_url("postgresql+psycopg://app@127.0.0.1:5432/elsewhere"),
        }
        databases = scratch.Databases(urls, {})
    finally:
        os.chdir(here)
    try:
        assert databases.by_bind["a"] is databases.by_bind["b"]
        assert databases.by_bind["c"] is databases.by_bind["d"]
        assert len({id(databases.by_bind[name]) for name in urls}) == 3
    finally:
        databases.close()
