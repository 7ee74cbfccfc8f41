"""Security headers on every response (OWASP ASVS 3.4.x).

The CSP allows no inline script or style: the dashboard serves its scripts and
styles from /static. HSTS is only sent when the request arrived over TLS
(directly or, behind a proxy, as reported by a trusted ``X-Forwarded-Proto``
that ProxyFix has applied).
"""

from __future__ import annotations

from flask import Flask, g, request

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HSTS = "max-age=31536000; includeSubDomains"


def init_app(app: Flask) -> None:
    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers["X-Request-Id"] = g.get("request_id", "")
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
        return response
