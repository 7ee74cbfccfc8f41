"""``refflow plugins``: list the installed plugins, their versions and hooks."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True,
              help="Also list disabled plugins and plugins that failed to load.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def command(show_all: bool, as_json: bool) -> None:
    """List plugins (built-in channels and rules included): name, version, hooks,
    enabled; then the fax transports and what each supports."""
    from refflow.config import load_settings
    from refflow.plugins.manager import describe_fax_transports, get_plugin_manager, list_plugins

    settings = load_settings(secret_key="unused-by-plugins")  # no key file for a listing
    pm = get_plugin_manager(settings)
    plugins = list_plugins(pm, include_disabled=show_all)
    transports = describe_fax_transports(pm, settings)
    if as_json:
        click.echo(json.dumps(plugins, indent=2))
        return
    if not plugins:
        click.echo("no plugins")
        return
    width = max(len(p["name"]) for p in plugins)
    for p in plugins:
        state = "enabled" if p["enabled"] else f"disabled ({p.get('reason') or 'disabled'})"
        hooks = ", ".join(h.removeprefix("refflow_") for h in p["hooks"]) or "-"
        click.echo(f"{p['name']:<{width}}  {p['version'] or '?':<8}  {state:<10}  {hooks}")
    if transports:
        click.echo("\nfax transports (REFFLOW_FAX_TRANSPORT):")
        for t in transports:
            supports = ", ".join(t["supports"]) or "queues only"
            click.echo(f"  {t['name']:<{width - 2}}  {supports}{'  (selected)' if t['selected'] else ''}")
