"""indexes for the staff lists at a large network's volume (placeholder: filled in by the work on issue 20)

Revision ID: 0010
Revises: 0009
"""
from alembic import op  # noqa: F401

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- indexes for /api/v1/stats (stats helper) ---
    op.create_index("ix_referrals_created_status_practice", "referrals",
                    ["created_at", "status", "practice_id"])
    # --- end of indexes for /api/v1/stats ---


def downgrade() -> None:
    # --- indexes for /api/v1/stats (stats helper) ---
    op.drop_index("ix_referrals_created_status_practice", table_name="referrals")
    # --- end of indexes for /api/v1/stats ---
