"""The staff Reports page in a real browser: referrals sent through the real
service (API, worker, scheduler), then the page's numbers, its bar charts
(server-drawn SVG, with a table behind each), the practice picker and the
CSV download."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sample_referrals import flagged, routine
from signing_in import sign_in

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def test_reports_page_shows_charts_and_downloads_the_csv(page, site):
    released = [site.submit("north", routine(external_id=f"RPT-{n}")) for n in range(2)]
    held = site.submit("lake", flagged())
    site.stack.wait_for(released)
    site.stack.wait_for([held], statuses=("needs_review",))

    sign_in(page, site.staff_email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Reports", level=1).is_visible()

    def count(key: str) -> str:
        return page.locator(f'[data-count="{key}"] .tile-n').inner_text()

    assert (count("received"), count("released"), count("held"), count("completed")) == (
        "3", "2", "1", "2")
    # each chart is an SVG image with a text alternative and its bars labelled
    counts_chart = page.locator('svg[data-chart="counts"]')
    assert counts_chart.get_attribute("role") == "img"
    assert "Received 3" in counts_chart.locator("title").text_content()
    assert counts_chart.locator("rect").count() == 8
    assert page.locator('svg[data-chart="counts"] text.bar-label').first.text_content() == "Received"
    deliveries = page.locator('svg[data-chart="deliveries"]')
    assert "Fax to referrer: Sent 2" in deliveries.locator("title").text_content()
    top = page.locator('svg[data-chart="top"] text.bar-label').all_text_contents()
    assert top[0].startswith("North Family Medicine") and top[1].startswith("Lakeside Clinic")
    assert page.locator('tr[data-time="receipt_to_release"] td').first.inner_text() == "2"
    assert "still held" in page.locator('tr[data-time="held_in_review"]').inner_text()
    # the table behind a chart
    page.get_by_text("Show as a table").first.click()
    assert page.get_by_role("row", name="Plan released 2", exact=True).is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "reports_page.png"), full_page=True)

    # one practice
    page.get_by_label("Practice", exact=True).select_option(value=site.practices["lake"]["id"])
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    assert (count("received"), count("held")) == ("1", "1")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("refflow-stats-")
    text = download.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["section", "item", "measure", "value"]
    table = {(s, i, m): v for s, i, m, v in rows[1:]}
    assert table[("referrals", "received", "count")] == "1"
    assert table[("referrals", "held", "count")] == "1"
    assert table[("period", "", "practice")].startswith("Lakeside Clinic")
    assert page.console_errors == []


def test_a_bad_period_is_explained_on_the_page(page, site):
    sign_in(page, site.staff_email)
    page.goto("/reports?from=2026-03-10&to=2026-03-01")
    assert page.get_by_role("alert").inner_text() == "from must be on or before to"
    assert page.locator("svg.bars").count() >= 1  # the default period is shown instead
