"""``refflow user add|list|disable|enable|reset-password|unlock|role``: the
people who sign in. The account operations are ``refflow.accounts.users``'s,
the same the staff Users page calls; each is audited with the actor ``cli``."""

from __future__ import annotations

import sys

import click

from refflow.accounts import users
from refflow.accounts.practices import AccountError
from refflow.cli import CLIError
from refflow.commands.context import database, emit_json, settings_or_exit

ACTOR = "cli"


@click.group("user")
def command() -> None:
    """People who sign in to the dashboard or the practice portal."""


def _new_password() -> tuple[str, str | None]:
    """(password, the generated one or None): on a terminal you are asked;
    otherwise one is generated, to be printed once. The prompts go to the
    terminal (or stderr), never stdout, so --json stays one object."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True,
                            err=True), None
    password = users.generate_password()
    return password, password


def _json(user, locked: bool | None = None) -> dict:
    return {"id": user.id, "email": user.email, "role": user.role,
            "practice_id": user.practice_id,
            "practice": user.practice.name if user.practice else None,
            "active": user.active, "locked": locked,
            "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None}


def _throttle(settings):
    """The web's sign-in counters when they are shared (Redis), else None."""
    from refflow.web import signin_throttle

    throttle = signin_throttle.from_settings(settings)
    return throttle if throttle.redis is not None else None


@command.command("add")
@click.argument("email")
@click.option("--role", type=click.Choice(users.ROLES), required=True)
@click.option("--practice", help="The practice a practice user belongs to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def add(email: str, role: str, practice: str | None, as_json: bool) -> None:
    """Create a user. On a terminal you are asked for a password; otherwise one
    is generated and printed once (in the JSON with --json)."""
    password, generated = _new_password()
    try:
        with database().session() as session:
            user = users.create_user(session, email, password, role=role, practice=practice,
                                     actor=ACTOR)
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


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_(as_json: bool) -> None:
    """Everyone who can sign in: role, practice, active or disabled, locked
    (slowed by failed sign-ins; known only with a Redis REFFLOW_BROKER_URL),
    last sign-in."""
    settings = settings_or_exit()
    throttle = _throttle(settings)
    with database(settings).session() as session:
        people = users.list_users(session)
        waits = throttle.waits([u.email for u in people]) if throttle else {}
        rows = [_json(u, waits[u.email] > 0 if throttle else None) for u in people]
    if as_json:
        emit_json({"items": rows})
        return
    for row in rows:
        state = "active" if row["active"] else "disabled"
        if row["locked"]:
            state += ", locked"
        click.echo("\t".join([row["email"], row["role"], row["practice"] or "-", state,
                              f"last sign-in {row['last_login_at'] or 'never'}"]))


def _change(email: str, as_json: bool, change, message: str) -> None:
    """Run ``change(session, user)`` on the user with EMAIL and report it."""
    try:
        with database().session() as session:
            user = users.find_user(session, email)
            change(session, user)
            result = _json(user)
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    result.pop("locked")
    if as_json:
        emit_json(result)
    else:
        click.echo(message.format(**result))


@command.command("disable")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def disable(email: str, as_json: bool) -> None:
    """Stop EMAIL from signing in; their open sessions end at once."""
    _change(email, as_json, lambda s, u: users.disable_user(s, u, actor=ACTOR),
            "user {email} disabled (signed out everywhere)")


@command.command("enable")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def enable(email: str, as_json: bool) -> None:
    """Let a disabled user sign in again."""
    _change(email, as_json, lambda s, u: users.enable_user(s, u, actor=ACTOR),
            "user {email} enabled")


@command.command("role")
@click.argument("email")
@click.argument("role", type=click.Choice(users.ROLES))
@click.option("--practice", help="The practice, when ROLE is practice.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def role(email: str, role: str, practice: str | None, as_json: bool) -> None:
    """Change what EMAIL may do: admin (users, practices, keys, webhooks,
    settings), staff (the queue) or practice (its own referrals)."""
    _change(email, as_json,
            lambda s, u: users.set_role(s, u, role, actor=ACTOR, practice=practice),
            "user {email} is now {role}")


@command.command("reset-password")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def reset_password(email: str, as_json: bool) -> None:
    """Give EMAIL a new password and end their sessions. On a terminal you are
    asked for it; otherwise one is generated and printed once."""
    password, generated = _new_password()
    try:
        with database().session() as session:
            user = users.find_user(session, email)
            users.reset_password(session, user, actor=ACTOR, password=password)
            result = {"id": user.id, "email": user.email}
    except AccountError as exc:
        raise CLIError(str(exc)) from None
    if generated:
        result["password"] = generated
    if as_json:
        emit_json(result)
    else:
        click.echo(f"new password for {result['email']} set (signed out everywhere)")
        if generated:
            click.echo(f"password (shown once): {generated}")


@command.command("unlock")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def unlock(email: str, as_json: bool) -> None:
    """Forget EMAIL's failed sign-ins, so the growing delay ends now. Needs the
    Redis the web processes share (REFFLOW_BROKER_URL)."""
    from refflow.web.signin_throttle import ThrottleUnavailable

    settings = settings_or_exit()
    throttle = _throttle(settings)
    if throttle is None:
        raise CLIError("the failed sign-ins are counted in the web processes' shared Redis, "
                       "which REFFLOW_BROKER_URL does not name here: set it, or unlock from "
                       "the staff Users page")
    try:
        with database(settings).session() as session:
            user = users.find_user(session, email)
            users.unlock_user(session, user, throttle, actor=ACTOR)
            result = {"id": user.id, "email": user.email, "unlocked": True}
    except (AccountError, ThrottleUnavailable) as exc:
        raise CLIError(str(exc)) from None
    if as_json:
        emit_json(result)
    else:
        click.echo(f"user {result['email']} unlocked")
