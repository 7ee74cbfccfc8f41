"""``refflow demo``: submit sample referrals to a running refflow and follow them."""

from __future__ import annotations

import json
import time
from importlib import resources

import click
import requests

from refflow.cli import CLIError

FINAL = {"completed", "failed", "needs_review", "rejected", "cancelled"}


def samples() -> list[dict]:
    return json.loads(resources.files("refflow.commands").joinpath("demo_referrals.json")
                      .read_text())


@click.command("demo")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True,
              help="The running refflow (see `refflow run`).")
@click.option("--api-key", envvar="REFFLOW_DEMO_API_KEY",
              help="A practice's API key; without one a 'Demo Practice' is created in the "
                   "configured database.")
@click.option("--timeout", default=120.0, show_default=True)
def command(url: str, api_key: str | None, timeout: float) -> None:
    """Submit the sample referrals and show their progress until each settles."""
    if not api_key:
        api_key = _demo_key()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {api_key}"
    ids: dict[str, str] = {}
    for body in samples():
        try:
            r = http.post(f"{url}/api/v1/referrals", json=body, timeout=10,
                          headers={"Idempotency-Key": f"demo-{body['external_id']}"})
        except requests.RequestException as exc:
            raise CLIError(f"cannot reach {url} ({type(exc).__name__}); is `refflow run` "
                           "running?") from None
        if r.status_code != 202:
            raise CLIError(f"{body['external_id']}: {r.status_code} "
                           f"{r.json().get('error', {}).get('message', '')}")
        ids[r.json()["id"]] = body["external_id"]
        click.echo(f"submitted {body['external_id']} → {r.json()['id']}")
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rid, name in ids.items():
            status = http.get(f"{url}/api/v1/referrals/{rid}", timeout=10).json()["status"]
            if seen.get(rid) != status:
                seen[rid] = status
                click.echo(f"  {name}: {status}")
        if all(s in FINAL for s in seen.values()):
            break
        time.sleep(0.5)
    done = sum(s in FINAL for s in seen.values())
    click.echo(f"{done} of {len(ids)} referrals settled; "
               f"{sum(s == 'needs_review' for s in seen.values())} wait for staff review")


def _demo_key() -> str:
    from refflow.accounts.practices import AccountError, create_practice, find_practice, issue_key
    from refflow.commands.context import database

    with database().session() as session:
        try:
            practice = find_practice(session, "Demo Practice")
        except AccountError:
            practice = create_practice(session, "Demo Practice", fax="+1 763 555 0198",
                                       email="office@demo-practice.example.org")
        _, key = issue_key(session, practice)
    return key
