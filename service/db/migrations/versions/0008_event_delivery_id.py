"""referral_events.delivery_id: the delivery a timeline entry is about (the
webhook events of a delivery name it)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referral_events") as batch:
        batch.add_column(sa.Column("delivery_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referral_events") as batch:
        batch.drop_column("delivery_id")
