"""``refflow practice add|key|revoke|list``: referring practices and their API keys."""

from __future__ import annotations

import click
from sqlalchemy import select

from refflow.accounts.practices import (
    AccountError,
    create_practice,
    find_practice,
    issue_key,
    revoke_key,
)
from refflow.cli import CLIError
from refflow.commands.context import database, emit_json
from refflow.db.models import ApiKey, Practice


@click.group("practice")
def command() -> None:
    """Referring practices and their API keys."""


@command.command("add")
@click.argument("name")
@click.option("--fax", help="The practice's fax number (any format; stored as E.164).")
@click.option("--email", help="The practice's email address.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def add(name: str, fax: str | None, email: str | None, as_json: bool) -> None:
    """Register a practice and print its first API key (shown once)."""
    try:
        with database().session() as session:
            practice = create_practice(session, name, fax=fax, email=email)
            key_row, key = issue_key(session, practice)
            result = {"id": practice.id, "name": practice.name, "fax": practice.fax,
                      "email": practice.email, "api_key": key, "key_prefix": key_row.prefix}
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json(result)
    else:
        click.echo(f"practice {result['name']} ({result['id']})")
        click.echo(f"API key (shown once, keep it safe): {key}")


@command.command("key")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def new_key(name: str, as_json: bool) -> None:
    """Issue another API key for a practice (old keys keep working until revoked)."""
    try:
        with database().session() as session:
            practice = find_practice(session, name)
            row, key = issue_key(session, practice)
            result = {"practice_id": practice.id, "api_key": key, "key_prefix": row.prefix}
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json(result)
    else:
        click.echo(f"API key (shown once, keep it safe): {key}")


@command.command("revoke")
@click.argument("prefix")
def revoke(prefix: str) -> None:
    """Revoke an API key by its prefix (the part after rf_)."""
    try:
        with database().session() as session:
            revoke_key(session, prefix)
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    click.echo(f"revoked key {prefix}")


@command.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """List practices with their live key prefixes."""
    with database().session() as session:
        rows = []
        for p in session.scalars(select(Practice).order_by(Practice.name)):
            keys = session.scalars(select(ApiKey.prefix).where(
                ApiKey.practice_id == p.id, ApiKey.revoked_at.is_(None))).all()
            rows.append({"id": p.id, "name": p.name, "fax": p.fax, "email": p.email,
                         "keys": list(keys)})
    if as_json:
        emit_json({"items": rows})
    else:
        for row in rows:
            click.echo(f"{row['name']}\t{row['id']}\tkeys: {', '.join(row['keys']) or '-'}")
