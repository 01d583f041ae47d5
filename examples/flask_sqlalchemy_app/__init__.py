"""A blog app using Flask-SQLAlchemy, with its migrations managed by Flask-Alembic.

Run it from the repository root (``pip install -e . flask-sqlalchemy`` first)::

    flask --app examples/flask_sqlalchemy_app db revision "initial"
    flask --app examples/flask_sqlalchemy_app db upgrade
    flask --app examples/flask_sqlalchemy_app db current

Flask-Alembic finds the engine and the models' metadata through Flask-SQLAlchemy.
The database is ``instance/blog.db`` and the revisions are written to ``migrations/``,
both inside this folder.
"""

from __future__ import annotations

import os
from datetime import datetime
from datetime import UTC
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from flask_alembic import Alembic

HERE = os.path.dirname(os.path.abspath(__file__))


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
alembic = Alembic()

# db.Model is built at run time from Base, so type checkers cannot use it as a base
# class; show them Base instead.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def _now() -> datetime:
    return datetime.now(UTC)


class User(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    created: Mapped[datetime] = mapped_column(default=_now)
    author: Mapped[User] = relationship(back_populates="posts")


def create_app() -> Flask:
    # Without instance_path, Flask would use examples/instance, shared by every example.
    app = Flask(__name__, instance_path=os.path.join(HERE, "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
        app.instance_path, "blog.db"
    )
    db.init_app(app)
    # Flask-Alembic reads Flask-SQLAlchemy's engines and metadata when first used, so the
    # two may be initialized in either order.
    alembic.init_app(app)
    return app
