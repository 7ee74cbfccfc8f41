"""The FHIR R4 endpoint at ``/fhir/R4`` (issue 18; ``refflow.interop.fhir`` maps).

- ``GET  /metadata``: the CapabilityStatement (no key needed).
- ``POST /`` (and ``POST /$process-message``): a referral Bundle, transaction
  or message. 201 with the new referral's Task and its Location; 200 with the
  same Task when that ServiceRequest identifier was sent before.
- ``GET /Task/<id>``, ``GET /Task?based-on=ServiceRequest/<id>`` (a searchset),
  ``GET /ServiceRequest/<id>``, ``GET /DocumentReference/<id>`` and
  ``GET /Binary/<id>`` (the PDF itself, or a Binary resource when FHIR JSON is
  asked for).

A practice's API key as ``Authorization: Bearer``; a practice sees only its
own referrals (another's is 404). Bodies are ``application/fhir+json`` (or
``application/json``); every answer is ``application/fhir+json``, every error
an OperationOutcome (``refflow.web.errors.answer_errors_under``). Reads are
on the audit trail like the JSON API's, by id. Ids are refflow's (the
referral's for Task and ServiceRequest, the document's for DocumentReference
and Binary), so no URL carries patient data.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request, url_for
from sqlalchemy.exc import IntegrityError

from refflow import __version__
from refflow.accounts.principal import Principal
from refflow.db.models import AuditEntry
from refflow.intake.validation import clinic_today
from refflow.interop.fhir import capability, referral_in, resources_out
from refflow.interop.fhir.bundle_in import read_bundle
from refflow.interop.fhir.codes import FHIR_JSON
from refflow.interop.fhir.outcome import FhirError, Issue, error_outcome, operation_outcome
from refflow.pipeline import accept as intake
from refflow.referrals import queries
from refflow.web import downloads, refused_reads
from refflow.web.api.referrals import read_json_body
from refflow.web.converters import is_id
from refflow.web.errors import ApiError, answer_errors_under
from refflow.web.principal import require_principal

bp = Blueprint("fhir", __name__, url_prefix="/fhir/R4")
# search parameters a client may send that change nothing here
IGNORED_PARAMETERS = frozenset({"_format", "_pretty"})


@bp.record_once
def _answer_errors(state) -> None:
    answer_errors_under(state.app, bp.url_prefix, error_response)


def error_response(status: int, message: str, *, fields: dict | None = None,
                   headers: dict | None = None) -> Response:
    return _resource(error_outcome(status, message, fields), status, headers)


@bp.errorhandler(FhirError)
def _fhir_error(exc: FhirError) -> Response:
    return _resource(operation_outcome(exc.issues), exc.status)


def _resource(resource, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(resource.model_dump_json(exclude_none=True), status=status,
                        mimetype=FHIR_JSON)
    response.headers.extend(headers or {})
    return response


def _db():
    return current_app.extensions["refflow.db"]


def _settings():
    return current_app.extensions["refflow.settings"]


def _base() -> str:
    return url_for("fhir.capabilities", _external=True).removesuffix("/metadata")


def _practice(session=None) -> Principal:
    """The practice whose API key came as a Bearer token (a browser's session
    cookie is no FHIR client's credential)."""
    if not request.headers.get("Authorization"):
        raise ApiError(401, "send the practice's API key: 'Authorization: Bearer <api key>'",
                       headers={"WWW-Authenticate": 'Bearer realm="refflow"'})
    principal = require_principal(session)
    if principal.practice_id is None:
        raise ApiError(403, "only a referring practice's API key reads and sends referrals")
    return principal


def _audit(session, principal: Principal, action: str, referral_id: str | None,
           resource_type: str) -> None:
    session.add(AuditEntry(actor=principal.actor, action=action, referral_id=referral_id,
                           ip=request.remote_addr, detail=f"fhir {resource_type}"))


@bp.get("/metadata")
def capabilities():
    return _resource(capability.capability_statement(base=_base(), version=__version__))


@bp.post("")
@bp.post("/")
@bp.post("/$process-message")
def receive():
    """A referral Bundle → the referral (same validation and acceptance as the
    JSON API, in one transaction with the key check) → its Task."""
    body = None
    try:
        with _db().session() as session:
            principal = _practice(session)  # 401 before anything is read
            body = read_json_body()
            submitter = intake.Submitter(practice_id=principal.practice_id,
                                         actor=principal.actor, ip=request.remote_addr,
                                         request_id=g.get("request_id"))
            received = referral_in.receive(
                session, submitter, body,
                today=clinic_today(_settings().clinic_timezone),
                clinic_timezone=_settings().clinic_timezone,
                find_problems=current_app.extensions.get("refflow.find_problems"),
                retention=current_app.config["IDEMPOTENCY_RETENTION"])
            task = _task_of(session, principal, received)
    except IntegrityError:
        # another request with the same ServiceRequest identifier committed first
        read = read_bundle(body)
        with _db().session() as session:
            found = referral_in.existing(session, principal.practice_id, read.system, read.value)
            if found is None:
                raise
            received = referral_in.Received(found, created=False)
            task = _task_of(session, principal, received)
    if received.created:
        return _resource(task, 201, {"Location": f"{_base()}/Task/{task.id}"})
    return _resource(task)


def _task_of(session, principal: Principal, received: referral_in.Received):
    referral = queries.visible(session, received.referral_id, principal.practice_id)
    if not received.created:  # the Task of a referral sent before: a read
        _audit(session, principal, "referral.read", referral.id, "Task")
    return resources_out.task(session, referral, clinic_name=_settings().clinic_name)


@bp.get("/Task/<task_id>")
def read_task(task_id: str):
    principal = _practice()
    with _db().session() as session:
        referral = _visible(session, principal, task_id)
        _audit(session, principal, "referral.read", referral.id, "Task")
        return _resource(resources_out.task(session, referral, clinic_name=_settings().clinic_name))


@bp.get("/Task")
def search_tasks():
    """``Task?based-on=ServiceRequest/<id>``: the referral's Task, or none."""
    principal = _practice()
    unknown = sorted(set(request.args) - {"based-on"} - IGNORED_PARAMETERS)
    if unknown or "based-on" not in request.args:
        raise FhirError(400, Issue(
            "search Tasks by based-on=ServiceRequest/<id>, the one search parameter supported"
            + (f" (not supported: {', '.join(unknown)})" if unknown else ""),
            code="not-supported"))
    wanted = request.args["based-on"].rstrip("/").split("/")
    referral_id = wanted[-1] if len(wanted) >= 2 and wanted[-2] == "ServiceRequest" else None
    tasks = []
    with _db().session() as session:
        referral = queries.visible(session, referral_id, principal.practice_id) \
            if is_id(referral_id) else None
        if referral is not None:
            tasks.append(resources_out.task(session, referral, clinic_name=_settings().clinic_name))
        elif referral_id is not None:
            refused_reads.refused(principal.actor, referral_id)
        _audit(session, principal, "referral.read" if referral else "referral.list",
               referral.id if referral else None, "Task search")
    self_url = f"{_base()}/Task?based-on=ServiceRequest/{referral_id}" if referral_id \
        else f"{_base()}/Task"
    return _resource(resources_out.searchset(tasks, base=_base(), self_url=self_url))


@bp.get("/ServiceRequest/<request_id>")
def read_service_request(request_id: str):
    principal = _practice()
    with _db().session() as session:
        referral = _visible(session, principal, request_id)
        _audit(session, principal, "referral.read", referral.id, "ServiceRequest")
        return _resource(resources_out.service_request(session, referral))


@bp.get("/DocumentReference/<document_id>")
def read_document_reference(document_id: str):
    principal = _practice()
    with _db().session() as session:
        document, referral = _visible_document(session, principal, document_id)
        _audit(session, principal, "documents.list", referral.id, "DocumentReference")
        return _resource(resources_out.document_reference(document, referral))


@bp.get("/Binary/<document_id>")
def read_binary(document_id: str):
    """The document's bytes as they are, or a Binary resource when the client
    asks for FHIR JSON first (the FHIR rule for Binary reads)."""
    principal = _practice()
    with _db().session() as session:
        document, referral = _visible_document(session, principal, document_id)
        _audit(session, principal, "document.read", referral.id, "Binary")
        best = request.accept_mimetypes.best_match([document.content_type, FHIR_JSON,
                                                    "application/json"])
        content = downloads.content(document)
        if best in (FHIR_JSON, "application/json"):
            return _resource(resources_out.binary(document, content))
        response = Response(content, mimetype=document.content_type)
    response.headers["Content-Disposition"] = f'inline; filename="{document.name}"'
    response.headers["ETag"] = document.sha256
    return response


def _visible(session, principal: Principal, referral_id: str):
    referral = queries.visible(session, referral_id, principal.practice_id)
    if referral is None:
        refused_reads.refused(principal.actor, referral_id)
        raise ApiError(404, "no such resource (or not this practice's)")
    return referral


def _visible_document(session, principal: Principal, document_id: str):
    found = resources_out.visible_document(session, document_id, principal.practice_id)
    if found is None:
        refused_reads.refused(principal.actor, document_id=document_id)
        raise ApiError(404, "no such resource (or not this practice's)")
    return found
