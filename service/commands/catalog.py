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
    from refflow.planning.catalog import CatalogError, exercise_from_mapping, load_catalog
    from refflow.plugins.manager import exercise_catalog, get_plugin_manager

    exercises = list(load_catalog().exercises)
    seen = {e.id for e in exercises}
    # A listing needs no secret; passing one keeps load_settings from creating a key file.
    extra, failures = exercise_catalog(get_plugin_manager(load_settings(secret_key="unused-by-catalog")))
    problems = [f.message for f in failures]
    plugin_count = 0
    for entry in extra:
        source = str(entry.get("plugin") or "plugin")[:60]
        try:
            ex = exercise_from_mapping(entry, source=source)
        except CatalogError as exc:
            problems.append(f"plugin {source}: {exc}")
            continue
        if ex.id in seen:
            problems.append(f"plugin {source}: exercise {ex.id!r} is already in the catalogue")
            continue
        seen.add(ex.id)
        exercises.append(ex)
        plugin_count += 1
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
