"""Hook specifications of refflow (pluggy project name ``refflow``).

Plugins implement these with ``from refflow.plugins import hookimpl``. An
implementation may accept any subset of a hook's arguments, by name.

refflow calls hooks through pluggy, one implementation at a time (see
``refflow.plugins.manager``): wrappers (``wrapper=True``) wrap each call,
``tryfirst``/``trylast`` order them, hook-call monitoring sees them. One that
raises is recorded as a ``PluginFailure`` (plugin name, hook, error class;
never the exception text, which may hold PHI) and the others go on.
Every hook is documented with an example in docs/plugins.md; a test fails when
one is missing there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

    from refflow.config import Settings
    from refflow.intake.schemas import Referral
    from refflow.plugins.channels.base import Channel
    from refflow.plugins.channels.fax.transports import FaxTransport

hookspec = pluggy.HookspecMarker("refflow")

__all__ = ["ReferralRef", "hookspec"]


@dataclass(frozen=True)
class ReferralRef:
    """The ``referral`` a status hook receives: which referral, and the state
    it is now in. It carries no patient data (not even the EHR's own id,
    which may be a record number), so a notification plugin cannot leak PHI
    by accident; a plugin that needs more loads the referral through the API
    with its own credentials."""

    id: str
    status: str


@hookspec
def refflow_output_channels(settings: Settings) -> list[Channel] | None:
    """Return the output channels this plugin provides.

    :param settings: the service's ``refflow.config.Settings``.
    :returns: a list of ``refflow.plugins.channels.base.Channel`` objects (or
        ``None``/``[]`` to offer none, e.g. when unconfigured). Channel names
        must be unique across plugins; a duplicate is recorded as a failure of
        the later plugin and ignored.

    All results are collected (not ``firstresult``).
    """


@hookspec
def refflow_fax_transports(settings: Settings) -> list[FaxTransport] | None:
    """Return fax transports: how the ``fax`` channel hands a TIFF to a fax server.

    :param settings: the service's ``Settings``; ``settings.fax_transport``
        (``REFFLOW_FAX_TRANSPORT``) names the transport the fax channel uses.
    :returns: a list of ``refflow.plugins.channels.fax.transports.FaxTransport``
        objects. The built-in one is ``spool``; a name already taken is
        recorded as a failure of the later plugin and ignored.

    All results are collected (not ``firstresult``).
    """


@hookspec
def refflow_validate_referral(referral: Referral, as_of: dt.date) -> list[dict[str, Any]] | None:
    """Check a referral at intake against clinic-specific acceptance rules.

    :param referral: the validated ``refflow.intake.schemas.Referral``.
    :param as_of: the referral's date of receipt ("today" for date rules).
    :returns: a list of problems, each a dict
        ``{"code": str, "severity": "reject" | "needs_review" | "caution",
        "message": str, "field": str (optional)}``; ``None`` or ``[]`` when
        the referral is fine. Messages must not contain PHI.

    All results are collected (not ``firstresult``). Any ``reject`` rejects
    the referral; any ``needs_review`` sends it to staff.
    """


@hookspec
def refflow_exercise_catalog() -> list[dict[str, Any]] | None:
    """Add exercises to the catalogue the plan engine chooses from.

    :returns: a list of exercise dicts with the catalogue's fields (``id``,
        ``name``, ``category``, ``impact``, ``spinal_flexion``,
        ``spinal_rotation``, ``loaded``, ``end_range``, ``dose``,
        ``instructions``, ...). The engine's safety rules apply to them like
        to built-in entries.

    All results are collected (not ``firstresult``).
    """


@hookspec
def refflow_adjust_plan(referral: Referral, plan: dict[str, Any],
                        as_of: dt.date) -> dict[str, Any] | None:
    """Apply a clinic-specific rule to a plan the engine has built.

    :param referral: the validated ``Referral``.
    :param plan: the plan dict (its JSON Schema: ``refflow.planning.schema.PLAN_SCHEMA``); treat it as read-only
        and return a modified copy.
    :param as_of: the plan's date ("today" for age and date rules; never
        call ``date.today()``).
    :returns: the modified plan, or ``None`` for "no change". The engine
        records every change in ``rules_applied`` with the plugin's name and
        runs its safety rules afterwards: a change that breaks one is undone
        and flagged.

    Called once per implementation, in pluggy's order, each seeing the
    previous result (not ``firstresult``).
    """


@hookspec(firstresult=True)
def refflow_route_deliveries(referral: Referral, plan: dict[str, Any]) -> list[dict[str, str]] | None:
    """Decide which documents go where.

    :param referral: the validated ``Referral``.
    :param plan: the finished plan.
    :returns: a list of routes ``{"channel": str, "document": str, "target": str}``
        (``target`` is an E.164 fax number, an email address or ``""`` for the
        chart), or ``None`` to leave the decision to the next plugin and
        finally to the default routing (``referral.deliver`` flags).

    ``firstresult``: the first non-``None`` answer wins.
    """


@hookspec
def refflow_referral_status_changed(referral: ReferralRef, referral_id: str, old: str | None,
                                    new: str) -> None:
    """Be told that a referral changed state (for notifications).

    Called once for every committed change, in order, after the commit, in
    whichever process made it (web, worker, scheduler, CLI). It receives a
    reference to the referral (``ReferralRef``: its id and new state) and the
    state names,
    not the referral's contents, so that notification plugins cannot leak PHI
    by accident; a plugin that needs more loads it through the API with its
    own credentials.

    :param referral: which referral (``referral.id``, ``referral.status``).
    :param referral_id: the referral's id (the same as ``referral.id``).
    :param old: the previous state (e.g. ``"planning"``); ``None`` for a new
        referral (``new`` is then ``"received"``).
    :param new: the new state (e.g. ``"planned"``).
    :returns: nothing; return values are ignored.
    """


@hookspec
def refflow_register_commands(cli: click.Group) -> None:
    """Add commands to the ``refflow`` command line.

    :param cli: the ``refflow`` click group; call ``cli.add_command(...)`` or
        decorate with ``@cli.command()``.
    :returns: nothing.
    """
