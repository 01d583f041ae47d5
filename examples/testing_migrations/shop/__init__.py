"""A shop with two databases whose migrations are tested with Flask-Alembic's pytest plugin.

The default database holds customers and their orders; the ``analytics`` bind holds page
views. Both histories live in ``shop/migrations/`` (the analytics one in
``shop/migrations/analytics/``). ``pytest.ini`` names the app, which turns the plugin on:
from this folder (``pip install -e ".[test]"`` at the repository root first)::

    python -m pytest

runs the migration tests the plugin generates for each bind, and
``tests/test_data_migrations.py``, which checks that the revision moving order totals
from dollars to cents keeps every order's amount.
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

from flask_alembic import Alembic

#: The project folder: the app's instance folder (its SQLite files) goes here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


class Customer(Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)


class Order(Model):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    total_cents: Mapped[int]


class PageView(Model):
    __bind_key__ = "analytics"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(sa.String(500))
    customer_id: Mapped[int | None]
    viewed_at: Mapped[datetime] = mapped_column(default=_now)


def create_app() -> Flask:
    app = Flask(__name__, instance_path=os.path.join(ROOT, "instance"))
    instance = app.instance_path
    os.makedirs(instance, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(instance, "shop.db")
    app.config["SQLALCHEMY_BINDS"] = {
        "analytics": "sqlite:///" + os.path.join(instance, "analytics.db"),
    }
    db.init_app(app)
    alembic.init_app(app)
    return app
