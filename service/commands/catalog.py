"""``refflow catalog --gallery OUT.pdf``: every catalogue exercise's drawing, for a clinician to check."""

from __future__ import annotations

from pathlib import Path

import click

from refflow.cli import CLIError


@click.command("catalog")
@click.option("--gallery", "gallery", metavar="OUT.pdf", type=click.Path(dir_okay=False),
              required=True, help="Write a PDF of every exercise's drawing with its name.")
def command(gallery: str) -> None:
    """The exercise catalogue: its drawings as a gallery PDF."""
    from refflow.documents.drawings import DrawingDataError, gallery_pdf
    from refflow.planning.catalog import load_catalog

    exercises = load_catalog().exercises
    try:
        pdf = gallery_pdf([(e.id, e.name, dict(e.drawing) if e.drawing else None)
                           for e in exercises])
    except DrawingDataError as exc:
        raise CLIError(str(exc)) from None
    try:
        Path(gallery).write_bytes(pdf)
    except OSError as exc:
        raise CLIError(f"cannot write {gallery}: {exc.strerror}") from None
    missing = sum(1 for e in exercises if not e.drawing)
    click.echo(f"wrote {gallery} ({len(exercises)} exercises"
               + (f", {missing} without a drawing" if missing else "") + ")")
