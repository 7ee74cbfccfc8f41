"""The Flask application factory lives in ``refflow.web.app``; ``refflow.app``
is the name the CLI, gunicorn and tests use."""

from refflow.web.app import create_app

__all__ = ["create_app"]
