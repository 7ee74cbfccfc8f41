"""The staff dashboard, the referring-office portal and sign-in (server-rendered)."""

from __future__ import annotations


def init_app(app) -> None:
    """Register the web pages on ``app`` (called by ``create_app``)."""


def error_page(status: int, message: str):
    """An HTML error page for browser requests."""
    from flask import make_response
    from markupsafe import escape

    response = make_response(f"<!doctype html><title>{status}</title><h1>{status}</h1>"
                             f"<p>{escape(message)}</p>", status)
    return response
