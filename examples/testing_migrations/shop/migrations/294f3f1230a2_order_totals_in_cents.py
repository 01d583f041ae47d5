"""order totals in cents

Revision ID: 294f3f1230a2
Revises: c41386ca26cb
Create Date: 2026-12-06 15:23:43.343203
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "294f3f1230a2"
down_revision: str | Sequence[str] | None = "c41386ca26cb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

lint_allow = {
    "drop-column": "orders.total is copied into total_cents first",
}

# The table as this revision sees it, for the data it moves.
orders = sa.table(
    "orders",
    sa.column("total", sa.Numeric(10, 2)),
    sa.column("total_cents", sa.Integer()),
)


def upgrade() -> None:
    # batch_alter_table: SQLite cannot make a column NOT NULL in place.
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("total_cents", sa.Integer(), nullable=True))
    op.execute(orders.update().values(total_cents=sa.func.round(orders.c.total * 100)))
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("total_cents", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("total")


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("total", sa.Numeric(10, 2), nullable=True))
    op.execute(orders.update().values(total=orders.c.total_cents / 100))
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("total", existing_type=sa.Numeric(10, 2), nullable=False)
        batch.drop_column("total_cents")
