"""FHIR R4: a referral Bundle in, the referral out as a Task, a ServiceRequest
and its documents (DESIGN.md "Public contract", issue 18).

Everything is parsed and built with the ``fhir.resources`` R4B models (for the
resources used here, R4B and R4 have the same elements, so the JSON is what an
R4 client expects). No Flask here: ``refflow.web.fhir`` serves it.

In: ``receive`` reads a ``transaction`` Bundle (every entry a POST) or a
``message`` Bundle (a MessageHeader first, its focus the ServiceRequest or a
Task whose focus is the ServiceRequest), maps it onto the referral JSON of
DESIGN.md and hands it to the same validation (``intake.validation``) and
acceptance (``pipeline.accept.accept_in``) as ``POST /api/v1/referrals``. The
ServiceRequest's identifier makes the create conditional: a ``FhirRequest``
row (practice, system, value) is written in the same transaction, and the same
identifier again is the same referral. Every refusal is a ``FhirError``, an
OperationOutcome whose issues name the element (``Bundle.entry[1].resource.
birthDate`` and ``Patient.birthDate``), including refflow's own field errors
mapped back to where the value came from.

Out: ``task``, ``service_request``, ``document_reference``, ``binary``,
``searchset`` and ``capability_statement`` build resources from the database
rows. Messages and resources carry ids, codes and the practice's own data
(the referral it sent); nothing here logs.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from fhir.resources.R4B.capabilitystatement import (
    CapabilityStatement,
    CapabilityStatementImplementation,
    CapabilityStatementRest,
    CapabilityStatementRestInteraction,
    CapabilityStatementRestResource,
    CapabilityStatementRestResourceInteraction,
    CapabilityStatementRestResourceOperation,
    CapabilityStatementRestResourceSearchParam,
    CapabilityStatementRestSecurity,
    CapabilityStatementSoftware,
)
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.documentreference import (
    DocumentReference,
    DocumentReferenceContent,
    DocumentReferenceContext,
)
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task, TaskOutput
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from refflow.db.models import Document, FhirRequest, Referral, utcnow
from refflow.documents.names import DECLINE, SUMMARY
from refflow.intake.validation import InvalidReferral, parse_referral
from refflow.pipeline import accept
from refflow.planning.vocabulary import BONE_DIAGNOSES, match_code, match_condition
from refflow.referrals import queries, states

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

NPI = "http://hl7.org/fhir/sid/us-npi"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
PA_CODES = "http://hl7.org/fhir/us/physical-activity/CodeSystem/pa-temporary-codes"
SDOHCC_TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
# BSeR (Bidirectional Services eReferral) STU1 1.0.0, the published version:
# the referral's business status a referrer's EHR understands.
BSER_STATUS = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
BSER_DISPLAY = {
    "2.0": "Service Request Created",
    "3.0": "Service Request Accepted",
    "4.0": "Service Request Declined",
    "5.x": "Service Request Fulfillment Initiated",
    "6.0": "Service Request Fulfillment Cancelled",
    "7.0": "Service Request Fulfillment Completed",
}

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

# LOINC codes of DXA T-scores (every site, either side); the lowest is the referral's.
T_SCORE_CODES = frozenset({
    "38263-0",  # DXA Femur [T-score] Bone density
    "80947-5", "80948-3",  # DXA Femur - right / left [T-score]
    "38264-8",  # DXA Hip [T-score] Bone density
    "80945-9", "80946-7",  # DXA Hip - right / left [T-score]
    "38267-1",  # DXA Lumbar spine [T-score] Bone density
    "38265-5",  # DXA Radius and Ulna [T-score] Bone density
    "80943-4", "80944-2",  # DXA Radius and Ulna - right / left [T-score]
    "38266-3",  # DXA Calcaneus [T-score] Bone density
    "80949-1", "80950-9",  # DXA Calcaneus - right / left [T-score]
    "85390-3", "85388-7", "85389-5",  # DXA Humerus, right, left [T-score]
})
# SNOMED CT codes of the bone diagnoses refflow plans for (ICD-10-CM codes and
# texts are recognised by the plan engine's own vocabulary).
BONE_SNOMED = frozenset({
    "64859006",   # Osteoporosis (disorder)
    "203438009",  # Vertebral osteoporosis (disorder)
    "312894000",  # Osteopenia (disorder)
})
# Condition.clinicalStatus -> the referral's condition status: a condition
# that came back is current ("active"); one inactive, in remission or
# resolved is past ("resolved"), so at most a caution.
CLINICAL_STATUS = {"active": "active", "recurrence": "active", "relapse": "active",
                   "inactive": "resolved", "remission": "resolved", "resolved": "resolved"}
URGENT_PRIORITIES = frozenset({"urgent", "asap", "stat"})
ORDER_INTENTS = frozenset({"order", "original-order", "filler-order"})
ROUTES_SNOMED = {
    "26643006": "oral", "447694001": "inhaled", "18679011000001101": "inhaled",
    "6064005": "topical", "54485002": "eye", "78421000": "injection", "34206005": "injection",
    "47625008": "injection",
}
ROUTE_WORDS = (("oral", "oral"), ("mouth", "oral"), ("inhal", "inhaled"),
               ("respiratory", "inhaled"), ("topical", "topical"), ("cutaneous", "topical"),
               ("ophthalmic", "eye"), ("eye", "eye"), ("intramuscular", "injection"),
               ("subcutaneous", "injection"), ("intravenous", "injection"),
               ("inject", "injection"))
DAYS_PER_UNIT = {"h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}

# HTTP status -> OperationOutcome issue type
ISSUE_TYPES = {400: "structure", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 409: "conflict", 413: "too-costly",
               415: "not-supported", 422: "invalid", 429: "throttled", 500: "exception",
               503: "transient"}


# -- errors -----------------------------------------------------------------------

@dataclass(frozen=True)
class Issue:
    """One problem: what is wrong, where (FHIRPath expressions), and its type."""

    message: str
    expression: tuple[str, ...] = ()
    code: str = "invalid"
    diagnostics: str | None = None


class FhirError(Exception):
    """A request refused with an OperationOutcome (``status``: the HTTP status)."""

    def __init__(self, status: int, issues: list[Issue] | Issue) -> None:
        self.issues = [issues] if isinstance(issues, Issue) else issues
        super().__init__("; ".join(i.message for i in self.issues))
        self.status = status


def operation_outcome(issues: Iterable[Issue]) -> OperationOutcome:
    return OperationOutcome(issue=[
        OperationOutcomeIssue(severity="error", code=i.code,
                              details=CodeableConcept(text=i.message),
                              diagnostics=i.diagnostics,
                              expression=list(i.expression) or None)
        for i in issues])


def error_outcome(status: int, message: str, fields: dict | None = None) -> OperationOutcome:
    """The OperationOutcome of an HTTP error: one issue, or one per field."""
    code = ISSUE_TYPES.get(status, "processing")
    issues = [Issue(why, (_body_path(name),), code, diagnostics=message)
              for name, why in (fields or {}).items()] or [Issue(message, (), code)]
    return operation_outcome(issues)


def _body_path(name: str) -> str:
    # the request body's own JSON paths (a NUL in entry[1].resource...): a Bundle's
    return "Bundle" if name in ("body", "(body)") else f"Bundle.{name}"


def to_json(resource) -> str:
    return resource.model_dump_json(exclude_none=True)


# -- in: a Bundle becomes a referral ------------------------------------------------

@dataclass
class Where:
    """Where a value came from: its Bundle path and its resource-relative path."""

    bundle: str
    resource: str

    def at(self, element: str) -> Where:
        return Where(f"{self.bundle}.{element}", f"{self.resource}.{element}")

    @property
    def expression(self) -> tuple[str, ...]:
        return (self.bundle, self.resource)


@dataclass
class BundleReferral:
    """A Bundle read as a referral: the referral JSON, where each of its
    fields came from, and the ServiceRequest's identifier."""

    data: dict
    origins: dict[str, Where]
    system: str
    value: str

    def issues_for(self, fields: dict[str, str]) -> list[Issue]:
        """refflow's field errors, each at the FHIR element it came from (the
        longest known prefix of its field path)."""
        issues = []
        for name, why in fields.items():
            parts = name.split(".")
            where = next((self.origins[".".join(parts[:n])] for n in range(len(parts), 0, -1)
                          if ".".join(parts[:n]) in self.origins), self.origins["referral"])
            issues.append(Issue(why, where.expression,
                                "required" if why == "required" else "invalid",
                                diagnostics=f"refflow field {name}: {why}"))
        return issues


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


def read_bundle(body: object) -> BundleReferral:
    """Parse ``body`` with the R4B models and map it onto the referral JSON.
    Raises ``FhirError`` (422) naming the elements that are wrong."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FhirError(422, Issue("send a FHIR Bundle (resourceType Bundle) of type "
                                   "transaction or message", ("Bundle",), "structure"))
    try:
        bundle = Bundle.model_validate(body)
    except ValidationError as exc:
        raise FhirError(422, _parse_issues(exc, body)) from None
    return _BundleReader(bundle).read()


def _parse_issues(exc: ValidationError, body: dict) -> list[Issue]:
    issues = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p).removesuffix("__ext") for p in err["loc"]]
        bundle_path = "Bundle" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc)
        paths = [bundle_path]
        if len(loc) > 3 and loc[0] == "entry" and loc[2] == "resource":
            resource_type = _resource_type(body, int(loc[1]))
            if resource_type:
                paths.append(resource_type + "".join(
                    f"[{p}]" if p.isdigit() else f".{p}" for p in loc[3:]))
        message = err["msg"].removeprefix("Value error, ")
        issues.append(Issue(message, tuple(paths), "required" if "missing" in err["type"]
                            else "structure" if err["type"] == "extra_forbidden" else "value"))
    return issues


def _resource_type(body: dict, index: int) -> str | None:
    try:
        value = body["entry"][index]["resource"]["resourceType"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) and value.isalpha() else None


@dataclass
class _Entry:
    index: int
    resource: object

    @property
    def type(self) -> str:
        return self.resource.get_resource_type()

    @property
    def where(self) -> Where:
        return Where(f"Bundle.entry[{self.index}].resource", self.type)


class _BundleReader:
    """One Bundle's entries, their references resolved inside the Bundle."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.entries: list[_Entry] = []
        self.by_reference: dict[str, _Entry] = {}
        self.origins: dict[str, Where] = {}
        for index, entry in enumerate(bundle.entry or []):
            if entry.resource is None:
                continue
            item = _Entry(index, entry.resource)
            self.entries.append(item)
            keys = []
            if entry.fullUrl:
                keys.append(entry.fullUrl)
                if not entry.fullUrl.startswith("urn:"):  # http://ehr/fhir/Patient/1 -> Patient/1
                    keys.append("/".join(entry.fullUrl.rstrip("/").split("/")[-2:]))
            if entry.resource.id:
                keys.append(f"{item.type}/{entry.resource.id}")
            for key in keys:
                self.by_reference.setdefault(key, item)

    def of_type(self, resource_type: str) -> list[_Entry]:
        return [e for e in self.entries if e.type == resource_type]

    def resolve(self, reference: Reference | None) -> _Entry | None:
        if reference is None or not reference.reference:
            return None
        target = reference.reference
        found = self.by_reference.get(target)
        if found is None and "://" in target:
            found = self.by_reference.get("/".join(target.rstrip("/").split("/")[-2:]))
        return found

    # -- the whole referral ---------------------------------------------------------

    def read(self) -> BundleReferral:
        request = self._service_request()
        where = request.where
        sr = request.resource
        self.origins["referral"] = where
        self.origins["external_id"] = where.at("identifier")
        system, value = self._identifier(sr, where)
        patient = self._patient(sr, where)
        data: dict = {"external_id": value, "patient": self._patient_json(patient)}
        referrer = self._referrer(sr.requester, where.at("requester"))
        if referrer:
            data["referrer"] = referrer
        diagnosis, conditions = self._conditions(sr, where, patient)
        if diagnosis:
            data["diagnosis"] = diagnosis
        clinical = {}
        t_score = self._t_score(patient)
        if t_score is not None:
            clinical["t_score"] = t_score
        if conditions:
            clinical["conditions"] = conditions
        medications = self._medications(patient)
        if medications:
            clinical["medications"] = medications
        if clinical:
            data["clinical"] = clinical
        goals = self._goals(patient)
        if goals:
            data["goals"] = goals
        if sr.priority:
            data["urgency"] = "urgent" if sr.priority in URGENT_PRIORITIES else "routine"
            self.origins["urgency"] = where.at("priority")
        notes = [n.text.strip() for n in sr.note or [] if n.text and n.text.strip()]
        if notes:
            data["notes"] = "\n\n".join(notes)
            self.origins["notes"] = where.at("note")
        return BundleReferral(data, self.origins, system, value)

    def _service_request(self) -> _Entry:
        kind = self.bundle.type
        if kind == "transaction":
            for index, entry in enumerate(self.bundle.entry or []):
                method = entry.request.method if entry.request else None
                if method != "POST":
                    raise FhirError(422, Issue(
                        "every entry of a transaction must be a create (request.method POST)",
                        (f"Bundle.entry[{index}].request.method",), "not-supported"))
            requests = self.of_type("ServiceRequest")
            if len(requests) != 1:
                raise FhirError(422, Issue("a transaction Bundle must hold exactly one "
                                           "ServiceRequest (the referral)", ("Bundle.entry",)))
            request = requests[0]
        elif kind == "message":
            request = self._message_focus()
        else:
            raise FhirError(422, Issue("the Bundle must be of type transaction or message",
                                       ("Bundle.type",), "not-supported"))
        sr = request.resource
        if sr.intent not in ORDER_INTENTS:
            raise FhirError(422, Issue("the ServiceRequest's intent must be order",
                                       request.where.at("intent").expression, "value"))
        if sr.status != "active":
            raise FhirError(422, Issue("the ServiceRequest's status must be active",
                                       request.where.at("status").expression, "value"))
        self._check_task(request)
        return request

    def _message_focus(self) -> _Entry:
        first = self.entries[0] if self.entries else None
        if first is None or first.index != 0 or first.type != "MessageHeader":
            raise FhirError(422, Issue("a message Bundle starts with its MessageHeader",
                                       ("Bundle.entry[0].resource",), "structure"))
        for ref in first.resource.focus or []:
            target = self.resolve(ref)
            if target is not None and target.type == "Task":
                target = self.resolve(target.resource.focus)
            if target is not None and target.type == "ServiceRequest":
                return target
        requests = self.of_type("ServiceRequest")
        if len(requests) == 1:
            return requests[0]
        raise FhirError(422, Issue("the MessageHeader's focus must be the ServiceRequest "
                                   "(or a Task whose focus it is)",
                                   first.where.at("focus").expression, "required"))

    def _check_task(self, request: _Entry) -> None:
        for task in self.of_type("Task"):
            codes = _codes(task.resource.code, TASK_CODE)
            if task.resource.code is not None and "fulfill" not in codes:
                raise FhirError(422, Issue("a Task in the referral must have the code fulfill",
                                           task.where.at("code").expression, "value"))
            if self.resolve(task.resource.focus) is not request:
                raise FhirError(422, Issue("the Task's focus must be the ServiceRequest",
                                           task.where.at("focus").expression, "value"))

    def _identifier(self, sr: ServiceRequest, where: Where) -> tuple[str, str]:
        for k, ident in enumerate(sr.identifier or []):
            if ident.system and ident.value:
                if len(ident.system) > 255 or len(ident.value) > 255:
                    raise FhirError(422, Issue("the identifier's system and value must be at "
                                               "most 255 characters",
                                               where.at(f"identifier[{k}]").expression,
                                               "too-long"))
                self.origins["external_id"] = where.at(f"identifier[{k}].value")
                return ident.system, ident.value
        raise FhirError(422, Issue("the ServiceRequest needs an identifier with a system and a "
                                   "value: it makes the create conditional (the same "
                                   "identifier again is the same referral)",
                                   where.at("identifier").expression, "required"))

    # -- patient and referrer ---------------------------------------------------------

    def _patient(self, sr: ServiceRequest, where: Where) -> _Entry:
        patient = self.resolve(sr.subject)
        if patient is None or patient.type != "Patient":
            raise FhirError(422, Issue("the ServiceRequest's subject must reference the "
                                       "Patient in the Bundle",
                                       where.at("subject").expression, "required"))
        return patient

    def _patient_json(self, patient: _Entry) -> dict:
        p, where = patient.resource, patient.where
        out: dict = {}
        self.origins["patient"] = where
        name_index, name = _pick(p.name, lambda n: n.use == "official",
                                 lambda n: n.use not in ("old", "maiden"))
        self.origins["patient.given_name"] = where.at("name")
        self.origins["patient.family_name"] = where.at("name")
        if name is not None:
            if name.given:
                out["given_name"] = " ".join(name.given)
                self.origins["patient.given_name"] = where.at(f"name[{name_index}].given")
            if name.family:
                out["family_name"] = name.family
                self.origins["patient.family_name"] = where.at(f"name[{name_index}].family")
        self.origins["patient.birth_date"] = where.at("birthDate")
        if p.birthDate is not None:
            out["birth_date"] = _date_text(p.birthDate)
        self.origins["patient.sex"] = where.at("gender")
        if p.gender:
            out["sex"] = p.gender
        out.update(self._telecom(p.telecom, where, "patient", ("phone", "email")))
        k, comm = _pick(p.communication, lambda c: c.preferred, lambda c: True)
        if comm is not None and comm.language and comm.language.coding:
            code = comm.language.coding[0].code
            if code:
                out["preferred_language"] = code
                self.origins["patient.preferred_language"] = where.at(
                    f"communication[{k}].language")
        return out

    def _telecom(self, telecom, where: Where, prefix: str, kinds: tuple[str, ...]) -> dict:
        out = {}
        for kind in kinds:
            k, point = _pick(telecom, lambda t, kind=kind: t.system == kind and t.value
                             and t.use == "mobile",
                             lambda t, kind=kind: t.system == kind and t.value
                             and t.use != "old")
            if point is not None:
                out[kind] = point.value
                self.origins[f"{prefix}.{kind}"] = where.at(f"telecom[{k}].value")
        return out

    def _referrer(self, reference: Reference | None, where: Where) -> dict:
        self.origins["referrer"] = where
        if reference is None:
            return {}
        target = self.resolve(reference)
        out: dict = {}
        if target is None:  # a logical reference: its display and NPI identifier
            if reference.display:
                out["name"] = reference.display
                self.origins["referrer.name"] = where.at("display")
            if reference.identifier and reference.identifier.system == NPI:
                out["npi"] = reference.identifier.value
                self.origins["referrer.npi"] = where.at("identifier.value")
            return out
        resources = [target]
        if target.type == "PractitionerRole":
            practitioner = self.resolve(target.resource.practitioner)
            if practitioner is not None:
                resources.append(practitioner)
        kinds = ["phone", "fax", "email"]
        for item in resources:  # the role's details first, then the practitioner's
            r, at = item.resource, item.where
            if "name" not in out:
                name = _display_name(r)
                if name:
                    out["name"] = name
                    self.origins["referrer.name"] = at.at("name")
            if "npi" not in out:
                k, ident = _pick(getattr(r, "identifier", None),
                                 lambda i: i.system == NPI and i.value, lambda i: False)
                if ident is not None:
                    out["npi"] = ident.value
                    self.origins["referrer.npi"] = at.at(f"identifier[{k}].value")
            found = self._telecom(getattr(r, "telecom", None), at, "referrer", tuple(kinds))
            out.update(found)
            kinds = [k for k in kinds if k not in found]
        if "name" not in out and reference.display:
            out["name"] = reference.display
            self.origins["referrer.name"] = where.at("display")
        return out

    # -- clinical ---------------------------------------------------------------------

    def _check_patient(self, entry: _Entry, patient: _Entry) -> None:
        """Refuse a resource about another Patient of the Bundle than the
        referral's (a subject that resolves to nothing in the Bundle is taken
        to be the patient's)."""
        subject = getattr(entry.resource, "subject", None)
        target = self.resolve(subject)
        if target is not None and target is not patient:
            raise FhirError(422, Issue("the resource is about another patient than the "
                                       "ServiceRequest's subject",
                                       entry.where.at("subject").expression, "value"))

    def _conditions(self, sr: ServiceRequest, where: Where,
                    patient: _Entry) -> tuple[dict | None, list[dict]]:
        """The bone diagnosis (osteoporosis, osteopenia) and the other conditions,
        from the ServiceRequest's reasonCode and every Condition in the Bundle."""
        # (where, where its code is, the code, the Condition or None for a reasonCode)
        found: list[tuple[Where, Where, CodeableConcept, object | None]] = []
        for k, concept in enumerate(sr.reasonCode or []):
            at = where.at(f"reasonCode[{k}]")
            found.append((at, at, concept, None))
        for entry in self.of_type("Condition"):
            c = entry.resource
            verification = _codes(c.verificationStatus, CONDITION_VERIFICATION)
            if verification & {"refuted", "entered-in-error"} or c.code is None:
                continue
            self._check_patient(entry, patient)
            found.append((entry.where, entry.where.at("code"), c.code, c))
        self.origins["diagnosis"] = where.at("reasonCode")
        if not found:
            return None, []
        bone = [item for item in found if _is_bone(item[2])]
        chosen = bone or found[:1]  # none in scope: the first reason, for the engine to hold
        codes: list[str] = []
        texts: list[str] = []
        for _, code_at, concept, _ in chosen:
            for code, k in _icd10_codes(concept):
                if code not in codes:
                    self.origins[f"diagnosis.codes.{len(codes)}"] = code_at.at(f"coding[{k}].code")
                    codes.append(code)
            text = _concept_text(concept)
            if text and text not in texts:
                texts.append(text)
        diagnosis: dict = {"codes": codes} if codes else {}
        if texts:
            diagnosis["text"] = "; ".join(texts)
            self.origins["diagnosis.text"] = chosen[0][1]
        self.origins["diagnosis"] = chosen[0][0]
        conditions = [self._condition(at, code_at, concept, condition, n)
                      for n, (at, code_at, concept, condition) in
                      enumerate(item for item in found if all(item is not c for c in chosen))]
        return diagnosis, conditions

    def _condition(self, at: Where, code_at: Where, concept: CodeableConcept, condition,
                   n: int) -> dict:
        key = f"clinical.conditions.{n}"
        self.origins[key] = at
        out: dict = {}
        text = _concept_text(concept)
        if text:
            out["text"] = text
            self.origins[f"{key}.text"] = code_at
        icd = _icd10_codes(concept)
        if icd:
            out["code"] = icd[0][0]
            self.origins[f"{key}.code"] = code_at.at(f"coding[{icd[0][1]}].code")
        if condition is not None:
            clinical = _codes(condition.clinicalStatus, CONDITION_CLINICAL)
            status = next((CLINICAL_STATUS[c] for c in clinical if c in CLINICAL_STATUS), None)
            if status:
                out["status"] = status
                self.origins[f"{key}.status"] = at.at("clinicalStatus")
            onset = condition.onsetDateTime
            if isinstance(onset, dt.datetime | dt.date):  # a partial date is not a day
                out["since"] = _date_text(onset)
                self.origins[f"{key}.since"] = at.at("onsetDateTime")
        return out

    def _t_score(self, patient: _Entry) -> float | None:
        """The lowest DXA T-score of the Observations (or their components)."""
        lowest: tuple[float, Where] | None = None
        for entry in self.of_type("Observation"):
            o = entry.resource
            if o.status in ("entered-in-error", "cancelled"):
                continue
            values = []
            if _codes(o.code, LOINC) & T_SCORE_CODES and o.valueQuantity is not None:
                values.append((o.valueQuantity.value, entry.where.at("valueQuantity.value")))
            for k, part in enumerate(o.component or []):
                if _codes(part.code, LOINC) & T_SCORE_CODES and part.valueQuantity is not None:
                    values.append((part.valueQuantity.value,
                                   entry.where.at(f"component[{k}].valueQuantity.value")))
            values = [(v, at) for v, at in values if v is not None]
            if values:
                self._check_patient(entry, patient)
            for value, at in values:
                if lowest is None or value < lowest[0]:
                    lowest = (value, at)
        if lowest is None:
            return None
        self.origins["clinical.t_score"] = lowest[1]
        return float(lowest[0])

    def _medications(self, patient: _Entry) -> list:
        out = []
        for entry in self.of_type("MedicationStatement"):
            m, where = entry.resource, entry.where
            if m.status in ("entered-in-error", "not-taken"):
                continue
            self._check_patient(entry, patient)
            key = f"clinical.medications.{len(out)}"
            self.origins[key] = where
            concept, concept_at = m.medicationCodeableConcept, where.at("medicationCodeableConcept")
            if concept is None:
                medication = self.resolve(m.medicationReference)
                if medication is not None and medication.type == "Medication":
                    concept, concept_at = medication.resource.code, medication.where.at("code")
            name = _concept_text(concept, prefer=RXNORM) if concept is not None else None
            if not name:
                raise FhirError(422, Issue("the medication needs a name (a text or a display)",
                                           concept_at.expression, "required"))
            item: dict = {"name": name}
            self.origins[f"{key}.name"] = concept_at
            dosage = (m.dosage or [None])[0]
            per_day = _mg_per_day(dosage)
            if per_day is not None:
                item["dose_mg_per_day"] = per_day
                self.origins[f"{key}.dose_mg_per_day"] = where.at("dosage[0]")
            route = _route(dosage.route) if dosage is not None and dosage.route else None
            if route:
                item["route"] = route
                self.origins[f"{key}.route"] = where.at("dosage[0].route")
            start = m.effectivePeriod.start if m.effectivePeriod else m.effectiveDateTime
            if isinstance(start, dt.datetime | dt.date):
                item["since"] = _date_text(start)
                self.origins[f"{key}.since"] = where.at(
                    "effectivePeriod.start" if m.effectivePeriod else "effectiveDateTime")
            out.append(item if len(item) > 1 else name)
        return out

    def _goals(self, patient: _Entry) -> list[str]:
        out = []
        for entry in self.of_type("Goal"):
            g = entry.resource
            if g.lifecycleStatus in ("cancelled", "entered-in-error", "rejected", "completed"):
                continue
            text = g.description.text if g.description else None
            if text and text.strip():
                self._check_patient(entry, patient)
                self.origins[f"goals.{len(out)}"] = entry.where.at("description.text")
                out.append(text.strip())
        return out


def _pick(items, *tests: Callable) -> tuple[int, object | None]:
    """The first item passing the first test that any passes, with its index."""
    for test in tests:
        for k, item in enumerate(items or []):
            if test(item):
                return k, item
    return 0, None


def _codes(concept: CodeableConcept | None, system: str) -> set[str]:
    if concept is None:
        return set()
    return {c.code for c in concept.coding or [] if c.system == system and c.code}


def _concept_text(concept: CodeableConcept | None, prefer: str | None = None) -> str | None:
    """A concept's words: its text, else a display (``prefer``'s system first)."""
    if concept is None:
        return None
    if concept.text and concept.text.strip():
        return concept.text.strip()
    codings = sorted(concept.coding or [], key=lambda c: c.system != prefer)
    return next((c.display.strip() for c in codings if c.display and c.display.strip()), None)


def _icd10_codes(concept: CodeableConcept) -> list[tuple[str, int]]:
    """ICD-10-CM codes with their coding's index; a code written without its
    dot (M810) is given one (M81.0), as refflow writes them."""
    out = []
    for k, coding in enumerate(concept.coding or []):
        if coding.system == ICD10CM and coding.code:
            code = coding.code.strip().upper()
            if "." not in code and len(code) > 3:
                code = f"{code[:3]}.{code[3:]}"
            out.append((code, k))
    return out


def _is_bone(concept: CodeableConcept) -> bool:
    """Whether a condition is one refflow plans for (osteoporosis, osteopenia,
    high fracture risk): by ICD-10-CM code, SNOMED CT code or its words."""
    if any(match_code(code) in BONE_DIAGNOSES for code, _ in _icd10_codes(concept)):
        return True
    if _codes(concept, SNOMED) & BONE_SNOMED:
        return True
    words = [concept.text or ""] + [c.display or "" for c in concept.coding or []]
    return any(match_condition(w) & set(BONE_DIAGNOSES) for w in words if w)


def _display_name(resource) -> str | None:
    names = getattr(resource, "name", None)
    if isinstance(names, str):  # an Organization's name
        return names.strip() or None
    _, name = _pick(names, lambda n: n.use == "official", lambda n: True)
    if name is None:
        return None
    if name.text and name.text.strip():
        return name.text.strip()
    parts = [*(name.prefix or []), *(name.given or []), name.family or "", *(name.suffix or [])]
    return " ".join(p for p in parts if p) or None


def _date_text(value) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # a partial date ("1951"): refflow says it is not a date


def _mg_per_day(dosage) -> float | None:
    """The dose in mg a day, when the dosage gives it in mg with a frequency."""
    if dosage is None or not dosage.doseAndRate or dosage.timing is None \
            or dosage.timing.repeat is None:
        return None
    quantity = dosage.doseAndRate[0].doseQuantity
    repeat = dosage.timing.repeat
    if quantity is None or quantity.value is None or (quantity.code or quantity.unit) != "mg" \
            or not repeat.period or repeat.periodUnit not in DAYS_PER_UNIT:
        return None
    per_day = decimal.Decimal(quantity.value) * (repeat.frequency or 1) / (
        decimal.Decimal(repeat.period) * decimal.Decimal(str(DAYS_PER_UNIT[repeat.periodUnit])))
    return round(float(per_day), 3)


def _route(concept: CodeableConcept) -> str | None:
    for code in _codes(concept, SNOMED):
        if code in ROUTES_SNOMED:
            return ROUTES_SNOMED[code]
    words = (_concept_text(concept) or "").lower()
    if not words:
        return None
    return next((route for word, route in ROUTE_WORDS if word in words), "other")


# -- out: a referral as FHIR resources ----------------------------------------------

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


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


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
        id=referral.id, meta=Meta(lastUpdated=_instant(referral.updated_at)),
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
        authoredOn=_instant(referral.created_at), lastModified=_instant(referral.updated_at),
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
        id=referral.id, meta=Meta(lastUpdated=_instant(referral.updated_at)),
        identifier=[i for i in [identifier_of(session, referral)] if i] or None,
        status=SERVICE_REQUEST_STATUS.get(referral.status, "active"), intent="order",
        category=[CodeableConcept(coding=[Coding(system=PA_CODES, code="PhysicalActivity",
                                                 display="Physical Activity")])],
        priority="urgent" if referral.urgency == "urgent" else "routine",
        code=CodeableConcept(coding=[Coding(system=SNOMED, code="390893007",
                                            display="Referral to physical activity program")],
                             text="Exercise plan for bone health"),
        subject=_patient_reference(referral), authoredOn=_instant(referral.created_at),
        requester=_requester_reference(referral),
        reasonCode=[reason] if reason.coding or reason.text else None)


def document_reference(document: Document, referral: Referral) -> DocumentReference:
    """A referrer document, its bytes at ``Binary/<id>``."""
    title = REFERRER_DOCUMENTS[document.name]
    return DocumentReference(
        id=document.id, status="current", docStatus="final",
        type=CodeableConcept(text=title), description=title,
        subject=_patient_reference(referral), date=_instant(document.created_at),
        content=[DocumentReferenceContent(attachment=Attachment(
            contentType=document.content_type, url=f"Binary/{document.id}",
            size=document.size, title=document.name, creation=_instant(document.created_at)))],
        context=DocumentReferenceContext(related=[
            Reference(reference=f"ServiceRequest/{referral.id}")]))


def binary(document: Document) -> Binary:
    return Binary(id=document.id, contentType=document.content_type,
                  securityContext=Reference(reference=f"ServiceRequest/{document.referral_id}"),
                  data=base64.b64encode(document.content).decode("ascii"))


def searchset(resources: list, *, base: str, self_url: str) -> Bundle:
    return Bundle(type="searchset", total=len(resources),
                  link=[BundleLink(relation="self", url=self_url)],
                  entry=[BundleEntry(fullUrl=f"{base}/{r.get_resource_type()}/{r.id}",
                                     resource=r, search=BundleEntrySearch(mode="match"))
                         for r in resources] or None)


SUBSCRIPTIONS_NOTE = (
    "FHIR Subscriptions are not supported. To hear about status changes without polling, "
    "register a webhook endpoint (Standard Webhooks, signed events with ids and status only) "
    "in the practice portal or with the refflow CLI; then read the Task. See refflow's "
    "docs/integrations.md (FHIR R4, Webhooks).")


def capability_statement(*, base: str, version: str) -> CapabilityStatement:
    """What this endpoint does, exactly: a referral Bundle in (transaction at the
    base, or a message there or at $process-message), Task / ServiceRequest /
    DocumentReference / Binary reads and the Task search by ServiceRequest."""
    read = [CapabilityStatementRestResourceInteraction(code="read")]
    return CapabilityStatement(
        status="active", date=_instant(utcnow()), kind="instance",
        publisher="refflow", fhirVersion=FHIR_VERSION, format=[FHIR_JSON, "json"],
        software=CapabilityStatementSoftware(name="refflow", version=version),
        implementation=CapabilityStatementImplementation(
            description="refflow, a referral recipient for bone-health exercise plans: "
                        "referrals in as FHIR Bundles, their status as Tasks. "
                        + SUBSCRIPTIONS_NOTE,
            url=base),
        rest=[CapabilityStatementRest(
            mode="server",
            documentation="Send a referral as a transaction Bundle (every entry a POST) or a "
                          "message Bundle holding one ServiceRequest (intent order) with an "
                          "identifier, its Patient, the requester, Conditions, a DXA T-score "
                          "Observation and MedicationStatements; the answer is the Task that "
                          "follows it (201, or 200 when that ServiceRequest identifier was "
                          "sent before). Task.businessStatus uses the BSeR codes; the plan "
                          "summary is in Task.output. " + SUBSCRIPTIONS_NOTE,
            security=CapabilityStatementRestSecurity(
                cors=False,
                description="Authorization: Bearer <the practice's refflow API key>. A "
                            "practice sees only its own referrals."),
            interaction=[CapabilityStatementRestInteraction(
                code="transaction", documentation="A referral Bundle (transaction or "
                                                  "message) becomes a referral and its Task")],
            operation=[CapabilityStatementRestResourceOperation(
                name="process-message",
                definition="http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
                documentation="A BSeR-style message Bundle: MessageHeader, its focus the "
                              "ServiceRequest (or a Task whose focus it is)")],
            resource=[
                CapabilityStatementRestResource(
                    type="Task", interaction=[*read, CapabilityStatementRestResourceInteraction(
                        code="search-type")],
                    searchParam=[CapabilityStatementRestResourceSearchParam(
                        name="based-on", type="reference",
                        definition="http://hl7.org/fhir/SearchParameter/Task-based-on",
                        documentation="ServiceRequest/<id>")]),
                CapabilityStatementRestResource(
                    type="ServiceRequest", interaction=read,
                    documentation="Created only from a referral Bundle, conditional on its "
                                  "identifier (the same identifier again is the same "
                                  "referral)"),
                CapabilityStatementRestResource(type="DocumentReference", interaction=read),
                CapabilityStatementRestResource(
                    type="Binary", interaction=read,
                    documentation="The document itself (application/pdf) unless FHIR JSON is "
                                  "asked for in Accept"),
            ])])
