"""The counts the database keeps as work happens (``state_counts``, migration
0010) against the rows themselves, through the pipeline's steps on SQLite
and PostgreSQL: the dashboard's tiles, ``/api/v1/queue`` and ``/metrics``
read them, so they must stay exact — folded or not."""

from __future__ import annotations

from sample_referrals import flagged, routine
from sqlalchemy import func, select

from refflow.db.models import Delivery, DeliveryAttempt, Referral
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline
from refflow.referrals import counts, states


def _actual(db) -> counts.Counts:
    with db.session() as session:
        return counts.Counts(
            referrals=dict(session.execute(select(Referral.status, func.count())
                                           .group_by(Referral.status)).all()),
            deliveries={(c, s): n for c, s, n in session.execute(
                select(Delivery.channel, Delivery.status, func.count())
                .group_by(Delivery.channel, Delivery.status))},
            attempts={(c, o): n for c, o, n in session.execute(
                select(Delivery.channel, DeliveryAttempt.outcome, func.count())
                .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                .group_by(Delivery.channel, DeliveryAttempt.outcome))})


def _kept(db) -> counts.Counts:
    with db.session() as session:
        return counts.read(session)


def _same(db) -> counts.Counts:
    kept, actual = _kept(db), _actual(db)
    assert (kept.referrals, kept.deliveries, kept.attempts) == \
        (actual.referrals, actual.deliveries, actual.attempts)
    return kept


def _submit(client, auth, body) -> str:
    answer = client.post("/api/v1/referrals", json=body, headers=auth)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def test_counts_follow_every_step_and_survive_folding(client, auth, settings, db):
    p = Pipeline(settings, db=db, publish=lambda task, args: None)
    assert _same(db).referrals == {}
    done = _submit(client, auth, routine(external_id="EHR-1"))
    held = _submit(client, auth, flagged())
    cancelled = _submit(client, auth, routine(external_id="EHR-3"))
    assert _same(db).referrals == {"received": 3}

    assert flow.build_plan(p, done) == states.DELIVERING
    assert flow.build_plan(p, held) == states.NEEDS_REVIEW
    _same(db)
    with db.session() as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.referral_id == done)).all()
    for delivery_id in ids:
        assert flow.deliver(p, delivery_id) == "sent"
    assert flow.finalize(p, done) == states.COMPLETED
    with db.session() as session:
        staff_actions.cancel(session, session.get(Referral, cancelled), actor="user:test",
                             reason="duplicate")
    kept = _same(db)
    assert kept.referrals == {"completed": 1, "needs_review": 1, "cancelled": 1}
    assert sum(n for (_, s), n in kept.deliveries.items() if s == "sent") == len(ids)
    assert sum(n for (_, o), n in kept.attempts.items() if o == "sent") == len(ids)
    with db.session() as session:  # the plan reached the referrer: no longer overdue
        assert session.get(Referral, done).plan_sent_at is not None
        assert session.get(Referral, held).plan_sent_at is None

    assert kept.rows > len(kept.referrals)  # one row per change so far
    counts.fold(db)
    folded = _same(db)
    assert folded.rows == len(folded.referrals) + len(folded.deliveries) + len(folded.attempts)

    text = client.get("/metrics").get_data(as_text=True)
    assert 'refflow_referrals{state="completed"} 1.0' in text
    assert 'refflow_referrals{state="needs_review"} 1.0' in text
    assert 'refflow_referrals{state="received"} 0.0' in text
