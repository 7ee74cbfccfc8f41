"""figures kept on each referral as it moves, for the Reports and
/api/v1/stats: when its plan was first released (released_at), when the
referring office was first told (referrer_notified_at), when it last went
into review (review_started_at) and its time in review (review_seconds, its
finished stays added up); and on each delivery the time its referral was
received (referral_created_at), so a period's deliveries are read from one
index instead of joined to the period's referrals; the period's referrals
with these figures are read from one index too

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Seconds since the epoch of a timestamp column, per database.
EPOCH = {"postgresql": "EXTRACT(EPOCH FROM {})", "sqlite": "(julianday({}) * 86400.0)"}
REFERRER_DOCUMENTS = "('fax.tiff', 'summary.pdf', 'decline.tiff', 'decline.pdf')"
RECEIVED_FIGURES = ("created_at", "status", "practice_id", "released_at", "referrer_notified_at",
                    "review_started_at", "review_seconds")


def _backfill(dialect: str) -> list[str]:
    """Each referral's figures out of its timeline and deliveries: one pass over
    the referrals that have any (a referral that was never planned, held or
    sent to its referrer keeps NULLs), then the time in review of the few
    that were held."""
    epoch = EPOCH[dialect].format
    events = ("FROM referral_events e WHERE e.referral_id = referrals.id "
              "AND e.kind = 'status'")
    told = ("FROM deliveries d WHERE d.referral_id = referrals.id AND d.status = 'sent' "
            f"AND d.target <> '' AND d.document IN {REFERRER_DOCUMENTS}")
    return [
        f"UPDATE referrals SET "
        f"released_at = (SELECT min(e.at) {events} AND e.to_status = 'planned'), "
        f"referrer_notified_at = (SELECT min(d.sent_at) {told}), "
        f"review_started_at = (SELECT max(e.at) {events} AND e.to_status = 'needs_review') "
        f"WHERE EXISTS (SELECT 1 {events} AND e.to_status IN ('planned', 'needs_review')) "
        f"OR EXISTS (SELECT 1 {told})",
        # every leaving time minus every entering time, the open stay's entry given back
        f"UPDATE referrals SET review_seconds = (SELECT "
        f"sum(CASE WHEN e.from_status = 'needs_review' THEN {epoch('e.at')} ELSE 0 END) - "
        f"sum(CASE WHEN e.to_status = 'needs_review' THEN {epoch('e.at')} ELSE 0 END) {events} "
        f"AND (e.from_status = 'needs_review' OR e.to_status = 'needs_review')) + "
        f"CASE WHEN status = 'needs_review' THEN {epoch('review_started_at')} ELSE 0 END "
        f"WHERE review_started_at IS NOT NULL "
        f"AND (status <> 'needs_review' OR (SELECT count(*) {events} "
        f"AND e.from_status = 'needs_review') > 0)",
        "UPDATE deliveries SET referral_created_at = (SELECT r.created_at FROM referrals r "
        "WHERE r.id = deliveries.referral_id)",
    ]


def upgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("released_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("referrer_notified_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("review_started_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("review_seconds", sa.Float(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("referral_created_at", sa.DateTime(timezone=True),
                                   nullable=True))
    for statement in _backfill(op.get_bind().dialect.name):
        op.execute(statement)
    op.create_index("ix_deliveries_referral_created", "deliveries",
                    ["referral_created_at", "channel", "status"])
    # the Reports read a period's referrals from the index alone: the
    # referrals' rows are scattered (each move writes a new row version), so
    # reading them costs a page each (27,700 pages for 30 days at a million)
    op.drop_index("ix_referrals_created_status_practice", table_name="referrals")
    op.create_index("ix_referrals_received_figures", "referrals", list(RECEIVED_FIGURES))


def downgrade() -> None:
    op.drop_index("ix_referrals_received_figures", table_name="referrals")
    op.create_index("ix_referrals_created_status_practice", "referrals",
                    ["created_at", "status", "practice_id"])
    # plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of the tables
    # would be refused by the rows that reference them
    op.drop_index("ix_deliveries_referral_created", table_name="deliveries")
    op.drop_column("deliveries", "referral_created_at")
    for column in ("review_seconds", "review_started_at", "referrer_notified_at",
                   "released_at"):
        op.drop_column("referrals", column)
