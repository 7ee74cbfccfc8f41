"""A referral as FHIR resources, built from the database rows: its Task (the
status and BSeR business status a referrer's EHR follows), its
ServiceRequest, the referrer's documents as DocumentReference and Binary, and
a searchset Bundle. Ids are refflow's; the resources carry codes and the
practice's own data (the referral it sent); nothing here logs."""

from __future__ import annotations

import base64

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.documentreference import (
    DocumentReference,
    DocumentReferenceContent,
    DocumentReferenceContext,
)
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task, TaskOutput
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from refflow.db.models import Document, FhirRequest, Referral
from refflow.documents.names import DECLINE, SUMMARY
from refflow.interop.fhir.codes import (
    BSER_DISPLAY,
    BSER_STATUS,
    ICD10CM,
    NPI,
    PA_CODES,
    SDOHCC_TEMP,
    SNOMED,
    TASK_CODE,
)
from refflow.interop.fhir.datatypes import instant
from refflow.referrals import queries, states

# refflow state -> (Task.status, BSeR business status code). The statuses a
# referrer's EHR acts on: received (refflow has it), accepted (the plan is
# being made or a clinician is checking it), in progress (the plan is out,
# its messages being sent; "failed" is a message staff are fixing, so still
# in progress), completed, declined (rejected) and cancelled.
TASK_STATUS: dict[str, tuple[str, str]] = {
    states.RECEIVED: ("received", "2.0"),
    states.PLANNING: ("accepted", "3.0"),
    states.NEEDS_REVIEW: ("accepted", "3.0"),
    states.PLANNED: ("in-progress", "5.x"),
    states.DELIVERING: ("in-progress", "5.x"),
    states.FAILED: ("in-progress", "5.x"),
    states.COMPLETED: ("completed", "7.0"),
    states.REJECTED: ("rejected", "4.0"),
    states.CANCELLED: ("cancelled", "6.0"),
}
# refflow state -> ServiceRequest.status (anything else: active)
SERVICE_REQUEST_STATUS = {states.COMPLETED: "completed", states.REJECTED: "revoked",
                          states.CANCELLED: "revoked"}

# The documents a referrer reads through Task.output: the plan summary, or the
# "referral not accepted" letter a clinician's rejection sends.
REFERRER_DOCUMENTS = {SUMMARY: "Exercise plan summary", DECLINE: "Referral not accepted letter"}


def referrer_documents(session: Session, referral_id: str) -> list[Document]:
    """The referral's documents a referrer reads (summary, or not-accepted letter),
    without their bytes."""
    return list(session.scalars(select(Document).options(defer(Document.content)).where(
        Document.referral_id == referral_id, Document.name.in_(REFERRER_DOCUMENTS))
        .order_by(Document.created_at, Document.name)))


def visible_document(session: Session, document_id: str,
                     practice_id: str) -> tuple[Document, Referral] | None:
    """A referrer document of one of the practice's referrals, or None."""
    row = session.execute(select(Document, Referral).join(
        Referral, Referral.id == Document.referral_id).where(
        Document.id == document_id, Document.name.in_(REFERRER_DOCUMENTS),
        Referral.practice_id == practice_id)).first()
    return (row[0], row[1]) if row else None


def identifier_of(session: Session, referral: Referral) -> Identifier | None:
    """The ServiceRequest identifier the referral came with (or its external id)."""
    row = session.execute(select(FhirRequest.system, FhirRequest.value).where(
        FhirRequest.referral_id == referral.id)).first()
    if row is not None:
        return Identifier(system=row.system, value=row.value)
    return Identifier(value=referral.external_id) if referral.external_id else None


def _patient_reference(referral: Referral) -> Reference:
    patient = referral.payload.get("patient", {})
    name = " ".join(p for p in (patient.get("given_name"), patient.get("family_name")) if p)
    return Reference(type="Patient", display=name or None)


def _requester_reference(referral: Referral) -> Reference | None:
    referrer = referral.payload.get("referrer") or {}
    if not referrer.get("name") and not referrer.get("npi"):
        return None
    return Reference(type="Practitioner", display=referrer.get("name"),
                     identifier=Identifier(system=NPI, value=referrer["npi"])
                     if referrer.get("npi") else None)


def task(session: Session, referral: Referral, *, clinic_name: str) -> Task:
    """The referral's Task: status and BSeR business status from its state,
    the decision in plain words, the referrer's documents as outputs."""
    status, code = TASK_STATUS[referral.status]
    decision = queries.outcome(session, referral)["decision"]
    reason = None
    if referral.status in (states.REJECTED, states.CANCELLED):
        reason = CodeableConcept(text=decision["reason"] or decision["message"])
    outputs = [
        TaskOutput(type=CodeableConcept(
            coding=[Coding(system=SDOHCC_TEMP, code="resulting-activity",
                           display="Resulting Activity")],
            text=REFERRER_DOCUMENTS[doc.name]),
            valueReference=Reference(reference=f"DocumentReference/{doc.id}",
                                     display=REFERRER_DOCUMENTS[doc.name]))
        for doc in referrer_documents(session, referral.id)]
    based_on = Reference(reference=f"ServiceRequest/{referral.id}")
    return Task(
        id=referral.id, meta=Meta(lastUpdated=instant(referral.updated_at)),
        identifier=[i for i in [identifier_of(session, referral)] if i] or None,
        basedOn=[based_on], status=status, statusReason=reason,
        businessStatus=CodeableConcept(
            coding=[Coding(system=BSER_STATUS, code=code, display=BSER_DISPLAY[code])],
            text=decision["label"]),
        intent="order", priority="urgent" if referral.urgency == "urgent" else "routine",
        code=CodeableConcept(coding=[Coding(system=TASK_CODE, code="fulfill",
                                            display="Fulfill the focal request")]),
        description=decision["message"], focus=based_on,
        for_fhir=_patient_reference(referral),
        authoredOn=instant(referral.created_at), lastModified=instant(referral.updated_at),
        requester=_requester_reference(referral),
        owner=Reference(type="Organization", display=clinic_name),
        output=outputs or None)


def service_request(session: Session, referral: Referral) -> ServiceRequest:
    """The referral as a ServiceRequest: its identifier, status and reason."""
    diagnosis = referral.payload.get("diagnosis") or {}
    reason = CodeableConcept(
        coding=[Coding(system=ICD10CM, code=c) for c in diagnosis.get("codes", [])] or None,
        text=diagnosis.get("text"))
    return ServiceRequest(
        id=referral.id, meta=Meta(lastUpdated=instant(referral.updated_at)),
        identifier=[i for i in [identifier_of(session, referral)] if i] or None,
        status=SERVICE_REQUEST_STATUS.get(referral.status, "active"), intent="order",
        category=[CodeableConcept(coding=[Coding(system=PA_CODES, code="PhysicalActivity",
                                                 display="Physical Activity")])],
        priority="urgent" if referral.urgency == "urgent" else "routine",
        code=CodeableConcept(coding=[Coding(system=SNOMED, code="390893007",
                                            display="Referral to physical activity program")],
                             text="Exercise plan for bone health"),
        subject=_patient_reference(referral), authoredOn=instant(referral.created_at),
        requester=_requester_reference(referral),
        reasonCode=[reason] if reason.coding or reason.text else None)


def document_reference(document: Document, referral: Referral) -> DocumentReference:
    """A referrer document, its bytes at ``Binary/<id>``."""
    title = REFERRER_DOCUMENTS[document.name]
    return DocumentReference(
        id=document.id, status="current", docStatus="final",
        type=CodeableConcept(text=title), description=title,
        subject=_patient_reference(referral), date=instant(document.created_at),
        content=[DocumentReferenceContent(attachment=Attachment(
            contentType=document.content_type, url=f"Binary/{document.id}",
            size=document.size, title=document.name, creation=instant(document.created_at)))],
        context=DocumentReferenceContext(related=[
            Reference(reference=f"ServiceRequest/{referral.id}")]))


def binary(document: Document, content: bytes) -> Binary:
    return Binary(id=document.id, contentType=document.content_type,
                  securityContext=Reference(reference=f"ServiceRequest/{document.referral_id}"),
                  data=base64.b64encode(content).decode("ascii"))


def searchset(resources: list, *, base: str, self_url: str) -> Bundle:
    return Bundle(type="searchset", total=len(resources),
                  link=[BundleLink(relation="self", url=self_url)],
                  entry=[BundleEntry(fullUrl=f"{base}/{r.get_resource_type()}/{r.id}",
                                     resource=r, search=BundleEntrySearch(mode="match"))
                         for r in resources] or None)
