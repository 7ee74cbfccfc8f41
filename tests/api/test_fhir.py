"""The FHIR R4 endpoint (issue 18): a Physical-Activity-IG-shaped referral
Bundle becomes a referral and a Task that follows it to completed with the
plan summary in Task.output; the same Bundle again is the same Task; errors
are OperationOutcomes naming the element; a practice sees only its own; every
resource refflow answers parses back with the ``fhir.resources`` R4B models.

The Bundle (``fhir_examples/osteoporosis-referral-transaction.json``) is
written after the HL7 US Physical Activity IG's referral examples (a PA
ServiceRequest "Referral to physical activity program" with a PA Task for
referral management, Scenario 3), for an osteoporosis patient: a US Core
Patient, the requester as PractitionerRole + Practitioner with an NPI, the
osteoporosis Condition (ICD-10-CM and SNOMED CT) as the reason, two more
Conditions, two DXA T-score Observations, a MedicationStatement and a Goal.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from fhir.resources.R4B.binary import Binary
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from sqlalchemy import func, select

from refflow.db.models import AuditEntry, Delivery, FhirRequest, Referral, ReferralEvent
from refflow.interop.fhir.bundle_in import read_bundle
from refflow.interop.fhir.codes import BSER_STATUS
from refflow.interop.fhir.outcome import FhirError
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline

EXAMPLES = Path(__file__).parent / "fhir_examples"
FHIR_JSON = "application/fhir+json"
BASE = "/fhir/R4"
PATIENT = "urn:uuid:6f1c9a0e-3d4b-4c1e-9a57-0b6c1d2e3f02"  # the example Bundle's Patient


@pytest.fixture
def bundle() -> dict:
    return json.loads((EXAMPLES / "osteoporosis-referral-transaction.json").read_text())


@pytest.fixture
def no_known_fractures() -> dict:
    """The Bundle entry of a List saying the patient has no known fractures."""
    return json.loads((EXAMPLES / "no-known-fractures-list.json").read_text())


def condition(code: dict, onset: str | None = "2025-06-02", n: int = 0) -> dict:
    """A Bundle entry of a Condition of the example's patient."""
    resource = {"resourceType": "Condition",
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed"}]},
                "code": code, "subject": {"reference": PATIENT}}
    if onset:
        resource["onsetDateTime"] = onset
    return {"fullUrl": f"urn:uuid:0f5e8a2c-0000-4000-8000-{n:012d}", "resource": resource,
            "request": {"method": "POST", "url": "Condition"}}


def icd10(code: str, display: str | None = None) -> dict:
    return {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code,
                        **({"display": display} if display else {})}]}


def snomed(code: str, display: str) -> dict:
    return {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}


VERTEBRAL_M80 = icd10("M80.08XA", "Age-related osteoporosis with current pathological "
                      "fracture, vertebra(e), initial encounter for fracture")


def parsed(model, response, status: int = 200):
    """The answer as the R4B model (it must parse), after its status and type."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    resource = model.model_validate_json(response.get_data())
    # the JSON we sent is the JSON the model writes back: nothing dropped or renamed
    assert json.loads(resource.model_dump_json(exclude_none=True)) == response.get_json()
    return resource


def outcome(response, status: int) -> OperationOutcome:
    result = parsed(OperationOutcome, response, status)
    assert all(issue.severity == "error" for issue in result.issue)
    return result


def expressions(result: OperationOutcome) -> list[str]:
    return [e for issue in result.issue for e in issue.expression or []]


def post(client, body, auth, **kwargs):
    return client.post(BASE, data=json.dumps(body), headers=auth,
                       content_type=kwargs.pop("content_type", FHIR_JSON), **kwargs)


def business_status(task: Task) -> tuple[str, str]:
    coding = task.businessStatus.coding[0]
    assert coding.system == BSER_STATUS
    return task.status, coding.code


def deliver_all(p, db, referral_id: str) -> None:
    with db.session() as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.referral_id == referral_id)).all()
    for delivery_id in ids:
        flow.deliver(p, delivery_id)


def test_capability_statement_says_what_is_supported(client):
    response = client.get(f"{BASE}/metadata")  # no key needed to learn what is here
    statement = parsed(CapabilityStatement, response)
    assert statement.fhirVersion == "4.0.1" and statement.kind == "instance"
    assert "application/fhir+json" in statement.format
    rest = statement.rest[0]
    assert {r.type: sorted(i.code for i in r.interaction) for r in rest.resource} == {
        "Task": ["read", "search-type"], "ServiceRequest": ["read"],
        "DocumentReference": ["read"], "Binary": ["read"]}
    task = next(r for r in rest.resource if r.type == "Task")
    assert [p.name for p in task.searchParam] == ["based-on"]
    assert [i.code for i in rest.interaction] == ["transaction"]
    assert [o.name for o in rest.operation] == ["process-message"]
    assert "Subscriptions are not supported" in rest.documentation
    assert "webhook" in statement.implementation.description
    assert "Bearer" in rest.security.description


def test_bundle_becomes_a_referral_whose_task_reaches_completed(client, auth, practice, bundle,
                                                                settings, db):
    created = post(client, bundle, auth)
    task = parsed(Task, created, 201)
    referral_id = task.id
    assert created.headers["Location"].endswith(f"{BASE}/Task/{referral_id}")
    assert business_status(task) == ("received", "2.0")
    assert task.intent == "order" and task.code.coding[0].code == "fulfill"
    assert task.focus.reference == task.basedOn[0].reference == f"ServiceRequest/{referral_id}"
    assert task.for_fhir.display == "Ann Lee" and task.output is None
    assert task.requester.identifier.value == "1234567893"
    assert task.identifier[0].value == "REF-2026-0417"

    # what the Bundle said is the referral the JSON API would have stored
    with db.session() as session:
        row = session.get(Referral, referral_id)
        assert row.practice_id == practice[0] and row.external_id == "REF-2026-0417"
        payload = row.payload
    assert payload["patient"] == {
        "given_name": "Ann", "family_name": "Lee", "birth_date": "1951-03-02", "sex": "female",
        "phone": "+17635550100", "email": "ann@example.org", "preferred_language": "en-US"}
    assert payload["referrer"] == {"name": "Dr. R. Patel", "npi": "1234567893",
                                   "phone": "+17635550199", "fax": "+17635550198",
                                   "email": "office@example.org"}
    assert payload["diagnosis"] == {"codes": ["M81.0"], "text": "Postmenopausal osteoporosis"}
    clinical = payload["clinical"]
    assert clinical["t_score"] == -2.7  # the lowest of the two DXA T-scores
    assert clinical["conditions"] == [
        {"text": "Hypertension", "code": "I10", "status": "active", "since": "2015-03-01"},
        {"text": "Low back pain", "code": "M54.50", "status": "resolved",
         "since": "2022-01-15"}]
    assert clinical["medications"] == [{"name": "Alendronate 70 mg tablet",
                                        "dose_mg_per_day": 10.0, "since": "2024-06-01",
                                        "route": "oral"}]
    assert payload["goals"] == ["Walk to the store and back without stopping"]
    assert payload["notes"].startswith("Prefers morning sessions")

    # the same Bundle again: the same Task, 200, one referral
    again = post(client, bundle, auth)
    assert parsed(Task, again).id == referral_id
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
        assert session.scalar(select(func.count()).select_from(FhirRequest)) == 1

    def read_task() -> Task:
        return parsed(Task, client.get(f"{BASE}/Task/{referral_id}", headers=auth))

    # no fracture history in the Bundle: the engine holds the plan for a clinician
    p = Pipeline(settings, db=db)
    assert flow.build_plan(p, referral_id) == "needs_review"
    held = read_task()
    assert business_status(held) == ("accepted", "3.0")
    assert held.businessStatus.text == "Held for review"
    staff_actions.approve(p, referral_id, actor="user:physio")
    assert business_status(read_task()) == ("in-progress", "5.x")
    assert flow.render_documents(p, referral_id) == "delivering"
    deliver_all(p, db, referral_id)

    done = read_task()
    assert business_status(done) == ("completed", "7.0")
    assert done.businessStatus.text == "Plan released"
    [output] = done.output
    assert output.type.text == "Exercise plan summary"
    reference = output.valueReference.reference
    assert reference.startswith("DocumentReference/")

    document = parsed(DocumentReference, client.get(f"{BASE}/{reference}", headers=auth))
    attachment = document.content[0].attachment
    assert attachment.contentType == "application/pdf"
    assert document.context.related[0].reference == f"ServiceRequest/{referral_id}"
    pdf = client.get(f"{BASE}/{attachment.url}", headers=auth)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF") and len(pdf.data) == attachment.size
    as_json = client.get(f"{BASE}/{attachment.url}", headers={**auth, "Accept": FHIR_JSON})
    assert parsed(Binary, as_json).data == pdf.data  # the model holds the decoded bytes
    assert base64.b64decode(as_json.get_json()["data"]) == pdf.data

    request = parsed(ServiceRequest, client.get(f"{BASE}/ServiceRequest/{referral_id}",
                                                headers=auth))
    assert request.status == "completed" and request.intent == "order"
    assert (request.identifier[0].system, request.identifier[0].value) == (
        "http://north-family-medicine.example.org/fhir/referral-id", "REF-2026-0417")
    assert request.reasonCode[0].coding[0].code == "M81.0"

    found = parsed(Bundle, client.get(f"{BASE}/Task?based-on=ServiceRequest/{referral_id}",
                                      headers=auth))
    assert found.type == "searchset" and found.total == 1
    assert found.entry[0].resource.id == referral_id
    assert found.entry[0].fullUrl.endswith(f"{BASE}/Task/{referral_id}")
    assert parsed(Bundle, client.get(f"{BASE}/Task?based-on=ServiceRequest/{'0' * 8}-0000-"
                                     "0000-0000-000000000000", headers=auth)).total == 0

    # every read is on the audit trail, by id
    with db.session() as session:
        reads = session.execute(select(AuditEntry.action, AuditEntry.detail).where(
            AuditEntry.referral_id == referral_id, AuditEntry.detail.like("fhir %"))).all()
    assert {("referral.read", "fhir Task"), ("referral.read", "fhir ServiceRequest"),
            ("documents.list", "fhir DocumentReference"), ("document.read", "fhir Binary"),
            ("referral.read", "fhir Task search")} <= set(reads)


def message_bundle(transaction: dict) -> dict:
    """The same referral as a BSeR-style message: a MessageHeader (event: REF/RRI
    patient referral) whose focus is the Task, whose focus is the ServiceRequest."""
    entries = [{k: v for k, v in e.items() if k != "request"} for e in transaction["entry"]]
    task = next(e for e in entries if e["resource"]["resourceType"] == "Task")
    header = {"fullUrl": "urn:uuid:0c5a7d3e-88a1-4f55-9e0d-5b1f2a3c4d5e", "resource": {
        "resourceType": "MessageHeader",
        "eventCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0003",
                        "code": "I12", "display": "REF/RRI - Patient referral"},
        "source": {"name": "North Family Medicine EHR",
                   "endpoint": "https://ehr.north-family-medicine.example.org/fhir"},
        "focus": [{"reference": task["fullUrl"]}]}}
    return {"resourceType": "Bundle", "type": "message", "identifier": {
        "system": "urn:ietf:rfc:3986", "value": "urn:uuid:5b0f0e63-0c0e-4a1e-8b54-7f9a1c2d3e4f"},
        "timestamp": "2026-12-01T09:30:00-06:00", "entry": [header, *entries]}


def test_message_bundle_at_process_message(client, auth, bundle, db):
    message = message_bundle(bundle)
    task = parsed(Task, client.post(f"{BASE}/$process-message", data=json.dumps(message),
                                    headers=auth, content_type=FHIR_JSON), 201)
    assert business_status(task) == ("received", "2.0")
    # the base takes the message too; the same ServiceRequest identifier is the same Task
    assert parsed(Task, post(client, message, auth)).id == task.id
    assert parsed(Task, post(client, bundle, auth)).id == task.id  # or as a transaction
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1


@pytest.mark.parametrize("birth_date, message", [
    ("2090-01-01", "birth date is in the future"),  # refflow's rule, mapped back
    ("1951-13-02", "Date value string does not match spec regex."),  # the FHIR parser's
    ("1951", "not a date: give it as YYYY-MM-DD"),  # a FHIR partial date: not a day
])
def test_a_bad_birth_date_is_an_operation_outcome_naming_the_element(client, auth, bundle, db,
                                                                     birth_date, message):
    bundle["entry"][1]["resource"]["birthDate"] = birth_date
    result = outcome(post(client, bundle, auth), 422)
    [issue] = result.issue
    assert issue.expression == ["Bundle.entry[1].resource.birthDate", "Patient.birthDate"]
    assert issue.details.text == message
    assert birth_date not in result.model_dump_json()  # values are never echoed
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 0


def test_refflow_errors_name_the_element_they_came_from(client, auth, bundle):
    broken = copy.deepcopy(bundle)
    broken["entry"][5]["resource"]["code"]["coding"][0]["code"] = "hypertension!"
    broken["entry"][3]["resource"]["identifier"][0]["value"] = "1234567890"  # bad check digit
    del broken["entry"][1]["resource"]["gender"]
    result = outcome(post(client, broken, auth), 422)
    assert sorted(expressions(result)) == sorted([
        "Bundle.entry[5].resource.code.coding[0].code", "Condition.code.coding[0].code",
        "Bundle.entry[3].resource.identifier[0].value", "Practitioner.identifier[0].value",
        "Bundle.entry[1].resource.gender", "Patient.gender"])
    by_path = {i.expression[0]: i for i in result.issue}
    assert by_path["Bundle.entry[1].resource.gender"].code == "required"
    assert by_path["Bundle.entry[3].resource.identifier[0].value"].details.text == \
        "NPI check digit does not match"


@pytest.mark.parametrize("change, expression, words", [
    (lambda b: b["entry"][0]["resource"].pop("identifier"),
     "Bundle.entry[0].resource.identifier", "needs an identifier"),
    (lambda b: b["entry"][0]["resource"].update(intent="plan"),
     "Bundle.entry[0].resource.intent", "intent must be order"),
    (lambda b: b["entry"][2]["request"].update(method="PUT"),
     "Bundle.entry[2].request.method", "must be a create"),
    (lambda b: b.update(type="batch"), "Bundle.type", "transaction or message"),
    (lambda b: b["entry"][11]["resource"].update(
        focus={"reference": "urn:uuid:6f1c9a0e-3d4b-4c1e-9a57-0b6c1d2e3f02"}),
     "Bundle.entry[11].resource.focus", "focus must be the ServiceRequest"),
    (lambda b: b["entry"].append({"fullUrl": "urn:uuid:1d7e2f3a-0000-4000-8000-000000000001",
                                  "resource": {"resourceType": "Patient", "gender": "male"},
                                  "request": {"method": "POST", "url": "Patient"}})
     or b["entry"][5]["resource"].update(
         subject={"reference": "urn:uuid:1d7e2f3a-0000-4000-8000-000000000001"}),
     "Bundle.entry[5].resource.subject", "another patient"),
    (lambda b: b["entry"][0]["resource"].update(colour="blue"),
     "Bundle.entry[0].resource.colour", "Extra inputs are not permitted"),
])
def test_bundle_shape_errors(client, auth, bundle, change, expression, words):
    change(bundle)
    result = outcome(post(client, bundle, auth), 422)
    assert expression in expressions(result)
    assert any(words in issue.details.text for issue in result.issue)


def test_a_practice_sees_only_its_own(client, auth, bundle, make_practice, settings, db):
    task = parsed(Task, post(client, bundle, auth), 201)
    other = {"Authorization": f"Bearer {make_practice('South Clinic')[1]}"}
    for path in (f"Task/{task.id}", f"ServiceRequest/{task.id}"):
        result = outcome(client.get(f"{BASE}/{path}", headers=other), 404)
        assert result.issue[0].code == "not-found"
    assert parsed(Bundle, client.get(f"{BASE}/Task?based-on=ServiceRequest/{task.id}",
                                     headers=other)).total == 0
    # its documents too, once there are some
    p = Pipeline(settings, db=db)
    flow.build_plan(p, task.id)
    staff_actions.approve(p, task.id, actor="user:physio")
    flow.render_documents(p, task.id)
    done = parsed(Task, client.get(f"{BASE}/Task/{task.id}", headers=auth))
    reference = done.output[0].valueReference.reference
    document_id = reference.split("/")[1]
    for path in (reference, f"Binary/{document_id}"):
        assert client.get(f"{BASE}/{path}", headers=auth).status_code == 200
        outcome(client.get(f"{BASE}/{path}", headers=other), 404)
    # the same ServiceRequest identifier from another practice is that practice's referral
    theirs = parsed(Task, post(client, bundle, other), 201)
    assert theirs.id != task.id


def test_declined_and_cancelled_tasks_say_why(client, auth, bundle, settings, db):
    p = Pipeline(settings, db=db)
    declined = parsed(Task, post(client, bundle, auth), 201)
    flow.build_plan(p, declined.id)
    staff_actions.reject(p, declined.id, actor="user:physio",
                         note="Needs the surgeon's written hip precautions first.")
    task = parsed(Task, client.get(f"{BASE}/Task/{declined.id}", headers=auth))
    assert business_status(task) == ("rejected", "4.0")
    assert task.statusReason.text == "Needs the surgeon's written hip precautions first."
    assert [o.type.text for o in task.output or []] == ["Referral not accepted letter"]
    request = parsed(ServiceRequest, client.get(f"{BASE}/ServiceRequest/{declined.id}",
                                                headers=auth))
    assert request.status == "revoked"

    bundle["entry"][0]["resource"]["identifier"][0]["value"] = "REF-2026-0418"
    cancelled = parsed(Task, post(client, bundle, auth), 201)
    assert client.post(f"/api/v1/referrals/{cancelled.id}/cancel", headers=auth).status_code \
        == 200
    task = parsed(Task, client.get(f"{BASE}/Task/{cancelled.id}", headers=auth))
    assert business_status(task) == ("cancelled", "6.0")
    assert task.statusReason.text.startswith("This referral was cancelled")


def test_errors_are_operation_outcomes(client, auth, bundle, settings):
    task_path = f"{BASE}/Task/{'0' * 8}-0000-0000-0000-000000000000"
    result = outcome(client.get(task_path), 401)  # no key
    assert result.issue[0].code == "login"
    assert outcome(client.get(task_path, headers={"Authorization": "Bearer rf_nope"}), 401)
    assert outcome(post(client, bundle, {}), 401)
    assert outcome(client.get(task_path, headers=auth), 404).issue[0].code == "not-found"
    outcome(client.get(f"{BASE}/Task/not-a-refflow-id", headers=auth), 404)  # no route
    outcome(client.get(f"{BASE}/Patient/123", headers=auth), 404)
    result = outcome(client.delete(task_path, headers=auth), 405)
    assert result.issue[0].code == "not-supported"
    outcome(post(client, bundle, auth, content_type="text/plain"), 415)
    assert post(client, bundle, auth, content_type="application/json").status_code == 201
    outcome(client.post(BASE, data=b"{" * 10, headers=auth, content_type=FHIR_JSON), 400)
    big = {"resourceType": "Bundle", "type": "transaction",
           "entry": [{"resource": {"resourceType": "Basic", "code": {"text": "x" * 1000}}}]
           * (settings.max_body_bytes // 1000)}
    outcome(post(client, big, auth), 413)
    outcome(post(client, {"resourceType": "Patient"}, auth), 422)
    bundle["entry"][1]["resource"]["name"][0]["family"] = "Lee\u0000"
    result = outcome(post(client, bundle, auth), 422)  # no database column takes a NUL
    assert expressions(result) == ["Bundle.entry[1].resource.name[0].family"]
    result = outcome(client.get(f"{BASE}/Task?status=completed", headers=auth), 400)
    assert "based-on" in result.issue[0].details.text


def test_concurrent_posts_of_one_bundle_make_one_referral(live_server, auth, bundle, db):
    """Twelve EHR retries at once over real HTTP: one 201, the rest 200 with the
    same Task, never two referrals. On PostgreSQL the twelve really race (the
    key was used a moment ago, so no update of its last use queues them): the
    losers' inserts meet the unique identifier and are answered with the
    winner's Task."""
    requests.get(f"{live_server}{BASE}/Task/{'0' * 8}-0000-0000-0000-000000000000",
                 headers=auth, timeout=60)
    start = threading.Barrier(12)

    def submit(_):
        with requests.Session() as http:
            start.wait()
            r = http.post(f"{live_server}{BASE}", data=json.dumps(bundle),
                          headers={**auth, "Content-Type": FHIR_JSON}, timeout=60)
            return r.status_code, Task.model_validate_json(r.content).id

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(submit, range(12)))
    assert sorted(status for status, _ in answers) == [200] * 11 + [201], answers
    assert len({task_id for _, task_id in answers}) == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
        assert session.scalar(select(func.count()).select_from(FhirRequest)) == 1


def test_bundles_count_on_the_intake_rate_limit(settings, auth, bundle, referral_body):
    """A practice's FHIR Bundles and JSON referrals share its intake limit; the
    429 is an OperationOutcome with Retry-After."""
    from refflow.app import create_app

    client = create_app(settings.with_overrides(intake_rate_limit="2/minute"),
                        {"TESTING": True}).test_client()
    assert client.post("/api/v1/referrals", json=referral_body, headers=auth).status_code == 202
    assert post(client, bundle, auth).status_code == 201
    limited = post(client, bundle, auth)
    result = outcome(limited, 429)
    assert result.issue[0].code == "throttled" and int(limited.headers["Retry-After"]) >= 1


def test_no_known_fractures_releases_the_plan_without_review(client, auth, bundle,
                                                              no_known_fractures, settings, db):
    """The example Bundle with the List saying "no known fractures": the
    fracture history is known (none), so nothing holds the plan for a
    clinician: it goes out and the Task reaches completed with no approval."""
    bundle["entry"].append(no_known_fractures)
    task = parsed(Task, post(client, bundle, auth), 201)
    with db.session() as session:
        clinical = session.get(Referral, task.id).payload["clinical"]
    assert clinical["fractures"] == []
    assert len(clinical["conditions"]) == 2  # the rest is read as before

    p = Pipeline(settings, db=db)
    assert flow.build_plan(p, task.id) == "delivering"
    plan = client.get(f"/api/v1/referrals/{task.id}/plan", headers=auth).get_json()
    assert plan["decision"] == "release"
    assert plan["risk"]["bone_category"] == "B"  # osteoporosis; not C for an unknown history
    assert "missing_fracture_history" not in {f["code"] for f in plan["flags"]}
    assert business_status(parsed(Task, client.get(f"{BASE}/Task/{task.id}", headers=auth))) \
        == ("in-progress", "5.x")
    deliver_all(p, db, task.id)
    done = parsed(Task, client.get(f"{BASE}/Task/{task.id}", headers=auth))
    assert business_status(done) == ("completed", "7.0")
    assert done.businessStatus.text == "Plan released"
    assert [o.type.text for o in done.output] == ["Exercise plan summary"]
    with db.session() as session:
        statuses = session.scalars(select(ReferralEvent.to_status).where(
            ReferralEvent.referral_id == task.id)).all()
    assert "needs_review" not in statuses  # never held, never approved


def test_a_vertebral_fracture_condition_is_planned_as_a_vertebral_fracture(client, auth, bundle,
                                                                          settings, db):
    """An M80.08 Condition (osteoporosis with a current vertebral fracture)
    becomes a dated low-trauma vertebral fracture in the referral, and the plan
    is the one the engine makes for that fracture sent through the JSON API."""
    bundle["entry"].append(condition(VERTEBRAL_M80, onset="2025-06-02"))
    task = parsed(Task, post(client, bundle, auth), 201)
    with db.session() as session:
        payload = session.get(Referral, task.id).payload
    assert payload["clinical"]["fractures"] == [
        {"site": "vertebral", "date": "2025-06-02", "low_trauma": True}]
    assert payload["diagnosis"]["codes"] == ["M81.0", "M80.08XA"]
    assert [c["code"] for c in payload["clinical"]["conditions"]] == ["I10", "M54.50"]

    same = {k: v for k, v in payload.items() if k != "external_id"}
    sent = client.post("/api/v1/referrals", json=same, headers=auth)
    assert sent.status_code == 202, sent.get_json()
    p = Pipeline(settings, db=db)
    plans = []
    for referral_id in (task.id, sent.get_json()["id"]):
        flow.build_plan(p, referral_id)
        plans.append(client.get(f"/api/v1/referrals/{referral_id}/plan", headers=auth)
                     .get_json())
    from_fhir, from_json = plans
    assert from_fhir["risk"]["bone_category"] == "C"
    assert "low-trauma vertebral fracture" in from_fhir["risk"]["reasons"]
    for key in ("decision", "risk", "flags", "exercises", "excluded_exercises",
                "rules_applied", "precautions"):
        assert from_fhir[key] == from_json[key], key
    assert "no_loaded_or_end_range_flexion" in {r["rule"] for r in from_fhir["rules_applied"]}


@pytest.mark.parametrize("code, fracture", [
    (icd10("S72.001A"), {"site": "hip"}),
    (icd10("S5250XD"), {"site": "wrist"}),  # written without its dot
    (icd10("S32.10XA"), {"site": "pelvis"}),
    (icd10("S22.31XA"), {"site": "rib"}),
    (icd10("S82.841A"), {"site": "ankle"}),
    (icd10("S42.201A"), {"site": "humerus"}),
    (icd10("S42.001A"), {"site": "other"}),  # clavicle
    (icd10("M48.56XA"), {"site": "vertebral"}),
    (icd10("M80.051A"), {"site": "hip", "low_trauma": True}),
    (icd10("M80.832A"), {"site": "wrist", "low_trauma": True}),
    (snomed("5913000", "Fracture of neck of femur"), {"site": "hip"}),
    (snomed("42942008", "Compression fracture of vertebral column"), {"site": "vertebral"}),
    (snomed("704328003", "Osteoporotic fracture of ankle"), {"site": "ankle", "low_trauma": True}),
])
def test_fracture_codes_become_sites(bundle, no_known_fractures, code, fracture):
    bundle["entry"] += [condition(code), no_known_fractures]  # the Condition wins
    read = read_bundle(bundle)
    assert read.data["clinical"]["fractures"] == [{**fracture, "date": "2025-06-02"}]
    assert read.origins["clinical.fractures.0.site"].resource == "Condition.code.coding[0].code"
    assert len(read.data["clinical"]["conditions"]) == 2  # not repeated as a condition


@pytest.mark.parametrize("code", [
    icd10("M80.00XA"),  # osteoporosis with a pathological fracture, site unspecified
    icd10("Z87.310"),  # personal history of (healed) osteoporosis fracture
    icd10("S32.9XXA"),  # unspecified parts of lumbosacral spine and pelvis
    snomed("443165006", "Osteoporotic fracture of bone"),
    {"text": "Colles' fracture, 2019"},  # words alone
])
def test_a_fracture_refflow_cannot_place_leaves_the_history_unknown(bundle, no_known_fractures,
                                                                    code):
    """One fracture without a site: no fracture history is written, not even
    the List's "none" (the engine then treats the history as the cautious case)."""
    bundle["entry"] += [condition(VERTEBRAL_M80), condition(code, n=1), no_known_fractures]
    assert "fractures" not in read_bundle(bundle).data["clinical"]


def test_what_the_no_known_fractures_list_must_be(bundle, no_known_fractures):
    listed = no_known_fractures["resource"]
    bundle["entry"].append(no_known_fractures)
    assert read_bundle(bundle).data["clinical"]["fractures"] == []
    for change in ({"emptyReason": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                        "code": "notasked"}]}},  # not asked is not "none"
                   {"status": "entered-in-error"},
                   {"code": {"text": "Problems"}}):  # not a list of fractures
        bundle["entry"][-1]["resource"] = {**listed, **change}
        assert "fractures" not in read_bundle(bundle).data["clinical"]
    bundle["entry"][-1]["resource"] = {
        **listed, "entry": [{"item": {"reference": "urn:uuid:6f1c9a0e-3d4b-4c1e-9a57-0b6c1d2e3f05"}}]}
    with pytest.raises(FhirError) as refused:
        read_bundle(bundle)
    assert refused.value.issues[0].expression == ("Bundle.entry[12].resource.entry", "List.entry")


def test_a_bad_fracture_date_names_the_conditions_onset(client, auth, bundle):
    bundle["entry"].append(condition(VERTEBRAL_M80, onset="2090-01-01"))
    result = outcome(post(client, bundle, auth), 422)
    assert expressions(result) == ["Bundle.entry[12].resource.onsetDateTime",
                                   "Condition.onsetDateTime"]
