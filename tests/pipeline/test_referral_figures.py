"""The figures a referral keeps as it moves, for the Reports (migration 0014):
they must say what its timeline and its deliveries say, whether the pipeline
kept them step by step or the migration worked them out of the history, on
SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sample_referrals import flagged, routine
from sqlalchemy import select

from refflow.db.migrate import alembic_config, head_revision
from refflow.db.models import Delivery, Referral, ReferralEvent
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline
from refflow.referrals import states

FIGURES = ("released_at", "referrer_notified_at", "review_started_at", "review_seconds")


def _submit(client, auth, body) -> str:
    answer = client.post("/api/v1/referrals", json=body, headers=auth)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def _deliver_all(p, db, rid) -> None:
    with db.session() as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.referral_id == rid)).all()
    for delivery_id in ids:
        assert flow.deliver(p, delivery_id) == "sent"


def _kept(db, rid) -> dict:
    with db.session() as session:
        row = session.get(Referral, rid)
        return {name: getattr(row, name) for name in FIGURES}


def _timeline(db, rid) -> list[tuple[str | None, str, object]]:
    with db.session() as session:
        return session.execute(
            select(ReferralEvent.from_status, ReferralEvent.to_status, ReferralEvent.at)
            .where(ReferralEvent.referral_id == rid, ReferralEvent.kind == "status")
            .order_by(ReferralEvent.id)).all()


def _sent_at(db, rid, document) -> object:
    with db.session() as session:
        return session.scalar(select(Delivery.sent_at).where(
            Delivery.referral_id == rid, Delivery.document == document))


def _seconds_in_review(timeline) -> float:
    entered = [at for _, to, at in timeline if to == states.NEEDS_REVIEW]
    left = [at for came_from, _, at in timeline if came_from == states.NEEDS_REVIEW]
    return sum((end - start).total_seconds() for start, end in zip(entered, left, strict=False))


def _same(kept: dict, expected: dict) -> None:
    assert kept.keys() == expected.keys()
    for name, value in expected.items():
        if name == "review_seconds" and value is not None:
            assert abs(kept[name] - value) < 0.01, (name, kept[name], value)
        else:
            assert kept[name] == value, (name, kept[name], value)


def test_figures_follow_the_timeline_and_survive_the_migration(client, auth, settings, db):
    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    released = _submit(client, auth, routine(external_id="EHR-1"))
    approved = _submit(client, auth, {**flagged(), "external_id": "EHR-2"})
    rejected = _submit(client, auth, {**flagged(), "external_id": "EHR-3"})
    twice = _submit(client, auth, {**flagged(), "external_id": "EHR-4"})

    assert flow.build_plan(p, released) == states.DELIVERING
    _deliver_all(p, db, released)
    for rid in (approved, rejected, twice):
        assert flow.build_plan(p, rid) == states.NEEDS_REVIEW
    staff_actions.approve(p, approved, actor="user:physio")
    flow.render_documents(p, approved)
    _deliver_all(p, db, approved)
    staff_actions.reject(p, rejected, actor="user:physio", note="See the surgeon first.")
    _deliver_all(p, db, rejected)
    # held, sent back to be planned again, and held again: two stays, the second open
    with db.session() as session:
        states.transition(session, session.get(Referral, twice), states.PLANNING,
                          actor="user:physio", reason="plan it again")
    assert flow.build_plan(p, twice) == states.NEEDS_REVIEW

    expected = {}
    for rid in (released, approved, rejected, twice):
        timeline = _timeline(db, rid)
        first = {to: at for _, to, at in reversed(timeline)}
        expected[rid] = {
            "released_at": first.get(states.PLANNED),
            "referrer_notified_at": _sent_at(db, rid, "fax.tiff")
            or _sent_at(db, rid, "decline.tiff"),
            "review_started_at": max((at for _, to, at in timeline
                                      if to == states.NEEDS_REVIEW), default=None),
            "review_seconds": _seconds_in_review(timeline)
            if any(came_from == states.NEEDS_REVIEW for came_from, _, _ in timeline) else None,
        }
    # the pipeline's own moves: released, told, never held
    assert expected[released]["released_at"] and expected[released]["referrer_notified_at"]
    assert expected[released]["review_started_at"] is None
    # held then approved; rejected, the letter telling the referrer; still held after one stay
    assert expected[approved]["review_seconds"] > 0
    assert expected[rejected]["released_at"] is None
    assert expected[rejected]["referrer_notified_at"] is not None
    assert expected[twice]["review_seconds"] > 0 and expected[twice]["released_at"] is None
    for rid, figures in expected.items():
        _same(_kept(db, rid), figures)
    with db.session() as session:  # each delivery carries its referral's receipt time
        for delivery, received in session.execute(
                select(Delivery, Referral.created_at)
                .join(Referral, Referral.id == Delivery.referral_id)).all():
            assert delivery.referral_created_at == received

    # the migration works the same figures out of the history already there
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0013")
        command.upgrade(alembic_config(connection), head_revision())
    for rid, figures in expected.items():
        _same(_kept(db, rid), figures)
    with db.session() as session:
        assert session.scalar(select(Delivery).where(
            Delivery.referral_created_at.is_(None))) is None
