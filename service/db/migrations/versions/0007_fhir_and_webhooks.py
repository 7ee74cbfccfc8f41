"""fhir_requests (conditional create of a FHIR ServiceRequest), webhook
endpoints and messages (Standard Webhooks), event_cursors (the fan-out's place
in the referral timeline)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fhir_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("practice_id", sa.String(length=36), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practices.id"],
                                name=op.f("fk_fhir_requests_practice_id_practices")),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"],
                                name=op.f("fk_fhir_requests_referral_id_referrals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_requests")),
        sa.UniqueConstraint("practice_id", "system", "value",
                            name=op.f("uq_fhir_requests_practice_id")),
    )
    op.create_index(op.f("ix_fhir_requests_referral_id"), "fhir_requests", ["referral_id"])
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("practice_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=300), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("event_types", JSON, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("disabled_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["practice_id"], ["practices.id"],
                                name=op.f("fk_webhook_endpoints_practice_id_practices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_practice_id"), "webhook_endpoints",
                    ["practice_id"])
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=36), nullable=False),
        sa.Column("event_key", sa.String(length=80), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=True),
        sa.Column("claimed_at", WHEN, nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhook_endpoints.id"],
                                name=op.f("fk_webhook_messages_endpoint_id_webhook_endpoints")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_messages")),
        sa.UniqueConstraint("endpoint_id", "event_key",
                            name=op.f("uq_webhook_messages_endpoint_id")),
    )
    op.create_index("ix_webhook_messages_status_next", "webhook_messages",
                    ["status", "next_attempt_at"])
    op.create_index(op.f("ix_webhook_messages_endpoint_id"), "webhook_messages", ["endpoint_id"])
    op.create_index(op.f("ix_webhook_messages_referral_id"), "webhook_messages", ["referral_id"])
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("last_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_cursors")),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_table("webhook_messages")
    op.drop_table("webhook_endpoints")
    op.drop_table("fhir_requests")
