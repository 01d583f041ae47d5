"""Data migrations of the shop, tested with Flask-Alembic's ``flask_alembic`` fixture."""

from __future__ import annotations

from datetime import datetime
from datetime import UTC
from decimal import Decimal

from flask_alembic.testing import Migrations


def test_order_totals_move_to_cents(flask_alembic: Migrations) -> None:
    """Revision 294f3f1230a2 turns each order's total in dollars into cents."""
    flask_alembic.migrate_to("default@c41386ca26cb")
    flask_alembic.insert("default", "customer", [{"id": 1, "email": "ada@example.com"}])
    flask_alembic.insert(
        "default",
        "orders",
        [
            {"id": 1, "customer_id": 1, "total": Decimal("12.50")},
            {"id": 2, "customer_id": 1, "total": Decimal("0.99")},
        ],
    )

    flask_alembic.migrate_to("294f3f1230a2")

    assert flask_alembic.rows("default", "orders") == [
        {"id": 1, "customer_id": 1, "total_cents": 1250},
        {"id": 2, "customer_id": 1, "total_cents": 99},
    ]


def test_order_totals_come_back_on_downgrade(flask_alembic: Migrations) -> None:
    """Downgrading 294f3f1230a2 gives each order its total in dollars again."""
    flask_alembic.migrate_to("default@294f3f1230a2")
    flask_alembic.insert("default", "customer", [{"id": 1, "email": "ada@example.com"}])
    flask_alembic.insert("default", "orders", [{"id": 1, "customer_id": 1, "total_cents": 1250}])

    flask_alembic.migrate_to("default@c41386ca26cb")

    (order,) = flask_alembic.rows("default", "orders")
    assert order["total"] == Decimal("12.50")


def test_page_view_paths_are_lowercased(flask_alembic: Migrations) -> None:
    """Revision 6730c66505ba lowercases the analytics bind's page view paths."""
    flask_alembic.migrate_to("analytics@efc54b2025f4")
    flask_alembic.insert(
        "analytics",
        "page_view",
        [{"id": 1, "path": "/Shop/Cart", "viewed_at": datetime(2026, 1, 2, tzinfo=UTC)}],
    )

    flask_alembic.migrate_to("analytics@head")

    assert [row["path"] for row in flask_alembic.rows("analytics", "page_view")] == ["/shop/cart"]
