"""``refflow webhook add|list|disable``: a practice's webhook endpoints."""

from __future__ import annotations

import click

from refflow.accounts.practices import AccountError, find_practice
from refflow.cli import CLIError
from refflow.commands.context import database, emit_json, settings_or_exit
from refflow.interop import webhooks

ACTOR = "cli"


@click.group("webhook")
def command() -> None:
    """A practice's webhook endpoints (signed events about its referrals)."""


@command.command("add")
@click.argument("practice")
@click.argument("url")
@click.option("--event", "events", multiple=True, metavar="TYPE",
              help="An event type to send (repeatable; default: every type): "
                   + ", ".join(webhooks.EVENT_TYPES) + ".")
@click.option("--description", help="What the endpoint is, for the practice's own list.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def add(practice: str, url: str, events: tuple[str, ...], description: str | None,
        as_json: bool) -> None:
    """Register URL for PRACTICE (name or id) and print its signing secret (shown once)."""
    settings = settings_or_exit()
    try:
        with database(settings).session() as session:
            row = find_practice(session, practice)
            endpoint, secret = webhooks.register(session, settings, row.id, url, actor=ACTOR,
                                                 description=description, event_types=events)
            result = {"id": endpoint.id, "practice_id": row.id, "url": endpoint.url,
                      "event_types": endpoint.event_types, "secret": secret}
    except (AccountError, webhooks.WebhookError) as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json(result)
    else:
        click.echo(f"webhook endpoint {result['id']} for {row.name}")
        click.echo(f"signing secret (shown once, keep it safe): {secret}")


@command.command("list")
@click.argument("practice")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_(practice: str, as_json: bool) -> None:
    """List PRACTICE's endpoints (secrets are never shown again)."""
    try:
        with database().session() as session:
            row = find_practice(session, practice)
            items = [{"id": e.id, "url": e.url, "description": e.description,
                      "event_types": e.event_types, "active": e.active,
                      "created_at": e.created_at.isoformat()}
                     for e in webhooks.endpoints(session, row.id)]
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json({"items": items})
        return
    for item in items:
        click.echo("\t".join([item["id"], "active" if item["active"] else "disabled",
                              item["url"], ",".join(item["event_types"] or ["all events"])]))


@command.command("disable")
@click.argument("endpoint_id")
def disable(endpoint_id: str) -> None:
    """Stop sending to an endpoint (messages waiting for it are cancelled)."""
    try:
        with database().session() as session:
            webhooks.disable(session, endpoint_id, actor=ACTOR)
    except webhooks.WebhookError as exc:
        raise CLIError(str(exc)) from None
    click.echo(f"disabled webhook endpoint {endpoint_id}")
