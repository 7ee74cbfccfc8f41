"""``refflow user add``: staff, admin and practice users."""

from __future__ import annotations

import sys

import click

from refflow.accounts.practices import AccountError
from refflow.accounts.users import ROLES, create_user, generate_password
from refflow.cli import CLIError
from refflow.commands.context import database, emit_json


@click.group("user")
def command() -> None:
    """People who sign in to the dashboard or the practice portal."""


@command.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--practice", help="The practice a practice user belongs to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def add(email: str, role: str, practice: str | None, as_json: bool) -> None:
    """Create a user. On a terminal you are asked for a password; otherwise one
    is generated and printed once (in the JSON with --json). The prompts go to
    the terminal (or stderr), never stdout, so the JSON stays one object."""
    generated = None
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        password = generated = generate_password()
    try:
        with database().session() as session:
            user = create_user(session, email, password, role=role, practice=practice)
            result = {"id": user.id, "email": user.email, "role": user.role,
                      "practice_id": user.practice_id}
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    if generated:
        result["password"] = generated
    if as_json:
        emit_json(result)
    else:
        click.echo(f"user {result['email']} ({result['role']}) created")
        if generated:
            click.echo(f"password (shown once): {generated}")
