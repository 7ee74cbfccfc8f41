"""Signing in and posting forms as a browser would, for the Flask-client tests."""

from __future__ import annotations

import re

PASSWORD = "correct horse battery staple"


def token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, email: str, password: str = PASSWORD):
    """Post the sign-in form with its token; returns the answer."""
    page = client.get("/login")
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token(page.text)})
