"""A referral Bundle stored as a referral, the create conditional on the
ServiceRequest's identifier.

``receive`` reads the Bundle (``bundle_in``) and hands the referral JSON to
the same validation (``intake.validation``) and acceptance
(``pipeline.accept.accept_in``) as ``POST /api/v1/referrals``. A
``FhirRequest`` row (practice, system, value) is written in the same
transaction, so the same identifier again is the same referral. refflow's own
field errors are mapped back to the FHIR element each value came from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from refflow.db.models import FhirRequest
from refflow.intake.validation import InvalidReferral, parse_referral
from refflow.interop.fhir.bundle_in import read_bundle
from refflow.interop.fhir.outcome import FhirError, Issue
from refflow.pipeline import accept


@dataclass(frozen=True)
class Received:
    referral_id: str
    created: bool  # False: this ServiceRequest identifier was sent before


def receive(session: Session, submitter: accept.Submitter, body: object, *,
            today: dt.date, clinic_timezone: str,
            find_problems: accept.ProblemFinder | None = None,
            retention: dt.timedelta = dt.timedelta(hours=48)) -> Received:
    """Store the referral a Bundle holds, in the caller's transaction, or find
    the one its ServiceRequest identifier already made. Raises ``FhirError``.
    A concurrent request with the same identifier makes the commit raise
    ``IntegrityError`` (the caller then answers with ``existing``)."""
    read = read_bundle(body)
    found = existing(session, submitter.practice_id, read.system, read.value)
    if found is not None:
        return Received(found, created=False)
    try:
        referral = parse_referral(read.data, today=today)
    except InvalidReferral as exc:
        raise FhirError(422, read.issues_for(exc.fields) or [
            Issue(exc.message, read.origins["referral"].expression)]) from None
    answer = accept.accept_in(session, submitter, read.data, referral, idempotency_key=None,
                              clinic_timezone=clinic_timezone, find_problems=find_problems,
                              retention=retention)
    session.add(FhirRequest(practice_id=submitter.practice_id, system=read.system,
                            value=read.value, referral_id=answer["id"]))
    session.flush()
    return Received(answer["id"], created=True)


def existing(session: Session, practice_id: str, system: str, value: str) -> str | None:
    """The referral a practice's ServiceRequest identifier made, if any."""
    return session.scalar(select(FhirRequest.referral_id).where(
        FhirRequest.practice_id == practice_id, FhirRequest.system == system,
        FhirRequest.value == value))
