"""``refflow render REFERRAL.json --out DIR``: the documents, without database or broker."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

import click

from refflow.cli import CLIError


def _load_referral(path: Path):
    from pydantic import ValidationError

    from refflow.intake.schemas import Referral

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}"
                       ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})"
                       ) from None
    try:
        return Referral.model_validate(data)
    except ValidationError as exc:
        # Location and message only: pydantic's "input" would echo patient data.
        errors = exc.errors(include_input=False, include_url=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "referral"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CLIError(f"{path} is not a valid referral: {where}: {first['msg']}{more}") from None


@click.command("render")
@click.argument("referral_file", metavar="REFERRAL.json",
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write handout.pdf, summary.pdf, chart.pdf and fax.tiff into "
                   "(created if missing).")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The plan's 'today' (ISO date; default: today).")
@click.option("--resolution", type=click.Choice(["fine", "normal"]),
              help="Fax resolution: fine 204x196 dpi, normal 204x98 (default: REFFLOW_FAX_RESOLUTION).")
@click.option("--paper", type=click.Choice(["letter", "a4"]),
              help="Paper size (default: REFFLOW_PAPER).")
def command(referral_file: Path, out_dir: Path, as_of, resolution, paper) -> None:
    """Render the documents of a referral: the patient's handout PDF, the referrer's
    one-page summary PDF, the chart record PDF and the fax TIFF (cover + summary)."""
    from refflow.config import ConfigError, load_settings
    from refflow.documents.clinic import ClinicInfo
    from refflow.documents.render import render_all

    try:
        # Rendering needs no secret; passing one keeps load_settings from
        # creating a key file in the data dir.
        settings = load_settings(secret_key="unused-by-render")
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    referral = _load_referral(referral_file)
    try:
        from refflow.planning.engine import build_plan
    except ImportError:
        raise CLIError("the plan engine (refflow.planning.engine) is not available") from None
    day = as_of.date() if as_of else dt.date.today()
    plan = build_plan(referral, as_of=day,  # the patient's language as the clinic allows it
                      allow_unreviewed_translations=settings.allow_unreviewed_translations)
    try:
        clinic = ClinicInfo.from_settings(settings)
        clinic.zone  # noqa: B018 - an unknown zone fails here, before any file is written
    except (ValueError, ZoneInfoNotFoundError):
        raise CLIError(f"unknown time zone in REFFLOW_CLINIC_TIMEZONE: "
                       f"{settings.clinic_timezone}") from None
    documents = render_all(referral, plan, clinic,
                           resolution=resolution or settings.fax_resolution,
                           paper=paper or settings.paper)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data in documents.items():
            target = out_dir / name
            tmp = target.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
    except OSError as exc:
        raise CLIError(f"cannot write to {out_dir}: {exc.strerror}") from None
    click.echo(f"decision: {plan.get('decision')}")
    for name, data in documents.items():
        click.echo(f"wrote {out_dir / name} ({len(data)} bytes)")
