"""A plan's ``decision``, decided in one place from its flags and approval.

- ``do_not_exercise``: a red flag (``urgent_medical``) — zero exercises, the
  referrer is told to see the patient first; no approval changes that;
- ``release``: a clinician approved the plan, or no flag asks for review;
- ``review``: any ``needs_review`` flag holds the plan for a clinician.

Whoever adds flags to a plan (the engine, a plugin failure, an intake rule)
or approves it goes through :func:`with_flags` or :func:`approve`, so the
decision always follows from what the plan says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

URGENT = "urgent_medical"


def decide(plan: Mapping) -> str:
    flags = plan.get("flags") or ()
    if any(f.get("code") == URGENT for f in flags):
        return "do_not_exercise"
    if plan.get("approved"):
        return "release"
    if any(f.get("severity") == "needs_review" for f in flags):
        return "review"
    return "release"


def with_flags(plan: Mapping, flags: Iterable[Mapping]) -> dict:
    """The plan with ``flags`` added (a code the plan already has is listed once)
    and its decision taken again."""
    have = {f.get("code") for f in plan.get("flags") or ()}
    added = [dict(f) for f in flags if f.get("code") not in have or f.get("code") == "plugin_failed"]
    out = dict(plan, flags=list(plan.get("flags") or ()) + added)
    out["decision"] = decide(out)
    return out


def approve(plan: Mapping, *, at: dt.datetime, by: str | None = None) -> dict:
    """The plan a clinician approved: released, with when and by whom (its
    flags stay, as what the clinician saw)."""
    approved = {"at": at.isoformat()}
    if by:
        approved["by"] = by
    out = dict(plan, approved=approved)
    out["decision"] = decide(out)
    return out
