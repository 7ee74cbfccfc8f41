"""The CapabilityStatement: exactly what the FHIR endpoint does."""

from __future__ import annotations

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

from refflow.db.models import utcnow
from refflow.interop.fhir.codes import FHIR_JSON, FHIR_VERSION
from refflow.interop.fhir.datatypes import instant

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
        status="active", date=instant(utcnow()), kind="instance",
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
                          "identifier, its Patient, the requester, Conditions (fractures "
                          "among them, by ICD-10-CM or SNOMED CT code), a DXA T-score "
                          "Observation, MedicationStatements and, for no known fractures, "
                          "an empty List coded SNOMED CT 125605004 with emptyReason "
                          "nilknown; the answer is the Task that follows it (201, or 200 "
                          "when that ServiceRequest identifier was sent before). "
                          "Task.businessStatus uses the BSeR codes; the plan summary is in "
                          "Task.output. " + SUBSCRIPTIONS_NOTE,
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
