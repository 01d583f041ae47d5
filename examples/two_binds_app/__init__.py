"""A shop with two databases (Flask-SQLAlchemy binds), migrated by Flask-Alembic.

Run it from the repository root (``pip install -e . flask-sqlalchemy`` first)::

    flask --app examples/two_binds_app db revision "initial"
    flask --app examples/two_binds_app db upgrade
    flask --app examples/two_binds_app db current

The default database (``instance/shop.db``) holds customers and orders; the
``analytics`` bind (``instance/analytics.db``) holds page views. Each database has
its own history branch in the same script directory: ``db revision`` writes one
revision per bind whose models changed, the default bind's in ``migrations/`` and the
analytics bind's in ``migrations/analytics/``. Use ``--bind analytics`` to act on one
database only, for example ``flask --app examples/two_binds_app db current --bind
analytics``.
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
    # No foreign key to customer: it lives in another database.
    customer_id: Mapped[int | None]
    viewed_at: Mapped[datetime] = mapped_column(default=_now)


def create_app() -> Flask:
    # Without instance_path, Flask would use examples/instance, shared by every example.
    app = Flask(__name__, instance_path=os.path.join(HERE, "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
        app.instance_path, "shop.db"
    )
    app.config["SQLALCHEMY_BINDS"] = {
        "analytics": "sqlite:///" + os.path.join(app.instance_path, "analytics.db"),
    }
    db.init_app(app)
    alembic.init_app(app)
    return app
