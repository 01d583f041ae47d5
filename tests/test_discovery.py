"""Finding engines and metadata: Flask-SQLAlchemy, Flask-SQLAlchemy-Lite, plain SQLAlchemy."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeURL
from conftest import models
from conftest import table_names
from flask import Flask
from flask_sqlalchemy import SQLAlchemy as FlaskSQLAlchemy
from flask_sqlalchemy_lite import SQLAlchemy as LiteSQLAlchemy
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from flask_alembic import Alembic
from flask_alembic.errors import ConfigurationError


def test_flask_sqlalchemy(tmp_path: Path, make_url: MakeURL, dialect: str) -> None:
    """Engines and metadata come from Flask-SQLAlchemy with no arguments."""
    url = make_url(dialect)
    db = FlaskSQLAlchemy()

    class Item(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)

    app = Flask("fsa", root_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    db.init_app(app)
    alembic = Alembic(app)
    with app.app_context():
        assert alembic.registry.names == ("default",)
        assert alembic.registry.default.metadatas == (db.metadata,)
        alembic.revision("init")
        alembic.upgrade()
        db.engine.dispose()
    assert "item" in table_names(url)


def test_flask_sqlalchemy_binds(tmp_path: Path) -> None:
    """Each Flask-SQLAlchemy bind key becomes a bind with its own metadata."""
    db = FlaskSQLAlchemy()

    class Item(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)

    class Event(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "audit-log"
        id: Mapped[int] = mapped_column(primary_key=True)

    app = Flask("fsa", root_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'main.db'}"
    app.config["SQLALCHEMY_BINDS"] = {"audit-log": f"sqlite:///{tmp_path / 'audit.db'}"}
    db.init_app(app)
    alembic = Alembic(app)
    with app.app_context():
        assert alembic.registry.names == ("default", "audit-log")
        assert alembic.registry["audit-log"].metadatas == (db.metadatas["audit-log"],)
        written = alembic.revision("init")
        assert len(written) == 2
        alembic.upgrade()
        for engine in db.engines.values():
            engine.dispose()
    assert table_names(f"sqlite:///{tmp_path / 'main.db'}") == {"item", "alembic_version"}
    assert table_names(f"sqlite:///{tmp_path / 'audit.db'}") == {"event", "alembic_version"}


def test_binds_only_app(tmp_path: Path) -> None:
    """An app with binds and no default database works."""
    db = FlaskSQLAlchemy()

    class Event(db.Model):  # type: ignore[name-defined,misc]
        __bind_key__ = "events"
        id: Mapped[int] = mapped_column(primary_key=True)

    app = Flask("fsa", root_path=str(tmp_path))
    app.config["SQLALCHEMY_BINDS"] = {"events": f"sqlite:///{tmp_path / 'events.db'}"}
    db.init_app(app)
    alembic = Alembic(app)
    with app.app_context():
        assert "events" in alembic.registry.names
        alembic.revision("init", bind="events")
        alembic.upgrade(bind="events")
        assert alembic.ops["events"] is not None
        engines = list(db.engines.values())
    for engine in engines:  # after the app context closed its connection
        engine.dispose()
    assert "event" in table_names(f"sqlite:///{tmp_path / 'events.db'}")


def test_flask_sqlalchemy_lite(tmp_path: Path, make_url: MakeURL, dialect: str) -> None:
    """Flask-SQLAlchemy-Lite provides the engines; metadata is passed in."""
    url = make_url(dialect)

    class Base(DeclarativeBase):
        pass

    class Thing(Base):
        __tablename__ = "thing"
        id: Mapped[int] = mapped_column(primary_key=True)

    db = LiteSQLAlchemy()
    app = Flask("lite", root_path=str(tmp_path))
    app.config["SQLALCHEMY_ENGINES"] = {"default": url}
    db.init_app(app)
    alembic = Alembic(app, metadatas=Base.metadata)
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade()
        db.engine.dispose()
    assert "thing" in table_names(url)


def test_flask_sqlalchemy_lite_needs_metadata(tmp_path: Path) -> None:
    """Without metadatas=, Flask-SQLAlchemy-Lite is a clear error naming the fix."""
    db = LiteSQLAlchemy()
    app = Flask("lite", root_path=str(tmp_path))
    app.config["SQLALCHEMY_ENGINES"] = {"default": "sqlite://"}
    db.init_app(app)
    alembic = Alembic(app)
    with app.app_context(), pytest.raises(ConfigurationError, match=r"metadatas=Model.metadata"):
        alembic.heads()


def test_plain_sqlalchemy(tmp_path: Path, make_url: MakeURL, dialect: str) -> None:
    """Plain SQLAlchemy: engines= and metadatas= as single objects."""
    url = make_url(dialect)
    engine = sa.create_engine(url)
    app = Flask("plain", root_path=str(tmp_path))
    alembic = Alembic(app, engines=engine, metadatas=models())
    with app.app_context():
        alembic.revision("init")
        alembic.upgrade()
    engine.dispose()
    assert "user" in table_names(url)


def test_metadata_shapes(tmp_path: Path) -> None:
    """metadatas= accepts a MetaData, a list, or a dict of MetaData or lists."""
    engine = sa.create_engine("sqlite://")
    one, two = models(), sa.MetaData()
    sa.Table("other", two, sa.Column("id", sa.Integer, primary_key=True))
    shapes: list[object] = [one, [one, two], {"default": one}, {None: [one, two]}]
    for number, shape in enumerate(shapes):
        app = Flask(f"shape{number}", root_path=str(tmp_path / str(number)))
        alembic = Alembic(app, engines={"default": engine}, metadatas=shape)  # type: ignore[arg-type]
        with app.app_context():
            bind = alembic.registry.default
            assert bind.metadatas[0] is one
            assert len(alembic.compare_metadata()) == len(bind.metadatas)
    engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "No database engine found"),
        ({"engines": sa.create_engine("sqlite://")}, "No metadata found"),
        ({"metadatas": models()}, "No database engine found"),
        (
            {"engines": sa.create_engine("sqlite://"), "metadatas": {"x": models()}},
            "Metadata was given for bind 'x', but there is no engine for it",
        ),
        (
            {"engines": {"default": "sqlite://"}, "metadatas": models()},
            "must be a sqlalchemy.Engine",
        ),
        (
            {"engines": sa.create_engine("sqlite://"), "metadatas": ["nope"]},
            "must hold sqlalchemy.MetaData",
        ),
    ],
)
def test_plain_errors(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    """Missing or wrong engines/metadata give errors naming what is missing."""
    app = Flask("plain", root_path=str(tmp_path))
    alembic = Alembic(app, **kwargs)  # type: ignore[arg-type]
    with app.app_context(), pytest.raises(ConfigurationError, match=message):
        alembic.heads()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "heads"])
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"ALEMBIC_BINDS": {"nope": {}}},
            r"'ALEMBIC_BINDS\['nope'\]' configures a bind that does not",
        ),
        ({"ALEMBIC_BINDS": {"default": {"colour": 1}}}, "unknown option"),
        ({"ALEMBIC_BINDS": {"default": {"include": False}}}, "No bind is managed"),
        ({"ALEMBIC_BINDS": {"default": {"include": "yes"}}}, "must be True or False"),
        ({"ALEMBIC_BINDS": ["default"]}, "must be a dict"),
    ],
)
def test_bind_config_errors(tmp_path: Path, config: dict[str, object], message: str) -> None:
    """Wrong ALEMBIC_BINDS settings are clear errors quoting the key."""
    engine = sa.create_engine("sqlite://")
    app = Flask("plain", root_path=str(tmp_path))
    app.config.update(config)
    alembic = Alembic(app, engines=engine, metadatas=models())
    with app.app_context(), pytest.raises(ConfigurationError, match=message):
        alembic.heads()
    engine.dispose()


def test_wrong_config_types(tmp_path: Path) -> None:
    """ALEMBIC and ALEMBIC_CONTEXT must be dicts: refused on first use, not by init_app."""
    for key in ("ALEMBIC", "ALEMBIC_CONTEXT"):
        app = Flask("plain", root_path=str(tmp_path))
        app.config[key] = "migrations"
        engine = sa.create_engine("sqlite://")
        alembic = Alembic(app, engines=engine, metadatas=models())
        with app.app_context(), pytest.raises(ConfigurationError, match=f"'{key}' must be a dict"):
            alembic.heads()
        engine.dispose()


def test_explicit_arguments_override_discovery(tmp_path: Path) -> None:
    """engines= given explicitly wins over the one Flask-SQLAlchemy knows."""
    db = FlaskSQLAlchemy()

    class Item(db.Model):  # type: ignore[name-defined,misc]
        id: Mapped[int] = mapped_column(primary_key=True)

    other = sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    app = Flask("fsa", root_path=str(tmp_path))
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'main.db'}"
    db.init_app(app)
    alembic = Alembic(app, engines=other)
    with app.app_context():
        assert alembic.registry.default.engine is other
        assert alembic.registry.default.metadatas == (db.metadata,)
    other.dispose()
