"""patient_links (the patient's page: a hashed token per link, expiring and
revocable) and patient_sessions (the exercise sessions a patient logged)

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "patient_links",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"],
                                name=op.f("fk_patient_links_referral_id_referrals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_patient_links_token_hash")),
    )
    op.create_index(op.f("ix_patient_links_referral_id"), "patient_links", ["referral_id"])
    op.create_table(
        "patient_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False, autoincrement=True),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("link_id", sa.String(length=36), nullable=True),
        sa.Column("logged_at", WHEN, nullable=False),
        sa.Column("done_on", sa.Date(), nullable=False),
        sa.Column("pain", sa.Integer(), nullable=True),
        sa.Column("difficulty", sa.String(length=10), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"],
                                name=op.f("fk_patient_sessions_referral_id_referrals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_sessions")),
    )
    op.create_index("ix_patient_sessions_referral_done", "patient_sessions",
                    ["referral_id", "done_on"])


def downgrade() -> None:
    op.drop_index("ix_patient_sessions_referral_done", table_name="patient_sessions")
    op.drop_table("patient_sessions")
    op.drop_index(op.f("ix_patient_links_referral_id"), table_name="patient_links")
    op.drop_table("patient_links")
