"""Accepting a referral: one transaction writes the referral, its first
timeline event, the outbox message that starts the pipeline, the idempotency
record and the audit entry. Only after it commits does the API answer 202.

The rows are written with prebuilt Core INSERTs (ids set client-side, no ORM
unit of work); on PostgreSQL they go to the server as one statement (data-
modifying CTEs), so accepting a referral is one round trip plus the commit.
A referral sent with an API key that no rule rejects goes further
(``accept_with_api_key``): the key check joins the same statement, which runs
as its own transaction, so the whole intake is one round trip.
The unique constraint on (practice, Idempotency-Key) still decides between
concurrent requests: the losing statement fails as a whole, its transaction
rolls back, and the request answers with the winner's stored response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import bindparam, insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from refflow.accounts.practices import hash_key
from refflow.accounts.principal import LAST_USED_RESOLUTION
from refflow.db.models import (
    AuditEntry,
    IdempotencyKey,
    OutboxMessage,
    Referral,
    ReferralEvent,
    new_id,
    utcnow,
)
from refflow.db.session import Database
from refflow.intake import idempotency
from refflow.intake.schemas import Referral as ReferralIn
from refflow.ops.errors import ApiError
from refflow.pipeline import outbox
from refflow.referrals import states

PLAN_TASK = "refflow.build_plan"


@dataclass(frozen=True)
class Submitter:
    practice_id: str
    actor: str  # "apikey:<prefix>" or "user:<id>"
    ip: str | None = None
    request_id: str | None = None


# problems(referral) -> [{"code", "severity": reject|needs_review|caution, "message", ...}]
ProblemFinder = Callable[[ReferralIn], list[dict]]


def referral_links(referral_id: str) -> dict:
    base = f"/api/v1/referrals/{referral_id}"
    return {"self": base, "plan": f"{base}/plan", "documents": f"{base}/documents",
            "cancel": f"{base}/cancel"}


def accept(db: Database, submitter: Submitter, data: dict, referral: ReferralIn, *,
           idempotency_key: str | None, clinic_timezone: str,
           find_problems: ProblemFinder | None = None,
           retention: dt.timedelta = dt.timedelta(hours=48)) -> tuple[int, dict]:
    """Store a validated referral in a transaction of its own; returns (HTTP status, body)."""
    try:
        with db.session() as session:
            return accept_in(session, submitter, data, referral,
                             idempotency_key=idempotency_key, clinic_timezone=clinic_timezone,
                             find_problems=find_problems, retention=retention)
    except IntegrityError:
        if not idempotency_key:
            raise
        return replay_after_conflict(db, submitter, data, idempotency_key)


def accept_in(session: Session, submitter: Submitter, data: dict, referral: ReferralIn, *,
              idempotency_key: str | None, clinic_timezone: str,
              find_problems: ProblemFinder | None = None,
              retention: dt.timedelta = dt.timedelta(hours=48)) -> tuple[int, dict]:
    """Store a validated referral in the caller's transaction (which commits it).

    With an Idempotency-Key, a concurrent request that committed the same key
    first makes this raise ``IntegrityError``: roll back, then answer with
    ``replay_after_conflict``.
    """
    print_ = idempotency.fingerprint(data) if idempotency_key else ""
    if idempotency_key:
        idempotency.claim(session, submitter.practice_id, idempotency_key)  # 409 while in flight
        stored = idempotency.replay(session, submitter.practice_id, idempotency_key, print_)
        if stored:
            return stored
    problems = find_problems(referral) if find_problems else []
    return _store(session, submitter, data, referral, print_, problems, idempotency_key,
                  clinic_timezone, retention)


def replay_after_conflict(db: Database, submitter: Submitter, data: dict,
                          idempotency_key: str) -> tuple[int, dict]:
    """Another request with the same key committed first: answer as it did."""
    print_ = idempotency.fingerprint(data)
    with db.session() as session:
        stored = idempotency.replay(session, submitter.practice_id, idempotency_key, print_)
    if stored is None:
        raise ApiError(409, "a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_flight") from None
    return stored


# -- the INSERTs ----------------------------------------------------------------

def _inserts(with_outbox: bool, with_key: bool) -> list:
    r, e, a = Referral.__table__, ReferralEvent.__table__, AuditEntry.__table__
    o, k = OutboxMessage.__table__, IdempotencyKey.__table__
    rid, now = bindparam("rid", type_=r.c.id.type), bindparam("now", type_=r.c.created_at.type)
    actor = bindparam("actor", type_=e.c.actor.type)
    stmts = [
        insert(r).values(id=rid, practice_id=bindparam("practice_id"), status=states.RECEIVED,
                         external_id=bindparam("external_id"), urgency=bindparam("urgency"),
                         payload=bindparam("payload"), payload_sha256=bindparam("payload_sha256"),
                         received_on=bindparam("received_on"),
                         intake_problems=bindparam("intake_problems"),
                         flagged=bindparam("flagged"), request_id=bindparam("request_id"),
                         created_at=now, updated_at=now),
        insert(e).values(referral_id=rid, at=now, actor=actor, kind="status", from_status=None,
                         to_status=states.RECEIVED, reason="referral received"),
        insert(a).values(at=now, actor=actor, action="referral.create", referral_id=rid,
                         ip=bindparam("ip"), detail=None),
    ]
    if with_outbox:
        stmts.append(insert(o).values(task=PLAN_TASK, args=bindparam("outbox_args"),
                                      created_at=now, available_at=now, sent_at=None,
                                      relay_attempts=0))
    if with_key:
        stmts.append(insert(k).values(id=bindparam("key_id"), practice_id=bindparam("practice_id"),
                                      key=bindparam("key"), fingerprint=bindparam("fingerprint"),
                                      referral_id=rid, response_status=202,
                                      response_body=bindparam("response_body"), created_at=now,
                                      expires_at=bindparam("expires_at")))
    return stmts


@cache
def _statements(dialect: str, with_outbox: bool, with_key: bool) -> tuple:
    """The INSERTs for one referral: one statement on PostgreSQL, else one per table."""
    stmts = _inserts(with_outbox, with_key)
    if dialect != "postgresql":
        return tuple(stmts)
    *first, last = stmts
    for i, stmt in enumerate(first):
        last = last.add_cte(stmt.cte(f"ins_{i}"))
    return (last,)


def _answer_and_params(submitter: Submitter, referral: ReferralIn, print_: str,
                       problems: list[dict], idempotency_key: str | None, clinic_timezone: str,
                       retention: dt.timedelta, status: str,
                       json_text: bool = False) -> tuple[dict, dict]:
    """The 202 body and the parameters of the INSERTs. With ``json_text`` the
    JSON columns' values are JSON text (the payload straight from the model)."""
    now = utcnow()
    rid = new_id()
    body = {
        "id": rid,
        "status": status,
        "external_id": referral.external_id,
        "created_at": now.isoformat(),
        "links": referral_links(rid),
    }
    if problems:
        body["problems"] = [
            {k: p[k] for k in ("code", "severity", "message", "field", "source") if k in p}
            for p in problems
        ]
    # the stored payload: the validated referral, normalised (E.164 numbers, ...)
    payload_text = referral.model_dump_json(exclude_none=True)
    params = {
        "rid": rid, "now": now, "practice_id": submitter.practice_id,
        "external_id": referral.external_id, "urgency": referral.urgency,
        "payload": payload_text if json_text
        else referral.model_dump(mode="json", exclude_none=True),
        "payload_sha256": hashlib.sha256(payload_text.encode()).hexdigest(),
        "received_on": now.astimezone(_zone(clinic_timezone)).date(),
        "intake_problems": problems,
        "flagged": any(p.get("severity") == "needs_review" for p in problems),
        "request_id": submitter.request_id, "actor": submitter.actor, "ip": submitter.ip,
        # The request id rides with the message, so the worker's logs carry it.
        "outbox_args": outbox.message_args(referral_id=rid, request_id=submitter.request_id),
    }
    if json_text:
        params["intake_problems"] = json.dumps(problems) if problems else "[]"
        params["outbox_args"] = json.dumps(params["outbox_args"])
    if idempotency_key:
        params.update(key_id=new_id(), key=idempotency_key, fingerprint=print_,
                      response_body=body, expires_at=now + retention)
    return body, params


def _store(session: Session, submitter: Submitter, data: dict, referral: ReferralIn, print_: str,
           problems: list[dict], idempotency_key: str | None, clinic_timezone: str,
           retention: dt.timedelta) -> tuple[int, dict]:
    rejects = [p for p in problems if p.get("severity") == "reject"]
    body, params = _answer_and_params(submitter, referral, print_, problems,
                                      idempotency_key, clinic_timezone, retention,
                                      states.REJECTED if rejects else states.RECEIVED)
    rid = params["rid"]
    conn = session.connection()
    for stmt in _statements(conn.dialect.name, not rejects, bool(idempotency_key)):
        conn.execute(stmt, params)  # a unique-key conflict surfaces here, in this transaction
    plugin_failures = [p for p in problems if p.get("code") == "plugin_failed"]
    for problem in plugin_failures:  # names the plugin and error class only
        states.record_event(session, rid, "plugin_failed", actor="intake-rules",
                            reason=problem["message"])
    if rejects:
        row = session.get(Referral, rid)
        codes = ", ".join(sorted({p["code"] for p in rejects}))
        states.transition(session, row, states.REJECTED, actor="intake-rules",
                          reason=f"failed intake rules: {codes}")
    if plugin_failures or rejects:
        session.flush()
    return 202, body


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# -- one statement, one round trip: API key check and INSERTs together --------

@dataclass(frozen=True)
class KeyedAcceptance:
    status: int
    body: dict
    practice_id: str
    actor: str
    encoded: str  # ``body`` as JSON text


def can_accept_in_one_statement(db: Database, problems: list[dict]) -> bool:
    """PostgreSQL, and no intake rule rejects the referral or failed (those
    paths record timeline entries through the ORM)."""
    return db.engine.dialect.name == "postgresql" and not any(
        p.get("severity") == "reject" or p.get("code") == "plugin_failed" for p in problems)


def accept_with_api_key(db: Database, token: str, data: dict | None, referral: ReferralIn, *,
                        problems: list[dict], idempotency_key: str | None, clinic_timezone: str,
                        ip: str | None, request_id: str | None,
                        retention: dt.timedelta = dt.timedelta(hours=48)) -> KeyedAcceptance | None:
    """Accept a referral sent with API key ``token`` in one statement that is
    its own transaction: it finds the live (unrevoked) key, refreshes its
    last-used time, and inserts the referral, its timeline entry, the audit
    entry, the outbox message and the Idempotency-Key row only if the key is
    live. It returns after the server committed it (synchronous commit), or
    None when the key is unknown or revoked (nothing was written).

    With an Idempotency-Key that a committed request already used, the unique
    constraint fails the whole statement: ``IntegrityError``, nothing written;
    answer with ``replay_after_conflict``. Only for referrals no rule rejected
    (``can_accept_in_one_statement``).

    ``data`` (the decoded body) is only read with an Idempotency-Key: its
    fingerprint is stored with the key.

    The 202 body is returned already encoded (``KeyedAcceptance.encoded``):
    the same bytes are the HTTP answer and, with an Idempotency-Key, the
    stored response.
    """
    statement = keyed_statement(db, token, data, referral, problems=problems,
                                idempotency_key=idempotency_key,
                                clinic_timezone=clinic_timezone, ip=ip, request_id=request_id,
                                retention=retention)
    row = _execute_one_autocommit(db, statement.sql, statement.params)
    if row is None:
        return None
    practice_id, actor = row
    return KeyedAcceptance(202, statement.body, practice_id, actor, statement.encoded)


@dataclass(frozen=True)
class KeyedStatement:
    """The accepting statement of ``accept_with_api_key``, ready for the
    driver: its SQL text and parameters, and the 202 body it answers with
    (as a dict and as JSON text)."""

    sql: str
    params: dict
    body: dict
    encoded: str


def keyed_statement(db: Database, token: str, data: dict | None, referral: ReferralIn, *,
                    problems: list[dict], idempotency_key: str | None, clinic_timezone: str,
                    ip: str | None, request_id: str | None,
                    retention: dt.timedelta = dt.timedelta(hours=48)) -> KeyedStatement:
    """The statement ``accept_with_api_key`` runs for this referral (not run)."""
    print_ = idempotency.fingerprint(data) if idempotency_key else ""
    submitter = Submitter(practice_id="", actor="", ip=ip, request_id=request_id)
    body, params = _answer_and_params(submitter, referral, print_, problems,
                                      idempotency_key, clinic_timezone, retention,
                                      states.RECEIVED, json_text=True)
    # Bind names must not be columns of api_keys: SQLAlchemy would add those to
    # the UPDATE's SET clause.
    del params["practice_id"], params["actor"]
    params["token_hash"] = hash_key(token)
    params["stale_before"] = params["now"] - dt.timedelta(seconds=LAST_USED_RESOLUTION)
    # JSONB values go to the driver as JSON text, each encoded once: the
    # answer serves as the response and the Idempotency-Key row.
    encoded = json.dumps(body, separators=(",", ":"))
    if idempotency_key:
        params["response_body"] = encoded
    sql, constants, json_params = _keyed_sql(bool(idempotency_key), db.engine.dialect)
    params.update(constants)
    for name in json_params:
        if name in params:
            params[name] = _jsonb_text(params[name])
    return KeyedStatement(sql, params, body, encoded)


def _jsonb_text(text: str) -> Jsonb:
    return Jsonb(text, _as_is)


def _as_is(text: str) -> str:
    return text


def _execute_one_autocommit(db: Database, sql: str, params: dict):
    """Run one driver-level statement as its own transaction (autocommit: no
    BEGIN or COMMIT round trips; the server commits before it answers) on the
    connection this thread keeps (``Database.thread_connections``), and
    return its first row.

    Driver errors are raised as SQLAlchemy's (``IntegrityError`` for a
    duplicate Idempotency-Key, a ``DBAPIError`` with ``connection_invalidated``
    for a lost connection), as ``Connection.execute`` would; a lost connection
    is dropped, and the thread's next statement connects again.
    """
    connections = db.thread_connections
    dialect = db.engine.dialect
    try:
        conn, cursor = connections.get()
    except psycopg.Error as error:  # the database refused a new connection
        raise DBAPIError.instance(None, None, error, psycopg.Error, hide_parameters=True,
                                  dialect=dialect,
                                  connection_invalidated=dialect.is_disconnect(error, None, None)
                                  ) from error
    try:
        cursor.execute(sql, params)
        return cursor.fetchone()
    except psycopg.Error as error:
        lost = dialect.is_disconnect(error, conn, None)
        if lost:
            connections.discard()
        raise DBAPIError.instance(sql, None, error, psycopg.Error, hide_parameters=True,
                                  dialect=dialect, connection_invalidated=lost) from error
    finally:
        connections.release()


@cache
def _keyed_sql(with_key: bool, dialect) -> tuple[str, dict, frozenset]:
    """The statement compiled once to the driver's SQL: its text, the values
    of its constants, and the parameters that go to JSONB columns (adapted here,
    as SQLAlchemy's bind processing would)."""
    from sqlalchemy import JSON

    compiled = _keyed_statement(with_key).compile(dialect=dialect)
    constants = {name: bind.value for bind, name in compiled.bind_names.items()
                 if bind.value is not None}
    json_params = frozenset(name for bind, name in compiled.bind_names.items()
                            if isinstance(bind.type, JSON) and bind.value is None)
    return str(compiled), constants, json_params


@cache
def _keyed_statement(with_key: bool):
    from sqlalchemy import String, cast, literal_column, null, or_, select, update

    from refflow.db.models import ApiKey

    K = ApiKey.__table__
    r, e, a = Referral.__table__, ReferralEvent.__table__, AuditEntry.__table__
    o, k = OutboxMessage.__table__, IdempotencyKey.__table__
    live = [K.c.key_hash == bindparam("token_hash", type_=K.c.key_hash.type),
            K.c.revoked_at.is_(None)]
    if with_key:
        # the Idempotency-Key's claim (idempotency.claim_sql): while another
        # request with it is in flight the key matches nothing, nothing is
        # written, and the Flask view answers (409, or the stored answer)
        live.append(idempotency.claim_sql(K.c.practice_id, bindparam("key", type_=String)))
    key = select(K.c.id, K.c.practice_id,
                 (literal_column("'apikey:'", String) + K.c.prefix).label("actor")).where(
        *live).cte("live_key")
    now = bindparam("now", type_=r.c.created_at.type)
    touch = update(K).where(
        K.c.id.in_(select(key.c.id)),
        or_(K.c.last_used_at.is_(None),
            K.c.last_used_at < bindparam("stale_before", type_=K.c.last_used_at.type)),
    ).values(last_used_at=now)
    rid = bindparam("rid", type_=r.c.id.type)

    def p(col, name=None):
        return bindparam(name or col.name, type_=col.type)

    def const(col, value):
        # constants are written into the SQL (no parameters to send per request)
        if value is None:
            return cast(null(), col.type)
        if isinstance(value, int):
            return cast(literal_column(str(int(value))), col.type)
        return cast(literal_column("'" + value.replace("'", "''") + "'"), col.type)

    def insert_from_key(table, values: dict):
        return insert(table).from_select(list(values), select(*values.values()).select_from(key))

    stmts = [
        touch,
        insert_from_key(r, {
            "id": rid, "practice_id": key.c.practice_id, "status": const(r.c.status, states.RECEIVED),
            "external_id": p(r.c.external_id), "urgency": p(r.c.urgency), "payload": p(r.c.payload),
            "payload_sha256": p(r.c.payload_sha256), "received_on": p(r.c.received_on),
            "intake_problems": p(r.c.intake_problems), "flagged": p(r.c.flagged),
            "request_id": p(r.c.request_id), "created_at": now, "updated_at": now}),
        insert_from_key(e, {
            "referral_id": rid, "at": now, "actor": key.c.actor, "kind": const(e.c.kind, "status"),
            "from_status": const(e.c.from_status, None),
            "to_status": const(e.c.to_status, states.RECEIVED),
            "reason": const(e.c.reason, "referral received")}),
        insert_from_key(a, {
            "at": now, "actor": key.c.actor, "action": const(a.c.action, "referral.create"),
            "referral_id": rid, "ip": p(a.c.ip), "detail": const(a.c.detail, None)}),
        insert_from_key(o, {
            "task": const(o.c.task, PLAN_TASK), "args": p(o.c.args, "outbox_args"),
            "created_at": now, "available_at": now, "sent_at": const(o.c.sent_at, None),
            "relay_attempts": const(o.c.relay_attempts, 0)}),
    ]
    if with_key:
        stmts.append(insert_from_key(k, {
            "id": p(k.c.id, "key_id"), "practice_id": key.c.practice_id, "key": p(k.c.key),
            "fingerprint": p(k.c.fingerprint), "referral_id": rid,
            "response_status": const(k.c.response_status, 202),
            "response_body": p(k.c.response_body), "created_at": now,
            "expires_at": p(k.c.expires_at)}))
    main = select(key.c.practice_id, key.c.actor)
    for i, stmt in enumerate(stmts):
        main = main.add_cte(stmt.cte(f"w_{i}"))
    return main
