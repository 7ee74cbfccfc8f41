"""Which documents go where: the routes for a referral's plan, and the
delivery each route becomes (its target checked by its channel)."""

from __future__ import annotations

from refflow.documents.names import CHART, DECLINE, DECLINE_FAX, FAX, HANDOUT
from refflow.pipeline.context import Pipeline


def default_routes(referral) -> list[dict[str, str]]:
    """Routing from the referral's ``deliver`` flags (when no plugin decides)."""
    routes = []
    deliver = referral.deliver
    if deliver.fax_to_referrer and referral.referrer.fax:
        routes.append({"channel": "fax", "document": FAX, "target": referral.referrer.fax})
    if deliver.email_to_patient and referral.patient.email:
        routes.append({"channel": "email", "document": HANDOUT, "target": referral.patient.email})
    if deliver.chart_pdf:
        routes.append({"channel": "pdf", "document": CHART, "target": ""})
    return routes


def decline_routes(referral) -> list[dict[str, str]]:
    """Where a clinician's rejection goes: to the referring office only, never
    to the patient — the letter's fax to the referrer's fax number when the
    referral asks for faxes to the referrer (as for the summary), and the
    letter by email to the referrer's email address when it has one."""
    routes = []
    referrer = referral.referrer
    if referral.deliver.fax_to_referrer and referrer.fax:
        routes.append({"channel": "fax", "document": DECLINE_FAX, "target": referrer.fax})
    if referrer.email:
        routes.append({"channel": "email", "document": DECLINE, "target": referrer.email})
    return routes


def routes_for_plan(p: Pipeline, referral, plan: dict) -> tuple[list[dict], list]:
    """``(routes, plugin failures)``: the first routing plugin's answer, else the
    referral's ``deliver`` flags. A red flag's plan (``do_not_exercise``) goes
    to the referrer and the chart only: the patient gets no plan until a
    clinician has seen them."""
    from refflow.plugins.manager import plugin_routes

    routes, failures = plugin_routes(referral, plan, p.pm)
    if routes is None:
        routes = default_routes(referral)
    if plan.get("decision") == "do_not_exercise":
        routes = [r for r in routes if r["document"] != HANDOUT]
    return routes, failures


def delivery_fields(p: Pipeline, route: dict) -> dict:
    """A route's delivery: pending to the target its channel validated, or failed
    with the reason (no such channel, a target the channel refuses)."""
    fields = {"channel": route["channel"], "document": route["document"],
              "target": route["target"], "status": "pending", "last_error": None}
    channel = p.channels.get(route["channel"])
    if channel is None:
        fields["status"] = "failed"
        fields["last_error"] = f"no channel named {route['channel']!r} is installed"
        return fields
    try:
        fields["target"] = channel.validate_target(route["target"])
    except Exception as exc:  # noqa: BLE001 - a bad target fails this delivery only
        fields["status"] = "failed"
        fields["last_error"] = safe_error(exc, "the delivery target is not valid")
    return fields


def safe_error(exc: Exception, fallback: str) -> str:
    """A channel's own message (written for staff), else the error class only:
    another exception's text may quote the patient's address."""
    from refflow.plugins.channels.base import ChannelError

    if isinstance(exc, ChannelError):
        return exc.message[:500]
    return f"{fallback} ({type(exc).__name__})"
