"""lowercase page view paths

Revision ID: 6730c66505ba
Revises: efc54b2025f4
Create Date: 2026-12-06 15:25:02.183518
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "6730c66505ba"
down_revision: str | Sequence[str] | None = "efc54b2025f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Read by Flask-Alembic's pytest plugin: this downgrade is not tested, for this reason.
irreversible = "the paths' original case is not kept"

page_view = sa.table("page_view", sa.column("path", sa.String(500)))


def upgrade() -> None:
    op.execute(page_view.update().values(path=sa.func.lower(page_view.c.path)))


def downgrade() -> None:
    pass
