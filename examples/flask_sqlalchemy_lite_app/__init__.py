"""A to-do app using Flask-SQLAlchemy-Lite, with its migrations managed by Flask-Alembic.

Run it from the repository root (``pip install -e . flask-sqlalchemy-lite`` first)::

    flask --app examples/flask_sqlalchemy_lite_app db revision "initial"
    flask --app examples/flask_sqlalchemy_lite_app db upgrade
    flask --app examples/flask_sqlalchemy_lite_app db current

Flask-SQLAlchemy-Lite provides the engine (``SQLALCHEMY_ENGINES``) but does not know the
models, so their metadata is passed to ``Alembic(metadatas=...)``. The database is
``instance/todo.db`` and the revisions are written to ``migrations/``, both inside this
folder.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy_lite import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from flask_alembic import Alembic

HERE = os.path.dirname(os.path.abspath(__file__))


class Base(DeclarativeBase):
    pass


class TodoList(Base):
    __tablename__ = "todo_list"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    items: Mapped[list[Item]] = relationship(back_populates="todo_list")


class Item(Base):
    __tablename__ = "item"

    id: Mapped[int] = mapped_column(primary_key=True)
    todo_list_id: Mapped[int] = mapped_column(sa.ForeignKey("todo_list.id"))
    text: Mapped[str] = mapped_column(sa.String(200))
    done: Mapped[bool] = mapped_column(default=False)
    todo_list: Mapped[TodoList] = relationship(back_populates="items")


db = SQLAlchemy()
alembic = Alembic(metadatas=Base.metadata)


def create_app() -> Flask:
    # Without instance_path, Flask would use examples/instance, shared by every example.
    app = Flask(__name__, instance_path=os.path.join(HERE, "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_ENGINES"] = {
        "default": "sqlite:///" + os.path.join(app.instance_path, "todo.db"),
    }
    db.init_app(app)
    alembic.init_app(app)
    return app
