"""A referral Bundle read into the referral JSON of DESIGN.md.

``read_bundle`` parses a ``transaction`` Bundle (every entry a POST) or a
``message`` Bundle (a MessageHeader first, its focus the ServiceRequest or a
Task whose focus is the ServiceRequest) with the ``fhir.resources`` R4B models
and maps it onto the referral JSON: the ServiceRequest, its identifier, the
Patient and the referrer here, the clinical resources in ``clinical_in``. It
remembers where each field came from, so that refflow's own field errors can
name the FHIR element (``Bundle.entry[1].resource.birthDate`` and
``Patient.birthDate``). Every refusal is a ``FhirError`` (422). Nothing is
stored here (``referral_in``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from refflow.interop.fhir.clinical_in import ClinicalReader
from refflow.interop.fhir.codes import NPI, TASK_CODE
from refflow.interop.fhir.datatypes import codes, date_text, display_name, pick
from refflow.interop.fhir.entries import Entries, Entry, Where
from refflow.interop.fhir.outcome import FhirError, Issue

URGENT_PRIORITIES = frozenset({"urgent", "asap", "stat"})
ORDER_INTENTS = frozenset({"order", "original-order", "filler-order"})


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


class _BundleReader:
    """One Bundle read as a referral."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.entries = Entries(bundle)
        self.origins: dict[str, Where] = {}

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
        diagnosis, clinical, goals = ClinicalReader(self.entries, self.origins,
                                                    patient).read(sr, where)
        if diagnosis:
            data["diagnosis"] = diagnosis
        if clinical:
            data["clinical"] = clinical
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

    def _service_request(self) -> Entry:
        kind = self.bundle.type
        if kind == "transaction":
            for index, entry in enumerate(self.bundle.entry or []):
                method = entry.request.method if entry.request else None
                if method != "POST":
                    raise FhirError(422, Issue(
                        "every entry of a transaction must be a create (request.method POST)",
                        (f"Bundle.entry[{index}].request.method",), "not-supported"))
            requests = self.entries.of_type("ServiceRequest")
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

    def _message_focus(self) -> Entry:
        first = self.entries.all[0] if self.entries.all else None
        if first is None or first.index != 0 or first.type != "MessageHeader":
            raise FhirError(422, Issue("a message Bundle starts with its MessageHeader",
                                       ("Bundle.entry[0].resource",), "structure"))
        for ref in first.resource.focus or []:
            target = self.entries.resolve(ref)
            if target is not None and target.type == "Task":
                target = self.entries.resolve(target.resource.focus)
            if target is not None and target.type == "ServiceRequest":
                return target
        requests = self.entries.of_type("ServiceRequest")
        if len(requests) == 1:
            return requests[0]
        raise FhirError(422, Issue("the MessageHeader's focus must be the ServiceRequest "
                                   "(or a Task whose focus it is)",
                                   first.where.at("focus").expression, "required"))

    def _check_task(self, request: Entry) -> None:
        for task in self.entries.of_type("Task"):
            task_codes = codes(task.resource.code, TASK_CODE)
            if task.resource.code is not None and "fulfill" not in task_codes:
                raise FhirError(422, Issue("a Task in the referral must have the code fulfill",
                                           task.where.at("code").expression, "value"))
            if self.entries.resolve(task.resource.focus) is not request:
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

    def _patient(self, sr: ServiceRequest, where: Where) -> Entry:
        patient = self.entries.resolve(sr.subject)
        if patient is None or patient.type != "Patient":
            raise FhirError(422, Issue("the ServiceRequest's subject must reference the "
                                       "Patient in the Bundle",
                                       where.at("subject").expression, "required"))
        return patient

    def _patient_json(self, patient: Entry) -> dict:
        p, where = patient.resource, patient.where
        out: dict = {}
        self.origins["patient"] = where
        name_index, name = pick(p.name, lambda n: n.use == "official",
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
            out["birth_date"] = date_text(p.birthDate)
        self.origins["patient.sex"] = where.at("gender")
        if p.gender:
            out["sex"] = p.gender
        out.update(self._telecom(p.telecom, where, "patient", ("phone", "email")))
        k, comm = pick(p.communication, lambda c: c.preferred, lambda c: True)
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
            k, point = pick(telecom, lambda t, kind=kind: t.system == kind and t.value
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
        target = self.entries.resolve(reference)
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
            practitioner = self.entries.resolve(target.resource.practitioner)
            if practitioner is not None:
                resources.append(practitioner)
        kinds = ["phone", "fax", "email"]
        for item in resources:  # the role's details first, then the practitioner's
            r, at = item.resource, item.where
            if "name" not in out:
                name = display_name(r)
                if name:
                    out["name"] = name
                    self.origins["referrer.name"] = at.at("name")
            if "npi" not in out:
                k, ident = pick(getattr(r, "identifier", None),
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
