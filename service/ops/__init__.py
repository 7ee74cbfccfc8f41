"""Operations: errors, health, metrics, OpenAPI, rate limits, security headers, logging."""

from __future__ import annotations


def init_app(app) -> None:
    """Install the operational parts on ``app`` (called by ``create_app``)."""
