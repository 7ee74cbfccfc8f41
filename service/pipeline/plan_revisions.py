"""A clinician's edit of a plan held for review: a new plan version.

``revise_plan`` checks the referral is held for review and that the editor
started from the current version (else ``VersionConflict``), lets the pure
``planning.revisions.revise`` build and re-check the new version (its
``SafetyRuleBroken`` and ``InvalidRevision`` propagate), then commits in one
transaction: the ``plan_versions`` row, the current plan (``plans``), a
``plan_revised`` timeline event (and a ``plan_override`` event per rule
overridden), and the audit entry. Two editors who started from the same
version cannot both save: the referral row is locked while the version is
written, and (referral, version) is unique.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from refflow.db.models import AuditEntry, Plan, PlanVersion, Referral, User, utcnow
from refflow.pipeline.context import Pipeline, StepError
from refflow.pipeline.flow import referral_input
from refflow.planning.revisions import VersionConflict, current_version, revise, versions_of
from refflow.referrals import states


def actor_name(session, actor: str) -> str:
    """Who ``actor`` is, for a document: a signed-in user's email, else the actor as given."""
    if actor.startswith("user:"):
        email = session.scalar(select(User.email).where(User.id == actor[5:]))
        if email:
            return email
    return actor


def _held(row: Referral | None, referral_id: str) -> Referral:
    if row is None:
        raise LookupError(referral_id)
    if row.status != states.NEEDS_REVIEW:
        raise StepError(f"only a plan held for review can be edited; this referral is "
                        f"{row.status}")
    return row


def revise_plan(p: Pipeline, referral_id: str, proposed: dict, *, actor: str, reason: str,
                override: str | None = None, expected_version: int | None) -> dict:
    """Save the clinician's change as the plan's next version; returns the new plan."""
    from refflow.plugins.manager import exercise_catalog

    with p.db.session() as session:
        row = _held(session.get(Referral, referral_id), referral_id)
        plan = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        if plan is None:
            raise StepError("this referral has no plan yet")
        current = plan.body
        if expected_version != current_version(current):
            raise VersionConflict(expected_version, current_version(current))
        referral, as_of = referral_input(row), row.received_on
        author = actor_name(session, actor)
    extra, _failures = exercise_catalog(p.pm)
    now = utcnow()
    new = revise(referral, current, proposed, as_of=as_of, author=author, at=now, reason=reason,
                 override=override, extra_exercises=extra, locale=p.settings.clinic_locale)
    version = new["version"]
    try:
        with p.db.session() as session:
            # Lock the referral while it is still held (an approval waits, or came first).
            locked = session.execute(
                update(Referral).where(Referral.id == referral_id,
                                       Referral.status == states.NEEDS_REVIEW)
                .values(updated_at=now).execution_options(synchronize_session=False))
            if locked.rowcount != 1:
                _held(session.get(Referral, referral_id), referral_id)
            plan = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
            if current_version(plan.body) != version - 1:
                raise VersionConflict(expected_version, current_version(plan.body))
            if session.scalar(select(PlanVersion.id).where(PlanVersion.referral_id == referral_id,
                                                           PlanVersion.version == 1)) is None:
                # a plan saved before versions were kept: its engine draft becomes version 1
                session.add(PlanVersion(referral_id=referral_id, version=1, body=plan.body,
                                        author="engine", reason="the engine's draft",
                                        created_at=plan.created_at or now))
            session.add(PlanVersion(referral_id=referral_id, version=version, body=new,
                                    author=author[:100], reason=reason.strip()[:500],
                                    created_at=now))
            session.flush()
            plan.body, plan.decision = new, new["decision"]
            states.record_event(session, referral_id, "plan_revised", actor=actor,
                                reason=f"version {version}: {reason.strip()}")
            for o in new.get("overrides") or []:
                if o.get("version") == version:
                    what = f" for {o['exercise']}" if o.get("exercise") else ""
                    states.record_event(session, referral_id, "plan_override", actor=actor,
                                        reason=f"version {version}: rule {o['rule']} overridden"
                                               f"{what}: {o['reason']}")
            session.add(AuditEntry(actor=actor, action="plan.revise", referral_id=referral_id,
                                   detail=f"version {version}"))
    except IntegrityError:
        raise VersionConflict(expected_version, version) from None
    return new


def list_versions(p: Pipeline, referral_id: str) -> list[dict] | None:
    """The plan's versions, oldest first: version, author, at, reason, changes,
    and whether it is the current one and whether it was released (approved).
    ``None`` when the referral has no plan yet."""
    with p.db.session() as session:
        plan = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        if plan is None:
            return None
        rows = {r.version: r for r in session.scalars(
            select(PlanVersion).where(PlanVersion.referral_id == referral_id))}
        current = current_version(plan.body)
        released = bool(plan.body.get("approved")) or plan.body.get("decision") != "review"
        out = []
        for entry in versions_of(plan.body):
            n = entry.get("version")
            item = {"version": n, "author": entry.get("author"), "at": entry.get("at"),
                    "reason": entry.get("reason"), "changes": entry.get("changes") or [],
                    "current": n == current, "released": n == current and released,
                    "stored": n in rows}
            out.append(item)
        return out


def get_version(p: Pipeline, referral_id: str, version: int) -> dict | None:
    """The plan as it was at ``version`` (the current plan for the current
    version, with its approval), or ``None``."""
    with p.db.session() as session:
        plan = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        if plan is None:
            return None
        if version == current_version(plan.body):
            return plan.body
        body = session.scalar(select(PlanVersion.body).where(
            PlanVersion.referral_id == referral_id, PlanVersion.version == version))
        return body
