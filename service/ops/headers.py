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

# Set on every response unless the view set its own (in this order).
DEFAULTS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
_HSTS = (("Strict-Transport-Security", HSTS),)
# Every answer but the stylesheet and script may carry patient data (pages,
# API answers, documents): no browser or proxy keeps a copy.
_NO_STORE = (("Cache-Control", "no-store"),)
STATIC_PREFIXES = ("/web-static/", "/static/")
# by (over TLS, may hold patient data)
_BY_KIND = {(False, False): DEFAULTS, (False, True): DEFAULTS + _NO_STORE,
            (True, False): DEFAULTS + _HSTS, (True, True): DEFAULTS + _HSTS + _NO_STORE}


def defaults_for(secure: bool, path: str) -> tuple[tuple[str, str], ...]:
    """The headers a response to ``path`` gets unless it set its own
    (``secure``: the request arrived over TLS)."""
    return _BY_KIND[secure, not path.startswith(STATIC_PREFIXES)]


def init_app(app: Flask) -> None:
    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers["X-Request-Id"] = g.get("request_id", "")
        defaults = defaults_for(request.is_secure, request.path)
        # one pass over the response's headers instead of a scan per default
        present = {name.lower() for name, _value in headers.items()}
        headers.extend([(name, value) for name, value in defaults
                        if name.lower() not in present])
        return response
