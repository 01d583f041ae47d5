from alembic import op
import sqlalchemy as sa

revision = "r2"
down_revision = "r1"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_table("user", schema="main")
    op.create_table("user", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    pass
