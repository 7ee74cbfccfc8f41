"""``refflow web``: the web app under gunicorn."""

from __future__ import annotations

import click

from refflow.commands.context import (
    host_option,
    port_free_or_exit,
    port_option,
    settings_or_exit,
)


@click.command("web")
@host_option
@port_option
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
def command(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the API, the dashboard and the portal (gunicorn)."""
    settings = settings_or_exit(create_data_dir=True)
    port_free_or_exit(host, port)
    from refflow.web.server import serve

    serve(settings, host=host, port=port, workers=workers, threads=threads)
