"""``refflow plan REFERRAL.json``: run the plan engine alone (no database, no broker)."""

from __future__ import annotations

import datetime as dt
import json

import click
from pydantic import ValidationError

from refflow.cli import CLIError


def _describe(exc: ValidationError) -> str:
    """Field locations and messages only: never the submitted values (PHI)."""
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "referral"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"invalid referral: {where}: {first['msg']}{more}"


def load_referral(path: str):
    from refflow.intake.schemas import Referral

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise CLIError(f"no such file: {path}") from None
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise CLIError(f"{path} is not valid JSON" + (f" (line {line})" if line else "")) from None
    if not isinstance(data, dict):
        raise CLIError(f"{path} must contain a JSON object")
    try:
        return Referral.model_validate(data)
    except ValidationError as exc:
        raise CLIError(_describe(exc)) from None


def _clinic_locale() -> str:
    """The clinic's locale (setting ``clinic_locale``): the plan's units follow it."""
    from refflow.config import ConfigError, load_settings

    try:
        # Planning needs no secret; passing one keeps load_settings from creating a key file.
        return load_settings(secret_key="unused-by-plan").clinic_locale
    except ConfigError as exc:
        raise CLIError(str(exc)) from None


@click.command("plan")
@click.argument("referral_file", metavar="REFERRAL.json", type=click.Path(dir_okay=False))
@click.option("--as-of", "as_of", metavar="DATE",
              help="Treat DATE (YYYY-MM-DD) as today for every date rule (default: today).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
def command(referral_file: str, as_of: str | None, fmt: str) -> None:
    """Build the exercise plan for REFERRAL.json and print it."""
    from refflow.planning.engine import build_plan
    from refflow.planning.text import render_text

    if as_of:
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            raise CLIError("--as-of must be a date like 2026-06-01") from None
    else:
        day = dt.date.today()
    referral = load_referral(referral_file)
    plan = build_plan(referral, as_of=day, locale=_clinic_locale())
    if fmt == "text":
        click.echo(render_text(plan), nl=False)
    else:
        click.echo(json.dumps(plan, indent=2, sort_keys=True, ensure_ascii=False))
