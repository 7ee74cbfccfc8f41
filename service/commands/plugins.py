"""``refflow plugins``: list the installed plugins, their versions and hooks."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True,
              help="Also list disabled plugins and plugins that failed to load.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def command(show_all: bool, as_json: bool) -> None:
    """List plugins (built-in channels and rules included): name, version, hooks, enabled."""
    from refflow.config import load_settings
    from refflow.plugins.manager import get_plugin_manager, list_plugins

    settings = load_settings(secret_key="unused-by-plugins")  # no key file for a listing
    plugins = list_plugins(get_plugin_manager(settings), include_disabled=show_all)
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
