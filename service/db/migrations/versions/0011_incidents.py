"""incidents: alert conditions from start to clear (ops.alerts), at most one
open per (kind, key) through a partial unique index, with when each of the two
notifications was sent; delivery_attempts.finished_at indexed (the alerts
count each channel's attempts of the last minutes)

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)
OPEN = sa.text("cleared_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False, autoincrement=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("cleared_at", WHEN, nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("notify_claimed_at", WHEN, nullable=True),
        sa.Column("start_notified_at", WHEN, nullable=True),
        sa.Column("clear_notified_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index(op.f("ix_incidents_cleared_at"), "incidents", ["cleared_at"])
    op.create_index("uq_incidents_open", "incidents", ["kind", "key"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index(op.f("ix_delivery_attempts_finished_at"), "delivery_attempts",
                    ["finished_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_attempts_finished_at"), table_name="delivery_attempts")
    op.drop_index("uq_incidents_open", table_name="incidents")
    op.drop_index(op.f("ix_incidents_cleared_at"), table_name="incidents")
    op.drop_table("incidents")
