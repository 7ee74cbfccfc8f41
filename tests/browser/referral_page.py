"""The staff referral page as a person uses it: its long sections are folded
(``<details>``) unless they hold what needs doing, and are opened by a click on
their title."""

from __future__ import annotations

from playwright.sync_api import expect


def open_section(page, section_id: str):
    """Open the folded section ``#section_id`` (a click on its title, if closed)."""
    details = page.locator(f"#{section_id} > details")
    if details.get_attribute("open") is None:
        details.locator(":scope > summary").click()
    expect(details).to_have_attribute("open", "")
    return page.locator(f"#{section_id}")
