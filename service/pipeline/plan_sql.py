"""Planning's commit for PostgreSQL, at the driver level.

``steps.plan_and_render`` commits a released plan together with its documents,
deliveries, timeline entries and outbox messages. On PostgreSQL, for a
referral that has no deliveries yet (every referral the first time it is
planned), it runs this one statement instead of the ORM's unit of work (which
stays the path for SQLite and for a referral planned again): planning →
delivering only if the referral is still planning, and everything else only
when that move happened, so a duplicate or late run writes nothing. The
transaction commits without waiting for the WAL flush (like the ORM path:
planning is work that can be done again).

The status column goes planning → delivering in one UPDATE; the timeline still
gets both moves (planning → planned, planned → delivering), and the status
hooks hear both after the commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from psycopg.types.json import Jsonb

from refflow.db.session import Database


@dataclass(frozen=True)
class Committed:
    """What the statement did: ``moved`` tells whether this run committed; ``status``
    is the referral's status before it (``None``: no such referral); ``outbox_ids``
    are the messages written, for the relay."""

    moved: bool
    status: str | None
    outbox_ids: list[int]


def _values(name: str, count: int, columns: tuple[str, ...]) -> str:
    """``VALUES`` rows of named, typed placeholders: ``(%(doc0_id)s::varchar, …), …``
    (bytes are sent in binary format)."""
    rows = []
    for i in range(count):
        cells = []
        for column in columns:
            key, _, cast = column.partition(":")
            fmt = "b" if cast == "bytea" else "s"
            cells.append(f"%({name}{i}_{key}){fmt}::{cast}")
        rows.append("(" + ", ".join(cells) + ")")
    return ", ".join(rows)


DOCUMENT_COLUMNS = ("id:varchar", "name:varchar", "content_type:varchar", "sha256:varchar",
                    "size:integer", "pages:integer", "content:bytea")
DELIVERY_COLUMNS = ("id:varchar", "channel:varchar", "document:varchar", "target:varchar",
                    "status:varchar", "last_error:varchar", "max_attempts:integer")
EVENT_COLUMNS = ("n:integer", "kind:varchar", "from_status:varchar", "to_status:varchar",
                 "reason:text")
MESSAGE_COLUMNS = ("n:integer", "task:varchar", "args:jsonb")

_statements: dict[tuple[int, int, int, int], str] = {}


def _statement(documents: int, deliveries: int, events: int, messages: int) -> str:
    shape = (documents, deliveries, events, messages)
    sql = _statements.get(shape)
    if sql is not None:
        return sql
    parts = ["""
WITH moved AS (
    UPDATE referrals SET status = 'delivering', updated_at = %(now)s,
                         flagged = flagged OR %(flagged)s
     WHERE id = %(id)s AND status = 'planning'
       AND NOT EXISTS (SELECT 1 FROM deliveries WHERE referral_id = %(id)s)
 RETURNING id
), plan AS (
    INSERT INTO plans (id, referral_id, decision, engine_version, body, created_at)
    SELECT %(plan_id)s, id, %(decision)s, %(engine_version)s, %(body)s, %(now)s FROM moved
    ON CONFLICT (referral_id) DO UPDATE
       SET decision = EXCLUDED.decision, engine_version = EXCLUDED.engine_version,
           body = EXCLUDED.body
)"""]
    if documents:
        values = _values("doc", documents, DOCUMENT_COLUMNS)
        parts.append(f""", docs AS (
    INSERT INTO documents (id, referral_id, name, content_type, sha256, size, pages, content,
                           created_at)
    SELECT d.id, m.id, d.name, d.content_type, d.sha256, d.size, d.pages, d.content, %(now)s
      FROM moved AS m, (VALUES {values})
           AS d(id, name, content_type, sha256, size, pages, content)
    ON CONFLICT (referral_id, name) DO UPDATE
       SET content = EXCLUDED.content, sha256 = EXCLUDED.sha256, size = EXCLUDED.size,
           pages = EXCLUDED.pages
)""")
    if deliveries:
        values = _values("delivery", deliveries, DELIVERY_COLUMNS)
        parts.append(f""", new_deliveries AS (
    INSERT INTO deliveries (id, referral_id, channel, document, target, status, attempts,
                            max_attempts, last_error, created_at, updated_at)
    SELECT d.id, m.id, d.channel, d.document, d.target, d.status, 0, d.max_attempts,
           d.last_error, %(now)s, %(now)s
      FROM moved AS m, (VALUES {values})
           AS d(id, channel, document, target, status, last_error, max_attempts)
)""")
    values = _values("event", events, EVENT_COLUMNS)
    parts.append(f""", events AS (
    INSERT INTO referral_events (referral_id, at, actor, kind, from_status, to_status, reason)
    SELECT m.id, %(now)s, %(actor)s, e.kind, e.from_status, e.to_status, e.reason
      FROM moved AS m, (VALUES {values}) AS e(n, kind, from_status, to_status, reason)
     ORDER BY e.n
)""")
    values = _values("message", messages, MESSAGE_COLUMNS)
    parts.append(f""", messages AS (
    INSERT INTO outbox (task, args, created_at, available_at, relay_attempts)
    SELECT o.task, o.args, %(now)s, %(now)s, 0
      FROM moved AS m, (VALUES {values}) AS o(n, task, args)
     ORDER BY o.n
 RETURNING id
)
SELECT (SELECT count(*) FROM moved), r.status, ARRAY(SELECT id FROM messages ORDER BY id)
  FROM (SELECT 1) AS one LEFT JOIN referrals AS r ON r.id = %(id)s""")
    sql = _statements[shape] = "".join(parts)
    return sql


def commit_rendered(db: Database, *, referral_id: str, now: dt.datetime, actor: str,
                    plan_id: str, plan: dict, documents: list[dict], deliveries: list[dict],
                    events: list[tuple], messages: list[tuple[str, dict]],
                    flagged: bool = False) -> Committed:
    """Commit a released, rendered plan (see the module's docstring).

    ``documents``: dicts of DOCUMENT_COLUMNS; ``deliveries``: dicts of
    DELIVERY_COLUMNS; ``events``: ``(kind, from_status, to_status, reason)`` in
    timeline order; ``messages``: ``(task, args)`` for the outbox. At least one
    event and one message (the caller always has the two status moves and a
    deliver or finalize message). ``flagged`` marks the referral for staff
    (a released plan with a ``needs_review`` flag: a red flag's
    ``do_not_exercise``); a referral already flagged stays flagged.
    """
    params: dict = {"id": referral_id, "now": now, "actor": actor, "plan_id": plan_id,
                    "flagged": flagged,
                    "decision": plan["decision"],
                    "engine_version": str(plan.get("engine_version", "")), "body": Jsonb(plan)}
    for name, rows in (("doc", documents), ("delivery", deliveries)):
        for i, row in enumerate(rows):
            for key, value in row.items():
                params[f"{name}{i}_{key}"] = value
    for i, (kind, from_status, to_status, reason) in enumerate(events):
        params.update({f"event{i}_n": i, f"event{i}_kind": kind,
                       f"event{i}_from_status": from_status, f"event{i}_to_status": to_status,
                       f"event{i}_reason": reason})
    for i, (task, args) in enumerate(messages):
        params.update({f"message{i}_n": i, f"message{i}_task": task,
                       f"message{i}_args": Jsonb(args)})
    sql = _statement(len(documents), len(deliveries), len(events), len(messages))
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.transaction(), raw.pipeline():
            raw.execute("SET LOCAL synchronous_commit TO OFF")
            cur = raw.execute(sql, params)
        moved, status, outbox_ids = cur.fetchone()
    return Committed(moved=bool(moved), status=status, outbox_ids=list(outbox_ids or ()))
