"""``python -m refflow`` is the ``refflow`` command."""

from refflow.cli import main

main()
