"""The delivery path's statements for PostgreSQL, at the driver level.

``steps.deliver`` runs once per delivery, so it is the hottest code in the
worker. On PostgreSQL it runs these instead of the ORM code (which stays the
path for SQLite): the same rows, the same conditional updates and the same
timeline entries, in fewer statements and round trips:

- ``claim``: one statement, committed on its own — pending/retrying → sending
  (only while the referral is delivering, only when due) plus the attempt
  row, returning what the channel needs, its documents included (fetched in
  binary format);
- ``record_outcome``: one transaction, sent as one pipeline — lock the
  referral row (so the outcomes of one referral's deliveries are recorded one
  at a time), then one statement that closes the attempt, updates the
  delivery, writes its timeline entry (and the retry's outbox message) and —
  when no other delivery of the referral is still open — finalizes the
  referral with its status event. The count runs in a statement that starts
  after the lock is held, so the last delivery to finish always sees the
  others: the counted join finalizes exactly once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from refflow.db.session import Database

CLAIM = """
WITH claimed AS (
    UPDATE deliveries AS d
       SET status = 'sending', attempts = d.attempts + 1, claimed_at = %(now)s,
           updated_at = %(now)s
      FROM referrals AS r
     WHERE d.id = %(id)s AND d.status IN ('pending', 'retrying')
       AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s)
       AND r.id = d.referral_id AND r.status = 'delivering'
 RETURNING d.id, d.referral_id, d.channel, d.document, d.target, d.attempts, d.max_attempts,
           r.payload -> 'patient' ->> 'given_name' AS given_name,
           r.payload -> 'patient' ->> 'family_name' AS family_name,
           r.payload -> 'referrer' ->> 'name' AS referrer_name
), attempt AS (
    INSERT INTO delivery_attempts (delivery_id, number, started_at, outcome)
    SELECT id, attempts, %(now)s, 'sending' FROM claimed
 RETURNING id
)
SELECT c.referral_id, c.channel, c.document, c.target, c.attempts, c.max_attempts,
       c.given_name, c.family_name, c.referrer_name, a.id, docs.names, docs.contents
  FROM claimed AS c
 CROSS JOIN attempt AS a
 CROSS JOIN LATERAL (
       SELECT array_agg(doc.name ORDER BY doc.name) AS names,
              array_agg(doc.content ORDER BY doc.name) AS contents
         FROM documents AS doc
        WHERE doc.referral_id = c.referral_id
          AND (doc.name = c.document OR doc.name IN (
               SELECT jsonb_array_elements_text(%(needs)s::jsonb -> c.channel)))
       ) AS docs
"""

STATUS = "SELECT status FROM deliveries WHERE id = %s"

LOCK_REFERRAL = "SELECT 1 FROM referrals WHERE id = %s FOR UPDATE"

# Runs after LOCK_REFERRAL, in the same transaction: its snapshot sees every
# outcome committed before the lock was granted.
OUTCOME = """
WITH others AS (
    SELECT count(*) FILTER (WHERE status NOT IN ('sent', 'failed')) AS open,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) AS n
      FROM deliveries WHERE referral_id = %(rid)s AND id <> %(id)s
), closed_attempt AS (
    UPDATE delivery_attempts SET finished_at = %(now)s, outcome = %(outcome)s, error = %(error)s
     WHERE id = %(attempt)s
), updated AS (
    UPDATE deliveries
       SET status = %(status)s, updated_at = %(now)s, last_error = %(error)s,
           sent_at = COALESCE(%(sent_at)s, sent_at), reference = COALESCE(%(reference)s, reference),
           next_attempt_at = %(next_at)s  -- only a retrying delivery has a next attempt
     WHERE id = %(id)s
), retry_message AS (
    INSERT INTO outbox (task, args, created_at, available_at, relay_attempts)
    SELECT %(task)s, %(args)s, %(now)s, %(next_at)s, 0 WHERE %(next_at)s IS NOT NULL
), finished AS (
    UPDATE referrals AS r
       SET status = CASE WHEN o.failed > 0 OR %(status)s = 'failed' THEN 'failed'
                         ELSE 'completed' END,
           updated_at = %(now)s
      FROM others AS o
     WHERE r.id = %(rid)s AND r.status = 'delivering' AND o.open = 0
       AND %(status)s IN ('sent', 'failed')
 RETURNING r.status, o.failed + CASE WHEN %(status)s = 'failed' THEN 1 ELSE 0 END AS failed,
           o.n + 1 AS total
), events AS (
    INSERT INTO referral_events (referral_id, at, actor, kind, from_status, to_status, reason)
    SELECT * FROM (
        SELECT %(rid)s, %(now)s::timestamptz, %(actor)s, %(kind)s, NULL::varchar, NULL::varchar,
               %(reason)s::text
        UNION ALL
        SELECT %(rid)s, %(now)s::timestamptz, %(actor)s, 'status', 'delivering', f.status,
               CASE WHEN f.status = 'failed'
                    THEN f.failed || ' of ' || f.total || ' deliveries failed'
                    ELSE 'all ' || f.total || ' deliveries sent' END
          FROM finished AS f
    ) AS rows
)
SELECT status FROM finished
"""


@dataclass(frozen=True)
class Claim:
    referral_id: str
    channel: str
    document: str
    target: str
    attempts: int
    max_attempts: int
    given_name: str | None
    family_name: str | None
    referrer_name: str | None
    attempt_id: int
    documents: dict[str, bytes]


def claim(db: Database, delivery_id: str, now: dt.datetime,
          needs: dict[str, list[str]]) -> tuple[Claim | None, str | None]:
    """Claim the delivery; returns ``(claim, None)`` or ``(None, its current status)``.

    The claim carries the delivery's document and those its channel asks for
    besides (``needs``: channel name → document names).
    """
    with db.autocommit() as conn:
        raw = conn.connection.driver_connection
        row = raw.execute(CLAIM, {"id": delivery_id, "now": now, "needs": Jsonb(needs)},
                          binary=True).fetchone()
        if row is None:
            status = raw.execute(STATUS, (delivery_id,)).fetchone()
            return None, status[0] if status else None
    *fields, names, contents = row
    return Claim(*fields, documents={name: bytes(content)
                                     for name, content in zip(names or (), contents or (), strict=True)}), None


def record_outcome(db: Database, *, delivery_id: str, referral_id: str, attempt_id: int,
                   outcome: str, status: str, error: str | None, reference: str | None,
                   now: dt.datetime, next_at: dt.datetime | None, retry_task: str,
                   kind: str, reason: str, actor: str) -> str | None:
    """Record one attempt's outcome in one transaction; returns the referral's new
    status when this outcome finalized it, else ``None``."""
    params = {"rid": referral_id, "id": delivery_id, "attempt": attempt_id, "now": now,
              "outcome": outcome, "status": status, "error": error,
              "sent_at": now if status == "sent" else None,
              "reference": reference if status == "sent" else None,
              "next_at": next_at, "task": retry_task, "args": Jsonb({"delivery_id": delivery_id}),
              "kind": kind, "reason": reason, "actor": actor}
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.transaction(), raw.pipeline():
            raw.execute(LOCK_REFERRAL, (referral_id,))
            cur = raw.execute(OUTCOME, params)
        row = cur.fetchone()
    return row[0] if row else None
