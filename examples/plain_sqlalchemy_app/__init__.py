"""An inventory app using plain SQLAlchemy, with its migrations managed by Flask-Alembic.

Run it from the repository root (``pip install -e .`` first)::

    flask --app examples/plain_sqlalchemy_app db revision "initial"
    flask --app examples/plain_sqlalchemy_app db upgrade
    flask --app examples/plain_sqlalchemy_app db current

No Flask database extension here: the app makes its engine with ``create_engine`` and
describes its tables with a ``MetaData``, and hands both to ``Alembic``. The database is
``instance/inventory.db`` and the revisions are written to ``migrations/``, both inside
this folder.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask

from flask_alembic import Alembic

HERE = os.path.dirname(os.path.abspath(__file__))

metadata = sa.MetaData()

product = sa.Table(
    "product",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sku", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
)

stock = sa.Table(
    "stock",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("product_id", sa.ForeignKey("product.id"), nullable=False),
    sa.Column("warehouse", sa.String(50), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False, server_default="0"),
)


def create_app() -> Flask:
    # Without instance_path, Flask would use examples/instance, shared by every example.
    app = Flask(__name__, instance_path=os.path.join(HERE, "instance"))
    os.makedirs(app.instance_path, exist_ok=True)
    engine = sa.create_engine("sqlite:///" + os.path.join(app.instance_path, "inventory.db"))
    Alembic(app, engines=engine, metadatas=metadata)

    @app.get("/products")
    def list_products() -> dict[str, list[str]]:
        with engine.connect() as connection:
            names = connection.scalars(sa.select(product.c.name).order_by(product.c.name))
            return {"products": list(names)}

    return app
