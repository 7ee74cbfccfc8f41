"""Signing in to refflow in the browser, as a person does: the login form."""

from __future__ import annotations


def sign_in(page, email: str, password: str | None = None) -> None:
    """Fill and send the login form (with the test site's password unless one is given)."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password or page.site_password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()
