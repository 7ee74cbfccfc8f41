"""the staff lists at a large network's volume: an index for the lists' order
(created_at, id); a partial index of failed deliveries; referrals.plan_sent_at
(set by a trigger as a plan document is sent to the referrer) with a partial
index of the referrals not yet sent; a partial index of flagged referrals; on PostgreSQL a trigram index for name
search (pg_trgm); and state_counts, kept by triggers as referrals, deliveries
and attempts change, so counts no longer read all history

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SEARCH_TEXT_SQL = ("lower(coalesce(payload #>> '{patient,family_name}', '') || ' ' || "
                   "coalesce(payload #>> '{patient,given_name}', '') || ' ' || "
                   "coalesce(external_id, ''))")
PLAN_UNSENT = "plan_sent_at IS NULL AND status NOT IN ('rejected', 'cancelled')"
PLAN_SENT = ("status = 'sent' AND document IN ('fax.tiff', 'summary.pdf') "
             "AND target <> ''")

# -- PostgreSQL: statement-level triggers, so a bulk change adds one row per state
PG_FUNCTIONS = f"""
CREATE FUNCTION refflow_count_referrals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'referral', '', status, count(*) FROM new_rows GROUP BY status;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'referral', '', status, -count(*) FROM old_rows GROUP BY status;
  ELSE
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'referral', '', status, sum(d) FROM (
      SELECT status, 1 AS d FROM new_rows UNION ALL SELECT status, -1 FROM old_rows) c
    GROUP BY status HAVING sum(d) <> 0;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION refflow_count_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'delivery', channel, status, count(*) FROM new_rows GROUP BY channel, status;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'delivery', channel, status, -count(*) FROM old_rows GROUP BY channel, status;
  ELSE
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'delivery', channel, status, sum(d) FROM (
      SELECT channel, status, 1 AS d FROM new_rows
      UNION ALL SELECT channel, status, -1 FROM old_rows) c
    GROUP BY channel, status HAVING sum(d) <> 0;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    UPDATE referrals r SET plan_sent_at = s.at
    FROM (SELECT referral_id, min(coalesce(sent_at, updated_at)) AS at FROM new_rows
          WHERE {PLAN_SENT} GROUP BY referral_id) s
    WHERE r.id = s.referral_id AND r.plan_sent_at IS NULL;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION refflow_count_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'attempt', d.channel, a.outcome, count(*) FROM new_rows a
    JOIN deliveries d ON d.id = a.delivery_id GROUP BY d.channel, a.outcome;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'attempt', coalesce(d.channel, ''), a.outcome, -count(*) FROM old_rows a
    LEFT JOIN deliveries d ON d.id = a.delivery_id GROUP BY d.channel, a.outcome;
  ELSE
    INSERT INTO state_counts (subject, channel, state, n)
    SELECT 'attempt', d.channel, c.outcome, sum(c.d) FROM (
      SELECT delivery_id, outcome, 1 AS d FROM new_rows
      UNION ALL SELECT delivery_id, outcome, -1 FROM old_rows) c
    JOIN deliveries d ON d.id = c.delivery_id
    GROUP BY d.channel, c.outcome HAVING sum(c.d) <> 0;
  END IF;
  RETURN NULL;
END $$;
"""
PG_TABLES = {"referrals": "refflow_count_referrals", "deliveries": "refflow_count_deliveries",
             "delivery_attempts": "refflow_count_attempts"}


def _pg_triggers() -> list[str]:
    statements = []
    for table, function in PG_TABLES.items():
        for event, tables in (("INSERT", "NEW TABLE AS new_rows"),
                              ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                              ("DELETE", "OLD TABLE AS old_rows")):
            statements.append(
                f"CREATE TRIGGER {table}_counted_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    return statements


# -- SQLite: row triggers (one writer at a time)
def _row(subject: str, channel: str, state: str, n: int) -> str:
    return (f"INSERT INTO state_counts (subject, channel, state, n) "
            f"VALUES ('{subject}', {channel}, {state}, {n});")


ATTEMPT_CHANNEL = "coalesce((SELECT channel FROM deliveries WHERE id = {0}.delivery_id), '')"
SQLITE_TRIGGERS = [
    ("referrals_counted_insert", f"AFTER INSERT ON referrals BEGIN "
     f"{_row('referral', chr(39) * 2, 'NEW.status', 1)} END"),
    ("referrals_counted_update", "AFTER UPDATE OF status ON referrals "
     "WHEN OLD.status IS NOT NEW.status BEGIN "
     f"{_row('referral', chr(39) * 2, 'OLD.status', -1)} "
     f"{_row('referral', chr(39) * 2, 'NEW.status', 1)} END"),
    ("referrals_counted_delete", f"AFTER DELETE ON referrals BEGIN "
     f"{_row('referral', chr(39) * 2, 'OLD.status', -1)} END"),
    ("deliveries_counted_insert", "AFTER INSERT ON deliveries BEGIN "
     f"{_row('delivery', 'NEW.channel', 'NEW.status', 1)} END"),
    ("deliveries_counted_update", "AFTER UPDATE OF status, channel ON deliveries "
     "WHEN OLD.status IS NOT NEW.status OR OLD.channel IS NOT NEW.channel BEGIN "
     f"{_row('delivery', 'OLD.channel', 'OLD.status', -1)} "
     f"{_row('delivery', 'NEW.channel', 'NEW.status', 1)} END"),
    ("deliveries_counted_delete", "AFTER DELETE ON deliveries BEGIN "
     f"{_row('delivery', 'OLD.channel', 'OLD.status', -1)} END"),
    ("deliveries_plan_sent", "AFTER UPDATE OF status ON deliveries "
     f"WHEN NEW.{PLAN_SENT.replace('document', 'NEW.document').replace('target', 'NEW.target')}"
     " BEGIN UPDATE referrals SET plan_sent_at = coalesce(NEW.sent_at, NEW.updated_at) "
     "WHERE id = NEW.referral_id AND plan_sent_at IS NULL; END"),
    ("deliveries_plan_sent_insert", "AFTER INSERT ON deliveries "
     f"WHEN NEW.{PLAN_SENT.replace('document', 'NEW.document').replace('target', 'NEW.target')}"
     " BEGIN UPDATE referrals SET plan_sent_at = coalesce(NEW.sent_at, NEW.updated_at) "
     "WHERE id = NEW.referral_id AND plan_sent_at IS NULL; END"),
    ("attempts_counted_insert", "AFTER INSERT ON delivery_attempts BEGIN "
     f"{_row('attempt', ATTEMPT_CHANNEL.format('NEW'), 'NEW.outcome', 1)} END"),
    ("attempts_counted_update", "AFTER UPDATE OF outcome ON delivery_attempts "
     "WHEN OLD.outcome IS NOT NEW.outcome BEGIN "
     f"{_row('attempt', ATTEMPT_CHANNEL.format('OLD'), 'OLD.outcome', -1)} "
     f"{_row('attempt', ATTEMPT_CHANNEL.format('NEW'), 'NEW.outcome', 1)} END"),
    ("attempts_counted_delete", "AFTER DELETE ON delivery_attempts BEGIN "
     f"{_row('attempt', ATTEMPT_CHANNEL.format('OLD'), 'OLD.outcome', -1)} END"),
]

# What is already there, counted once.
BACKFILL = [
    "INSERT INTO state_counts (subject, channel, state, n) "
    "SELECT 'referral', '', status, count(*) FROM referrals GROUP BY status",
    "INSERT INTO state_counts (subject, channel, state, n) "
    "SELECT 'delivery', channel, status, count(*) FROM deliveries GROUP BY channel, status",
    "INSERT INTO state_counts (subject, channel, state, n) "
    "SELECT 'attempt', d.channel, a.outcome, count(*) FROM delivery_attempts a "
    "JOIN deliveries d ON d.id = a.delivery_id GROUP BY d.channel, a.outcome",
    "UPDATE referrals SET plan_sent_at = (SELECT min(coalesce(sent_at, updated_at)) "
    f"FROM deliveries WHERE deliveries.referral_id = referrals.id AND {PLAN_SENT}) "
    f"WHERE EXISTS (SELECT 1 FROM deliveries WHERE deliveries.referral_id = referrals.id "
    f"AND {PLAN_SENT})",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "state_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  autoincrement=True),
        sa.Column("subject", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_counts")),
    )
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("plan_sent_at", sa.DateTime(timezone=True), nullable=True))
    for statement in BACKFILL:
        op.execute(statement)
    op.create_index("ix_referrals_created_id", "referrals", ["created_at", "id"])
    op.create_index("ix_referrals_plan_unsent", "referrals", ["created_at"],
                    postgresql_where=sa.text(PLAN_UNSENT), sqlite_where=sa.text(PLAN_UNSENT))
    op.create_index("ix_referrals_flagged", "referrals", ["created_at"],
                    postgresql_where=sa.text("flagged"), sqlite_where=sa.text("flagged"))
    op.create_index("ix_deliveries_failed_referral", "deliveries", ["referral_id"],
                    postgresql_where=sa.text("status = 'failed'"),
                    sqlite_where=sa.text("status = 'failed'"))
    if dialect == "postgresql":
        # in public, whatever the search path: a test's own schema is dropped with
        # everything in it, and the extension is the database's
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        op.execute(f"CREATE INDEX ix_referrals_search_trgm ON referrals "
                   f"USING gin (({SEARCH_TEXT_SQL}) public.gin_trgm_ops)")
        op.execute(PG_FUNCTIONS)
        for statement in _pg_triggers():
            op.execute(statement)
    else:
        for name, body in SQLITE_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {body}")
    # --- indexes for /api/v1/stats (stats helper) ---
    # the Reports' period: referrals received between two times, counted by
    # status and practice from the index alone
    op.create_index("ix_referrals_created_status_practice", "referrals",
                    ["created_at", "status", "practice_id"])


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    # --- indexes for /api/v1/stats (stats helper) ---
    op.drop_index("ix_referrals_created_status_practice", table_name="referrals")
    # --- end of the stats indexes ---
    if dialect == "postgresql":
        for table, function in PG_TABLES.items():
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_counted_{event} ON {table}")
            op.execute(f"DROP FUNCTION {function}()")
        op.execute("DROP INDEX ix_referrals_search_trgm")
    else:
        for name, _ in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index("ix_deliveries_failed_referral", table_name="deliveries")
    op.drop_index("ix_referrals_flagged", table_name="referrals")
    op.drop_index("ix_referrals_plan_unsent", table_name="referrals")
    op.drop_index("ix_referrals_created_id", table_name="referrals")
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("plan_sent_at")
    op.drop_table("state_counts")
