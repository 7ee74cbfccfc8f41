"""``refflow catalog --gallery OUT.pdf``: every exercise's drawing (the catalogue's and
the plugins'), for a clinician to check."""

from __future__ import annotations

from pathlib import Path

import click

from refflow.cli import CLIError


@click.command("catalog")
@click.option("--gallery", "gallery", metavar="OUT.pdf", type=click.Path(dir_okay=False),
              required=True, help="Write a PDF of every exercise's drawing with its name "
              "(the plugins' exercises after the catalogue's).")
def command(gallery: str) -> None:
    """The exercise catalogue: its drawings as a gallery PDF."""
    from refflow.config import load_settings
    from refflow.documents.drawings import DrawingDataError, gallery_pdf
    from refflow.planning.catalog import load_catalog, plugin_exercises
    from refflow.plugins.manager import exercise_catalog, get_plugin_manager

    exercises = list(load_catalog().exercises)
    # A listing needs no secret; passing one keeps load_settings from creating a key file.
    entries, failures = exercise_catalog(
        get_plugin_manager(load_settings(secret_key="unused-by-catalog")))
    extra, refused = plugin_exercises(entries, {e.id for e in exercises})
    exercises += extra
    plugin_count = len(extra)
    problems = [f.message for f in failures] + [f"plugin {r.source}: {r.message}"
                                                for r in refused]
    try:
        pdf = gallery_pdf([(e.id if e.source == "refflow" else f"{e.id} (plugin {e.source})", e.name,
                            dict(e.drawing) if e.drawing else None) for e in exercises])
    except DrawingDataError as exc:
        raise CLIError(str(exc)) from None
    try:
        Path(gallery).write_bytes(pdf)
    except OSError as exc:
        raise CLIError(f"cannot write {gallery}: {exc.strerror}") from None
    missing = sum(1 for e in exercises if not e.drawing)
    for problem in problems:
        click.echo(f"left out: {problem}", err=True)
    click.echo(f"wrote {gallery} ({len(exercises)} exercises"
               + (f", {plugin_count} from plugins" if plugin_count else "")
               + (f", {missing} without a drawing" if missing else "") + ")")
