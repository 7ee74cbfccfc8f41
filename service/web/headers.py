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

# Set on every response unless the view set its own.
DEFAULTS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Every answer but the stylesheet and script may carry patient data (pages,
# API answers, documents): no browser or proxy keeps a copy.
STATIC_PREFIXES = ("/web-static/", "/static/")


def init_app(app: Flask) -> None:
    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers["X-Request-Id"] = g.get("request_id", "")
        for name, value in DEFAULTS.items():
            headers.setdefault(name, value)
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if not request.path.startswith(STATIC_PREFIXES):
            headers.setdefault("Cache-Control", "no-store")
        return response
