"""OpenAPI 3.1 description of the HTTP API (served at ``GET /api/v1/openapi.json``).

The request body of ``POST /api/v1/referrals`` is generated from the same
pydantic ``Referral`` model the API validates with; the plan is the plan
engine's own JSON Schema. Every operation lists every status it can answer,
and every error uses the one envelope ``{"error": {"code", "message", "fields"}}``.
"""

from __future__ import annotations

import copy
from functools import lru_cache

from refflow import __version__

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    out = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


ERROR_TEXT = {
    400: "Malformed request (bad JSON, bad query parameter, bad Idempotency-Key)",
    401: "No or unknown credentials",
    403: "Authenticated, but not allowed to do this",
    404: "No such resource (or not visible to this caller)",
    409: "Conflict with the current state (or an Idempotency-Key still in flight)",
    412: "`version_conflict`: the plan changed since the version named in If-Match",
    413: "Request body larger than the configured limit",
    415: "Content-Type is not application/json",
    422: "Validation failed; `fields` names each bad field (values are never echoed)",
    428: "`precondition_required`: send If-Match with the plan version's ETag",
    429: "Rate limited; retry after `Retry-After` seconds",
    500: "Internal error; nothing was half-written",
    503: "A dependency (database) is unavailable; retry later",
}


def _errors(*statuses: int) -> dict:
    out = {}
    for status in statuses:
        headers = None
        if status == 429:
            headers = {"Retry-After": {"description": "Seconds to wait before retrying",
                                       "schema": {"type": "string"}}}
        if status == 401:
            headers = {"WWW-Authenticate": {"description": "The expected scheme",
                                            "schema": {"type": "string"}}}
        out[str(status)] = _json(_ref("Error"), ERROR_TEXT[status], headers)
    return out


COMMON = (401, 500, 503)
READ = (*COMMON, 404)
WRITE_BODY = (400, 413, 415, 422)

REFERRAL_ID = {"name": "referral_id", "in": "path", "required": True,
               "schema": {"type": "string", "maxLength": 64}}
DELIVERY_ID = {"name": "delivery_id", "in": "path", "required": True,
               "schema": {"type": "string", "maxLength": 64}}
FAX_ID = {"name": "fax_id", "in": "path", "required": True,
          "schema": {"type": "string", "maxLength": 64}}
FAX_STATES = ("received", "read", "referral", "attached", "archived")  # faxin.inbox.STATUSES

PRACTICE_OR_STAFF = [{"apiKey": []}, {"session": []}]
ETAG = {"ETag": {"description": "The plan's version, quoted (send it back in If-Match)",
                  "schema": {"type": "string"}}}
STAFF = [{"session": []}]


def _schemas(states: tuple[str, ...]) -> dict:
    from refflow.intake.schemas import Referral
    from refflow.planning.schema import PLAN_SCHEMA

    referral = Referral.model_json_schema(ref_template=REF)
    schemas = referral.pop("$defs", {})
    schemas["Referral"] = referral
    plan = copy.deepcopy(PLAN_SCHEMA)
    plan.pop("$schema", None)
    plan.pop("$id", None)
    schemas["Plan"] = plan
    nullable_str = {"type": ["string", "null"]}
    dt_str = {"type": "string", "format": "date-time"}
    status = {"type": "string", "enum": list(states)}
    problem = {"type": "object", "required": ["code", "severity", "message"],
               "properties": {"code": {"type": "string"},
                              "severity": {"type": "string",
                                           "enum": ["reject", "needs_review", "caution", "info"]},
                              "message": {"type": "string"}, "field": {"type": "string"},
                              "source": {"type": "string"},
                              "duplicate_of": {
                                  "type": "string", "format": "uuid",
                                  "description": "possible_duplicate: the earlier referral "
                                                 "with the same external_id"}}}
    links = {"type": "object", "additionalProperties": {"type": "string"}}
    schemas.update({
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": False,
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "fields"],
                "additionalProperties": False,
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "fields": {"type": "object",
                                          "additionalProperties": {"type": "string"}}}}}},
        "Problem": problem,
        "ReferralAccepted": {
            "type": "object", "required": ["id", "status", "created_at", "links"],
            "properties": {"id": {"type": "string"}, "status": status,
                           "external_id": nullable_str, "created_at": dt_str,
                           "links": links, "problems": {"type": "array", "items": _ref("Problem")}}},
        "ReferralSummary": {
            "type": "object",
            "required": ["id", "status", "urgency", "flagged", "created_at", "updated_at", "links"],
            "properties": {"id": {"type": "string"}, "external_id": nullable_str,
                           "status": status, "urgency": {"type": "string",
                                                         "enum": ["routine", "urgent"]},
                           "flagged": {"type": "boolean"}, "created_at": dt_str,
                           "updated_at": dt_str, "links": links}},
        "ReferralList": {
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": _ref("ReferralSummary")},
                           "next_cursor": nullable_str,
                           "links": {"type": "object",
                                     "properties": {"next": {"type": "string"}}}}},
        "Event": {
            "type": "object", "required": ["at", "actor", "kind"],
            "properties": {"at": dt_str, "actor": {"type": "string"}, "kind": {"type": "string"},
                           "from": nullable_str, "to": nullable_str, "reason": nullable_str}},
        "Delivery": {
            "type": "object", "required": ["id", "channel", "document", "target", "status",
                                           "attempts", "max_attempts"],
            "properties": {"id": {"type": "string"}, "channel": {"type": "string"},
                           "document": {"type": "string"}, "target": {"type": "string"},
                           "status": {"type": "string", "enum": [
                               "pending", "sending", "sent", "retrying", "failed", "in_doubt",
                               "cancelled"]},
                           "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"},
                           "last_error": nullable_str, "reference": nullable_str,
                           "confirmation": {
                               "type": ["object", "null"],
                               "description": "what the provider confirmed: for a fax "
                                              "server job_id, pages_sent, pages_total, "
                                              "duration_s, remote_id (the receiving "
                                              "machine's id), dials, tries"},
                           "sent_at": {"type": ["string", "null"], "format": "date-time"},
                           "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
                           "links": links}},
        "DocumentInfo": {
            "type": "object", "required": ["name", "content_type", "size", "sha256", "href"],
            "properties": {"name": {"type": "string"}, "content_type": {"type": "string"},
                           "size": {"type": "integer"}, "sha256": {"type": "string"},
                           "href": {"type": "string"}}},
        "DocumentList": {"type": "object", "required": ["items"],
                         "properties": {"items": {"type": "array",
                                                  "items": _ref("DocumentInfo")}}},
        "ReferralDetail": {
            "allOf": [_ref("ReferralSummary"), {
                "type": "object",
                "required": ["received_on", "problems", "timeline", "deliveries", "documents"],
                "properties": {"received_on": {"type": "string", "format": "date"},
                               "problems": {"type": "array", "items": _ref("Problem")},
                               "timeline": {"type": "array", "items": _ref("Event")},
                               "deliveries": {"type": "array", "items": _ref("Delivery")},
                               "documents": {"type": "array", "items": _ref("DocumentInfo")},
                               "faxes": {"type": "array", "items": {
                                   "type": "object",
                                   "required": ["id", "kind", "pages", "received_at", "href"],
                                   "properties": {
                                       "id": {"type": "string"},
                                       "kind": {"type": "string",
                                                "enum": ["source", "attached"]},
                                       "pages": {"type": "integer"}, "received_at": dt_str,
                                       "href": {"type": "string"}}}},
                               "source": {"type": "string", "enum": ["fax"],
                                          "description": "present when the referral was "
                                                         "created from a received fax"},
                               "decision": _ref("Decision"),
                               "plan_sent_to_referrer": {"oneOf": [
                                   {"type": "null"}, _ref("PlanSent")]}}}]},
        "Decision": {
            "type": "object", "required": ["kind", "label", "message", "reason"],
            "description": "what the referring office is told, in plain words",
            "properties": {
                "kind": {"type": "string", "enum": ["released", "held_for_review", "rejected",
                                                    "do_not_exercise", "cancelled", "pending"]},
                "label": {"type": "string"}, "message": {"type": "string"},
                "reason": {"type": ["string", "null"],
                           "description": "the clinician's reason for a rejection"},
                "before_exercise": {"type": "array", "items": {"type": "string"},
                                    "description": "do-not-exercise: what the referrer must "
                                                   "see to first"}}},
        "PlanSent": {
            "type": "object", "required": ["at", "channel", "confirmation", "pages"],
            "description": "when the plan first reached the referring office",
            "properties": {"at": {"type": "string", "format": "date-time"},
                           "channel": {"type": "string"}, "target": {"type": "string"},
                           "document": {"type": "string"},
                           "confirmation": {"type": ["string", "null"],
                                            "description": "fax job id or SMTP Message-ID"},
                           "pages": {"type": ["integer", "null"]}}},
        "PlanRevision": {
            "type": "object", "required": ["plan", "reason"], "additionalProperties": False,
            "properties": {
                "plan": {
                    "type": "object", "additionalProperties": False,
                    "description": "What the clinician changes; a key left out is unchanged. "
                                   "Exercise content comes from the catalogue by id.",
                    "properties": {
                        "exercises": {"type": "array", "items": {
                            "type": "object", "required": ["id"],
                            "properties": {
                                "id": {"type": "string"},
                                "dose": {"type": "object", "properties": {
                                    k: {"type": ["integer", "null"], "minimum": 0}
                                    for k in ("sets", "reps", "hold_seconds", "minutes")}},
                                "days_per_week": {"type": "integer", "minimum": 1, "maximum": 7},
                                "phase_from": {"type": "integer", "minimum": 1, "maximum": 4}}}},
                        "patient_notes": {"type": "array", "items": {"type": "string",
                                                                     "maxLength": 500}},
                        "precautions": {"type": "array", "items": {"type": "string",
                                                                   "maxLength": 500}},
                        "phases": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"phase": {"type": "integer"},
                                           "changes": {"type": "string", "maxLength": 500},
                                           "week_from": {"type": "integer", "minimum": 1},
                                           "week_to": {"type": ["integer", "null"]}}}}}},
                "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                "override": {"type": ["string", "null"], "maxLength": 500,
                             "description": "Keep a change that breaks a safety rule, with "
                                            "this reason (printed on the chart summary)"}}},
        "PlanVersionInfo": {
            "type": "object", "required": ["version", "author", "at", "reason", "current"],
            "properties": {"version": {"type": "integer"}, "author": {"type": "string"},
                           "at": {"type": "string"}, "reason": {"type": "string"},
                           "changes": {"type": "array", "items": {"type": "string"}},
                           "current": {"type": "boolean"}, "released": {"type": "boolean"},
                           "stored": {"type": "boolean"}}},
        "PlanVersionList": {
            "type": "object", "required": ["items", "current"],
            "properties": {"items": {"type": "array", "items": _ref("PlanVersionInfo")},
                           "current": {"type": ["integer", "null"]}}},
        "Reason": {"type": "object", "additionalProperties": False,
                   "properties": {"reason": {"type": ["string", "null"], "maxLength": 500}}},
        "Note": {"type": "object", "additionalProperties": False,
                 "properties": {"note": {"type": ["string", "null"], "maxLength": 1000}}},
        "RetryRequest": {"type": "object", "additionalProperties": False,
                         "properties": {"target": {"type": ["string", "null"],
                                                   "maxLength": 1000,
                                                   "description": "a corrected fax number or "
                                                                  "email address"}}},
        **_bulk_schemas(),
        "StatusChange": {"type": "object", "required": ["id", "status"],
                         "properties": {"id": {"type": "string"}, "status": status}},
        **_stats_schemas(),
        "Queue": {
            "type": "object",
            "required": ["counts", "oldest_waiting_seconds", "review_queue", "deliveries",
                         "failures", "outbox_backlog", "broker", "workers_online"],
            "properties": {
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "oldest_waiting_seconds": {"type": "object",
                                           "additionalProperties": {"type": "number"}},
                "oldest_waiting": {"type": ["number", "null"]},
                "review_queue": {"type": "integer"},
                "deliveries": {"type": "object", "additionalProperties": {"type": "integer"}},
                "failures": {"type": "array", "items": {"type": "object"}},
                "outbox_backlog": {"type": "integer"},
                "broker": {"type": ["object", "null"]},
                "workers_online": {"type": ["integer", "null"]}}},
        "PluginList": {
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {
                "type": "object", "required": ["name", "enabled"],
                "properties": {"name": {"type": "string"}, "version": nullable_str,
                               "hooks": {"type": "array", "items": {"type": "string"}},
                               "enabled": {"type": "boolean"}, "builtin": {"type": "boolean"},
                               "reason": {"type": "string"}}}},
                "fax_transports": {"type": "array", "items": {
                    "type": "object", "required": ["name", "supports", "selected"],
                    "properties": {"name": {"type": "string"},
                                   "supports": {"type": "array", "items": {
                                       "type": "string",
                                       "enum": ["status", "cancel", "receive", "inbound"]}},
                                   "selected": {"type": "boolean"}}}}}},
        "FaxPractice": {
            "type": "object", "required": ["id", "name", "matched_by"],
            "properties": {"id": {"type": "string"}, "name": nullable_str,
                           "matched_by": {"type": "string", "enum": ["form", "caller"],
                                          "description": "the form's barcode, or the "
                                                         "caller's fax number"}}},
        "FaxSummary": {
            "type": "object",
            "required": ["id", "status", "source", "page_count", "received_at", "links"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": list(FAX_STATES)},
                "source": {"type": "string",
                           "description": "cli, or the fax transport's name"},
                "from_number": {"type": ["string", "null"],
                                "description": "caller id (E.164) or the sender's TSI"},
                "to_number": nullable_str, "content_type": {"type": "string"},
                "page_count": {"type": "integer"},
                "practice": {"oneOf": [{"type": "null"}, _ref("FaxPractice")]},
                "received_at": dt_str, "updated_at": dt_str,
                "read": {"type": "boolean", "description": "reading (OCR) has finished"},
                "referral_id": nullable_str, "handled_by": nullable_str,
                "handled_at": {"type": ["string", "null"], "format": "date-time"},
                "archived_reason": nullable_str, "links": links}},
        "FaxList": {
            "type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": _ref("FaxSummary")},
                           "next_cursor": nullable_str,
                           "links": {"type": "object",
                                     "properties": {"next": {"type": "string"}}}}},
        "FaxDetail": {
            "allOf": [_ref("FaxSummary"), {
                "type": "object",
                "required": ["pages", "form", "fields", "draft", "reading_error"],
                "properties": {
                    "source_ref": nullable_str, "sha256": {"type": "string"},
                    "pages": {"type": "array", "items": {
                        "type": "object", "required": ["number", "href"],
                        "properties": {
                            "number": {"type": "integer"}, "href": {"type": "string"},
                            "text": {"type": ["string", "null"],
                                     "description": "the page's OCR text"},
                            "confidence": {"type": ["number", "null"],
                                           "description": "mean word confidence, 0..1"}}}},
                    "reading_error": {"type": ["string", "null"],
                                      "description": "reading failed (the error's class); "
                                                     "the pages are still there"},
                    "form": {"type": ["object", "null"],
                             "description": "refflow's referral form, from its barcode: "
                                            "form, version, practice_id, page"},
                    "fields": {"type": "object", "additionalProperties": {
                        "type": "object", "properties": {
                            "value": {"type": "string"}, "confidence": {"type": "number"},
                            "source": {"type": "string"}}}},
                    "draft": {"type": "object",
                              "description": "the form's fields as referral JSON, to review "
                                             "and send to POST .../referral"}}}]},
        "FaxState": {
            "type": "object", "required": ["id", "status", "referral_id"],
            "properties": {"id": {"type": "string"},
                           "status": {"type": "string", "enum": list(FAX_STATES)},
                           "referral_id": nullable_str, "links": links}},
        "FaxReferralRequest": {
            "type": "object", "required": ["referral"], "additionalProperties": False,
            "properties": {
                "practice_id": {"type": ["string", "null"],
                                "description": "the referring practice (default: the one "
                                               "the fax was matched to)"},
                "referral": _ref("Referral")}},
        "FaxAttachRequest": {
            "type": "object", "required": ["referral_id"], "additionalProperties": False,
            "properties": {"referral_id": {"type": "string"}}},
        "FaxArchiveRequest": {
            "type": "object", "required": ["reason"], "additionalProperties": False,
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}},
        "FaxesReceived": {
            "type": "object", "required": ["received"],
            "properties": {"received": {"type": "array", "items": {
                "type": "object", "required": ["id", "created"],
                "properties": {"id": {"type": "string"},
                               "created": {"type": "boolean",
                                           "description": "false: the same fax was already "
                                                          "in the inbox"}}}}}},
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"type": "string"}}},
        "Ready": {"type": "object", "required": ["status", "checks"],
                  "properties": {"status": {"type": "string", "enum": ["ready", "not_ready"]},
                                 "checks": {"type": "object",
                                            "additionalProperties": {"type": "string"}}}},
    })
    return schemas


def _stats_schemas() -> dict:
    """``GET /api/v1/stats``: each field described as ``refflow.referrals.stats`` defines it."""
    integer, hours = {"type": "integer", "minimum": 0}, {"type": ["number", "null"]}
    counts = {
        "received": "referrals created in the period (the cohort every figure is about)",
        "released": "of those, how many reached `planned`: the plan went out by itself or a "
                    "clinician approved it (a do-not-exercise plan counts)",
        "held": "how many were held for a clinician (reached `needs_review` at least once)",
        "rejected": "how many are rejected", "completed": "how many are completed",
        "failed": "how many are failed now (a delivery gave up; staff can retry)",
        "cancelled": "how many are cancelled",
        "in_progress": "the rest: received, planning, needs_review, planned or delivering"}
    times = {
        "receipt_to_release": "from created to the first `planned`",
        "receipt_to_referrer_notified": "from created to the first delivery to the referring "
                                        "office that was sent (the plan summary's fax or PDF, "
                                        "or the 'referral not accepted' letter)",
        "held_in_review": "time in `needs_review`, every stay added up; a referral still held "
                          "is left out and counted in `still_held`"}
    period = {"type": "object", "required": ["from", "to", "days", "timezone", "start", "end"],
              "properties": {"from": {"type": "string", "format": "date"},
                             "to": {"type": "string", "format": "date",
                                    "description": "the last day, included"},
                             "days": integer, "timezone": {"type": "string"},
                             "start": {"type": "string", "format": "date-time"},
                             "end": {"type": "string", "format": "date-time",
                                     "description": "the first instant after the period"}}}
    practice_count = {"type": "object", "required": ["id", "name", "referrals"],
                      "properties": {"id": {"type": "string"},
                                     "name": {"type": ["string", "null"]},
                                     "referrals": integer}}
    return {
        "StatsPeriod": period,
        "StatsTime": {
            "type": "object", "required": ["count", "median_hours", "p90_hours"],
            "properties": {"count": integer, "median_hours": hours,
                           "p90_hours": {**hours, "description": "90th percentile, "
                                         "interpolated (as percentile_cont)"},
                           "still_held": integer}},
        "Stats": {
            "type": "object",
            "description": "Figures about the referrals received in the period (clinic days "
                           "`from`..`to` in the clinic's time zone), optionally of one practice.",
            "required": ["period", "previous_period", "practice", "counts", "times",
                         "deliveries", "top_practices", "practices_falling_off"],
            "properties": {
                "period": _ref("StatsPeriod"),
                "previous_period": {**_ref("StatsPeriod"),
                                    "description": "the period of the same length just before"},
                "practice": {"type": ["object", "null"],
                             "properties": {"id": {"type": "string"},
                                            "name": {"type": ["string", "null"]}}},
                "counts": {"type": "object", "required": list(counts),
                           "properties": {k: {**integer, "description": v}
                                          for k, v in counts.items()}},
                "times": {"type": "object", "required": list(times),
                          "properties": {k: {**_ref("StatsTime"), "description": v}
                                         for k, v in times.items()}},
                "deliveries": {"type": "array", "description": "the cohort's deliveries by "
                               "channel and status", "items": {
                                   "type": "object", "required": ["channel", "status", "count"],
                                   "properties": {"channel": {"type": "string"},
                                                  "status": {"type": "string"},
                                                  "count": integer}}},
                "top_practices": {"type": "array", "maxItems": 10, "items": practice_count},
                "practices_falling_off": {
                    "type": "array",
                    "description": "practices with referrals in the previous period and none "
                                   "now (`stopped`), or at least 10 before and at most half "
                                   "as many now",
                    "items": {**practice_count,
                              "required": ["id", "name", "referrals", "previous_referrals",
                                           "stopped"],
                              "properties": {**practice_count["properties"],
                                             "previous_referrals": integer,
                                             "stopped": {"type": "boolean"}}}}}},
    }


def _bulk_schemas() -> dict:
    """The bulk staff actions (``web.bulk``, ``pipeline.bulk_actions``)."""
    from refflow.pipeline.bulk_actions import MAX_ITEMS

    ids = {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
           "items": {"type": "string", "minLength": 1, "maxLength": 64}}
    return {
        "BulkRetryRequest": {
            "description": "`ids`, or `since` (with an optional `channel`): every delivery "
                           "that failed since then",
            "oneOf": [
                {"type": "object", "additionalProperties": False, "required": ["ids"],
                 "properties": {"ids": ids}},
                {"type": "object", "additionalProperties": False, "required": ["since"],
                 "properties": {"since": {"type": "string", "format": "date-time"},
                                "channel": {"type": ["string", "null"], "maxLength": 40}}}]},
        "BulkCancelRequest": {
            "type": "object", "additionalProperties": False, "required": ["ids"],
            "properties": {"ids": ids, "reason": {"type": ["string", "null"], "maxLength": 500,
                                                  "description": "on each referral's timeline"}}},
        "BulkResult": {
            "type": "object", "required": ["done", "skipped", "ids", "skipped_items",
                                           "skipped_reasons", "remaining"],
            "properties": {
                "done": {"type": "integer", "minimum": 0,
                         "description": "how many were retried (cancelled)"},
                "skipped": {"type": "integer", "minimum": 0},
                "ids": {"type": "array", "items": {"type": "string"},
                        "description": "the ids acted on"},
                "skipped_items": {"type": "array", "items": {
                    "type": "object", "required": ["id", "reason"],
                    "properties": {"id": {"type": "string"}, "reason": {"type": "string"}}}},
                "skipped_reasons": {"type": "object",
                                    "additionalProperties": {"type": "integer"},
                                    "description": "reason -> how many, e.g. "
                                                   "{\"already sent\": 2}"},
                "remaining": {"type": "integer", "minimum": 0,
                              "description": "what the filter still finds beyond the most one "
                                             "action takes: send it again"}}},
    }


def _optional_body(name: str) -> dict:
    return {"required": False, "content": {"application/json": {"schema": _ref(name)}}}


def build_spec() -> dict:
    from refflow.referrals import states

    spec = _build(states.STATES)
    return copy.deepcopy(spec)


@lru_cache(maxsize=4)
def _build(state_names: tuple[str, ...]) -> dict:
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "description": "Same key + same body = the same referral and answer (kept "
                           "at least 24 h); same key + another body = 422; while the first "
                           "request is in flight = 409",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
    paths = {
        "/api/v1/referrals": {
            "post": {
                "operationId": "createReferral", "tags": ["referrals"],
                "summary": "Submit a referral",
                "security": [{"apiKey": []}],
                "parameters": [idem],
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("Referral")}}},
                "responses": {
                    "202": _json(_ref("ReferralAccepted"),
                                 "Stored (committed before this answer); the plan follows",
                                 {"Location": {"schema": {"type": "string"}}}),
                    **_errors(*WRITE_BODY, 401, 403, 409, 429, 500, 503)}},
            "get": {
                "operationId": "listReferrals", "tags": ["referrals"],
                "summary": "List referrals, newest first (a practice sees only its own)",
                "security": PRACTICE_OR_STAFF,
                "parameters": [
                    {"name": "status", "in": "query", "required": False, "style": "form",
                     "explode": False,
                     "schema": {"type": "array", "items": {"type": "string",
                                                           "enum": list(state_names)}}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200,
                                "default": 50}},
                    {"name": "cursor", "in": "query", "required": False,
                     "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("ReferralList"), "A page of referrals"),
                              **_errors(400, *COMMON)}}},
        "/api/v1/referrals/{referral_id}": {
            "get": {
                "operationId": "getReferral", "tags": ["referrals"],
                "summary": "Status, timeline, deliveries and documents",
                "security": PRACTICE_OR_STAFF, "parameters": [REFERRAL_ID],
                "responses": {"200": _json(_ref("ReferralDetail"), "The referral"),
                              **_errors(*READ)}}},
        "/api/v1/referrals/{referral_id}/plan": {
            "get": {
                "operationId": "getPlan", "tags": ["referrals"],
                "summary": "The exercise plan (404 `plan_not_ready` until it is built)",
                "security": PRACTICE_OR_STAFF, "parameters": [REFERRAL_ID],
                "responses": {"200": _json(_ref("Plan"), "The plan (the current version)", ETAG),
                              **_errors(*READ)}},
            "put": {
                "operationId": "revisePlan", "tags": ["staff"],
                "summary": "A clinician's new plan version while the plan is held for review "
                           "(staff); 422 `safety_rule_broken` names each broken rule in "
                           "`fields` (`exercises.<id>` or `plan.<rule>`: rule and evidence) "
                           "unless the change carries an `override` reason",
                "security": STAFF,
                "parameters": [REFERRAL_ID, {
                    "name": "If-Match", "in": "header", "required": True,
                    "description": "The ETag of the version edited, e.g. \"3\"",
                    "schema": {"type": "string", "maxLength": 20}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("PlanRevision")}}},
                "responses": {"200": _json(_ref("Plan"), "The new version", ETAG),
                              **_errors(*WRITE_BODY, *READ, 403, 409, 412, 428)}}},
        "/api/v1/referrals/{referral_id}/plan/versions": {
            "get": {
                "operationId": "listPlanVersions", "tags": ["staff"],
                "summary": "The plan's versions, oldest first: who, when, why, what changed (staff)",
                "security": STAFF, "parameters": [REFERRAL_ID],
                "responses": {"200": _json(_ref("PlanVersionList"), "The versions", ETAG),
                              **_errors(*READ, 403)}}},
        "/api/v1/referrals/{referral_id}/plan/versions/{version}": {
            "get": {
                "operationId": "getPlanVersion", "tags": ["staff"],
                "summary": "The plan as it was at one version (staff)",
                "security": STAFF,
                "parameters": [REFERRAL_ID, {"name": "version", "in": "path", "required": True,
                                             "schema": {"type": "integer", "minimum": 1,
                                                        "maximum": 1000000}}],
                "responses": {"200": _json(_ref("Plan"), "That version", ETAG),
                              **_errors(*READ, 403)}}},
        "/api/v1/referrals/{referral_id}/documents": {
            "get": {
                "operationId": "listDocuments", "tags": ["documents"],
                "summary": "The rendered documents",
                "security": PRACTICE_OR_STAFF, "parameters": [REFERRAL_ID],
                "responses": {"200": _json(_ref("DocumentList"), "The documents"),
                              **_errors(*READ)}}},
        "/api/v1/referrals/{referral_id}/documents/{name}": {
            "get": {
                "operationId": "getDocument", "tags": ["documents"],
                "summary": "One document: handout.pdf, summary.pdf, chart.pdf or fax.tiff",
                "security": PRACTICE_OR_STAFF,
                "parameters": [REFERRAL_ID, {"name": "name", "in": "path", "required": True,
                                             "schema": {"type": "string", "maxLength": 40}}],
                "responses": {
                    "200": {"description": "The document",
                            "content": {"application/pdf": {"schema": {"type": "string",
                                                                       "format": "binary"}},
                                        "image/tiff": {"schema": {"type": "string",
                                                                  "format": "binary"}}}},
                    **_errors(*READ)}}},
        "/api/v1/referrals/{referral_id}/cancel": {
            "post": {
                "operationId": "cancelReferral", "tags": ["referrals"],
                "summary": "Cancel a referral that has not completed",
                "security": PRACTICE_OR_STAFF, "parameters": [REFERRAL_ID],
                "requestBody": _optional_body("Reason"),
                "responses": {"200": _json(_ref("ReferralSummary"), "Cancelled"),
                              **_errors(*WRITE_BODY, *READ, 409)}}},
        "/api/v1/referrals/{referral_id}/approve": {
            "post": {
                "operationId": "approvePlan", "tags": ["staff"],
                "summary": "Approve a plan held for review (staff)",
                "security": STAFF, "parameters": [REFERRAL_ID],
                "requestBody": _optional_body("Note"),
                "responses": {"200": _json(_ref("StatusChange"), "Approved"),
                              **_errors(*WRITE_BODY, *READ, 403, 409)}}},
        "/api/v1/referrals/{referral_id}/reject": {
            "post": {
                "operationId": "rejectPlan", "tags": ["staff"],
                "summary": "Reject a plan held for review (staff)",
                "security": STAFF, "parameters": [REFERRAL_ID],
                "requestBody": _optional_body("Note"),
                "responses": {"200": _json(_ref("StatusChange"), "Rejected"),
                              **_errors(*WRITE_BODY, *READ, 403, 409)}}},
        "/api/v1/deliveries/{delivery_id}/retry": {
            "post": {
                "operationId": "retryDelivery", "tags": ["staff"],
                "summary": "Retry a failed delivery, optionally to a corrected target (staff)",
                "security": STAFF, "parameters": [DELIVERY_ID],
                "requestBody": _optional_body("RetryRequest"),
                "responses": {"200": _json(_ref("Delivery"), "Queued again"),
                              **_errors(*WRITE_BODY, *READ, 403, 409)}}},
        "/api/v1/deliveries/retry": {
            "post": {
                "operationId": "retryDeliveries", "tags": ["staff"],
                "summary": "Send failed deliveries again in one action: the ids given, or every "
                           "one failed since a time (of a channel); any not failed is skipped "
                           "with the reason, so nothing is sent twice (staff)",
                "security": STAFF,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("BulkRetryRequest")}}},
                "responses": {"200": _json(_ref("BulkResult"), "What was done and skipped"),
                              **_errors(*WRITE_BODY, *COMMON, 403)}}},
        "/api/v1/referrals/cancel": {
            "post": {
                "operationId": "cancelReferrals", "tags": ["staff"],
                "summary": "Cancel referrals in one action; ended ones are skipped with the "
                           "reason (staff)",
                "security": STAFF,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("BulkCancelRequest")}}},
                "responses": {"200": _json(_ref("BulkResult"), "What was done and skipped"),
                              **_errors(*WRITE_BODY, *COMMON, 403)}}},
        "/api/v1/queue": {
            "get": {
                "operationId": "getQueue", "tags": ["staff"],
                "summary": "Counts by state, oldest waiting, failures, broker depth, workers",
                "security": STAFF,
                "responses": {"200": _json(_ref("Queue"), "The queue"),
                              **_errors(403, *COMMON)}}},
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats", "tags": ["staff"],
                "summary": "The Reports numbers of the referrals received in a period: counts, "
                           "median and 90th percentile times, deliveries, top practices and "
                           "practices whose referrals stopped coming (staff)",
                "security": STAFF,
                "parameters": [
                    {"name": "from", "in": "query", "required": False,
                     "description": "first day (clinic time zone); default: 29 days before `to`",
                     "schema": {"type": "string", "format": "date"}},
                    {"name": "to", "in": "query", "required": False,
                     "description": "last day, included; default: today. At most 366 days "
                                    "from `from`",
                     "schema": {"type": "string", "format": "date"}},
                    {"name": "practice", "in": "query", "required": False,
                     "description": "one practice's id", "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "required": False,
                     "description": "`csv`: one long table `section,item,measure,value` "
                                    "(also chosen by `Accept: text/csv`)",
                     "schema": {"type": "string", "enum": ["json", "csv"]}}],
                "responses": {"200": {"description": "The numbers", "content": {
                                  "application/json": {"schema": _ref("Stats")},
                                  "text/csv": {"schema": {"type": "string"}}}},
                              **_errors(403, 422, *COMMON)}}},
        "/api/v1/faxes": {
            "get": {
                "operationId": "listFaxes", "tags": ["staff"],
                "summary": "Received faxes, newest first (staff)",
                "security": STAFF,
                "parameters": [
                    {"name": "status", "in": "query", "required": False, "style": "form",
                     "explode": False,
                     "schema": {"type": "array", "items": {"type": "string",
                                                           "enum": list(FAX_STATES)}}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200,
                                "default": 50}},
                    {"name": "cursor", "in": "query", "required": False,
                     "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("FaxList"), "A page of faxes"),
                              **_errors(400, 403, *COMMON)}}},
        "/api/v1/faxes/{fax_id}": {
            "get": {
                "operationId": "getFax", "tags": ["staff"],
                "summary": "A received fax: pages (PNG links, OCR text and confidence), the "
                           "referral form's identity, fields with confidence, the draft, "
                           "the matched practice (staff)",
                "security": STAFF, "parameters": [FAX_ID],
                "responses": {"200": _json(_ref("FaxDetail"), "The fax"),
                              **_errors(*READ, 403)}}},
        "/api/v1/faxes/{fax_id}/pages/{page}.png": {
            "get": {
                "operationId": "getFaxPage", "tags": ["staff"],
                "summary": "One page of a received fax as PNG, square pixels (staff)",
                "security": STAFF,
                "parameters": [FAX_ID, {"name": "page", "in": "path", "required": True,
                                        "description": "1-based page number",
                                        "schema": {"type": "string",
                                                   "pattern": "^[0-9]{1,4}$"}}],
                "responses": {
                    "200": {"description": "The page",
                            "content": {"image/png": {"schema": {"type": "string",
                                                                 "format": "binary"}}}},
                    **_errors(*READ, 403)}}},
        "/api/v1/faxes/{fax_id}/referral": {
            "post": {
                "operationId": "createReferralFromFax", "tags": ["staff"],
                "summary": "Create a referral from the fax's reviewed draft (staff); validated "
                           "like POST /api/v1/referrals (422 names each bad field, e.g. "
                           "`patient.birth_date`); 409 when the fax was handled already",
                "security": STAFF, "parameters": [FAX_ID],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("FaxReferralRequest")}}},
                "responses": {
                    "202": _json(_ref("ReferralAccepted"), "The referral was stored; the "
                                 "plan follows",
                                 {"Location": {"schema": {"type": "string"}}}),
                    **_errors(*WRITE_BODY, *READ, 403, 409)}}},
        "/api/v1/faxes/{fax_id}/attach": {
            "post": {
                "operationId": "attachFax", "tags": ["staff"],
                "summary": "Attach the fax to an existing referral (its timeline says so; "
                           "staff)",
                "security": STAFF, "parameters": [FAX_ID],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("FaxAttachRequest")}}},
                "responses": {"200": _json(_ref("FaxState"), "Attached"),
                              **_errors(*WRITE_BODY, *READ, 403, 409)}}},
        "/api/v1/faxes/{fax_id}/archive": {
            "post": {
                "operationId": "archiveFax", "tags": ["staff"],
                "summary": "Archive a fax that needs no referral, with a reason (staff)",
                "security": STAFF, "parameters": [FAX_ID],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("FaxArchiveRequest")}}},
                "responses": {"200": _json(_ref("FaxState"), "Archived"),
                              **_errors(*WRITE_BODY, *READ, 403, 409)}}},
        "/api/v1/fax/inbound/{transport}": {
            "post": {
                "operationId": "receiveFaxWebhook", "tags": ["fax"],
                "summary": "A fax provider's inbound webhook: the transport named checks the "
                           "request (its signature) and reads the faxes from it; each is "
                           "stored once. No API key. 404 for a transport without an inbound "
                           "webhook",
                "security": [],
                "parameters": [{"name": "transport", "in": "path", "required": True,
                                "schema": {"type": "string", "maxLength": 60}}],
                "requestBody": {"required": True, "description": "as the transport defines "
                                "it (the example plugin: JSON with the fax in base64)",
                                "content": {"application/json": {"schema": {
                                    "type": "object"}}}},
                "responses": {"200": _json(_ref("FaxesReceived"), "Stored (ids only)"),
                              **_errors(400, 401, 404, 413, 429, 500, 503)}}},
        "/api/v1/plugins": {
            "get": {
                "operationId": "listPlugins", "tags": ["operations"],
                "summary": "Loaded plugins", "security": [],
                "responses": {"200": _json(_ref("PluginList"), "Plugins"), **_errors(500)}}},
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi", "tags": ["operations"],
                "summary": "This document", "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"),
                              **_errors(500)}}},
        "/healthz": {
            "get": {
                "operationId": "healthz", "tags": ["operations"],
                "summary": "Liveness: the process answers", "security": [],
                "responses": {"200": _json(_ref("Health"), "Alive"), **_errors(500)}}},
        "/readyz": {
            "get": {
                "operationId": "readyz", "tags": ["operations"],
                "summary": "Readiness: database reachable, migrations at head, broker reachable",
                "security": [],
                "responses": {"200": _json(_ref("Ready"), "Ready"),
                              "503": _json(_ref("Ready"), "Not ready; `checks` says why"),
                              **_errors(500)}}},
        "/metrics": {
            "get": {
                "operationId": "metrics", "tags": ["operations"],
                "summary": "Prometheus metrics (text exposition format)", "security": [],
                "responses": {"200": {"description": "Metrics",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_errors(500)}}},
    }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "refflow API", "version": __version__,
                 "description": "Referral intake, status, plans and documents for referring "
                                "practices (API key); queue and review actions for clinic "
                                "staff (signed-in session). Errors are always "
                                "`{\"error\": {\"code\", \"message\", \"fields\"}}`.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "servers": [{"url": "/"}],
        "security": PRACTICE_OR_STAFF,
        "tags": [{"name": n} for n in ("referrals", "documents", "staff", "fax", "operations")],
        "paths": paths,
        "components": {
            "schemas": _schemas(state_names),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "A practice's API key: `Authorization: Bearer <key>`"},
                "session": {"type": "apiKey", "in": "cookie", "name": "refflow_session",
                            "description": "A signed-in staff (or practice user) session (in "
                                           "production the cookie is named "
                                           "__Host-refflow_session). "
                                           "A request that changes something (not GET) "
                                           "must also send the session's CSRF token in an "
                                           "X-CSRFToken header; without it the answer is "
                                           "403 csrf_token_missing, with a wrong or "
                                           "expired one 403 csrf_failed."}}},
    }
