"""The audit trail as FHIR R4B AuditEvents (``refflow audit export --format fhir``).

One ``audit_trail`` row is one AuditEvent:

- ``type``: DICOM 110114 "User Authentication" for sign-in and sign-out,
  110110 "Patient Record" for anything about a referral, else 110100
  "Application Activity"; ``subtype``: refflow's action (``referral.read``,
  ``referral.read_refused``, ...) in the code system ``urn:refflow:audit-action``.
- ``action``: C, R, U, D or E, from the action's last word.
- ``recorded``: when (UTC, milliseconds); ``outcome``: 0, or 4 (minor failure)
  for what was refused or failed (a refused read, a failed sign-in, ...).
- ``agent``: who (the actor, e.g. ``user:<id>``, ``apikey:<prefix>``,
  ``patient-link:<id>``, as an identifier in ``urn:refflow:audit-actor``),
  ``requestor`` true for a person or a caller's key, and ``network``: the
  client address (type 2, IP address) when there was one.
- ``source``: the refflow service (``observer``: its public URL).
- ``entity``: the referral as ``Task/<id>`` (refflow's FHIR endpoint serves
  it under that id), with the row's ``detail`` (ids only) as its description.

The row's own id is the AuditEvent's id. No patient data is in a row, so none
is in an AuditEvent.
"""

from __future__ import annotations

import datetime as dt

from fhir.resources.R4B.auditevent import (
    AuditEvent,
    AuditEventAgent,
    AuditEventAgentNetwork,
    AuditEventEntity,
    AuditEventSource,
)
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference

from refflow.db.models import AuditEntry

DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ACTION_SYSTEM = "urn:refflow:audit-action"
ACTOR_SYSTEM = "urn:refflow:audit-actor"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"

AUTHENTICATION = Coding(system=DICOM, code="110114", display="User Authentication")
PATIENT_RECORD = Coding(system=DICOM, code="110110", display="Patient Record")
APPLICATION = Coding(system=DICOM, code="110100", display="Application Activity")

# the action's last word -> AuditEvent.action (anything else changes something: U)
READS = frozenset({"read", "view", "list", "page", "read_refused", "ask_birth_date",
                   "expired", "revoked", "unknown"})
CREATES = frozenset({"create", "receive", "add", "new", "referral", "log"})
DELETES = frozenset({"purge"})
EXECUTES = frozenset({"login", "logout", "failed", "delayed", "birth_date_accepted",
                      "birth_date_refused", "throttled"})
# ... and which of them were refused or failed (outcome 4)
FAILURES = frozenset({"read_refused", "failed", "delayed", "birth_date_refused", "throttled",
                      "expired", "revoked", "unknown"})
# actors that are refflow itself, not a person or a caller's key
SYSTEM_ACTORS = ("cli", "retention", "scheduler", "plugins", "intake-rules", "fax:", "system")


def action_code(action: str) -> str:
    verb = action.rsplit(".", 1)[-1]
    if verb in READS:
        return "R"
    if verb in CREATES:
        return "C"
    if verb in DELETES:
        return "D"
    if verb in EXECUTES:
        return "E"
    return "U"


def audit_event(entry: AuditEntry, *, observer: str) -> AuditEvent:
    """The AuditEvent of one audit trail row; ``observer``: the service's public URL."""
    verb = entry.action.rsplit(".", 1)[-1]
    if entry.action.startswith(("login", "logout")):
        kind = AUTHENTICATION
    elif entry.referral_id:
        kind = PATIENT_RECORD
    else:
        kind = APPLICATION
    agent = AuditEventAgent(
        who=Reference(identifier=Identifier(system=ACTOR_SYSTEM, value=entry.actor)),
        requestor=not entry.actor.startswith(SYSTEM_ACTORS),
        network=AuditEventAgentNetwork(address=entry.ip, type="2") if entry.ip else None,
    )
    entity = None
    if entry.referral_id or entry.detail:
        entity = [AuditEventEntity(
            what=Reference(reference=f"Task/{entry.referral_id}") if entry.referral_id else None,
            type=Coding(system=ENTITY_TYPE, code="2", display="System Object")
            if entry.referral_id else None,
            description=entry.detail or None,
        )]
    return AuditEvent(
        id=str(entry.id),
        type=kind,
        subtype=[Coding(system=ACTION_SYSTEM, code=entry.action)],
        action=action_code(entry.action),
        recorded=entry.at.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds"),
        outcome="4" if verb in FAILURES else "0",
        agent=[agent],
        source=AuditEventSource(
            observer=Reference(identifier=Identifier(value=observer), display="refflow"),
            type=[Coding(system=SOURCE_TYPE, code="4", display="Application Server")],
        ),
        entity=entity,
    )

