"""deliveries.check_at and .detail (a fax job the fax server holds, and what it
confirmed); received_faxes (the fax inbox)

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("check_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("detail", JSON, nullable=True))
    op.create_table(
        "received_faxes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=True),
        sa.Column("from_number", sa.String(length=32), nullable=True),
        sa.Column("to_number", sa.String(length=32), nullable=True),
        sa.Column("practice_id", sa.String(length=36), nullable=True),
        sa.Column("content_type", sa.String(length=60), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reading", JSON, nullable=True),
        sa.Column("referral_id", sa.String(length=36), nullable=True),
        sa.Column("archived_reason", sa.String(length=500), nullable=True),
        sa.Column("handled_by", sa.String(length=100), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practices.id"],
                                name=op.f("fk_received_faxes_practice_id_practices")),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"],
                                name=op.f("fk_received_faxes_referral_id_referrals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_received_faxes")),
        sa.UniqueConstraint("sha256", name=op.f("uq_received_faxes_sha256")),
    )
    op.create_index("ix_received_faxes_status_received", "received_faxes",
                    ["status", "received_at"])
    op.create_index(op.f("ix_received_faxes_practice_id"), "received_faxes", ["practice_id"])
    op.create_index(op.f("ix_received_faxes_referral_id"), "received_faxes", ["referral_id"])


def downgrade() -> None:
    op.drop_table("received_faxes")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("detail")
        batch.drop_column("check_at")
