"""Webhooks end to end (issue 18), in headless Chromium against the served app
with a real worker and scheduler on Redis and PostgreSQL: a referring office
adds its endpoint in the portal and copies the secret; a referral submitted
through the API reaches the office's receiver (a real HTTP server) as signed
events, verified with the ``standardwebhooks`` library, without a patient's
name; the office re-sends one from the delivery log and receives it again
with the same ``webhook-id``."""

from __future__ import annotations

import time

import pytest
import sample_referrals
from playwright.sync_api import expect
from signing_in import sign_in
from sqlalchemy import select
from standardwebhooks import Webhook
from webhook_receiver import Receiver

from refflow.db.models import ReferralEvent

pytestmark = pytest.mark.browser

CHAIN = ["received", "planning", "planned", "delivering", "completed"]


def wait_until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
    return found


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_signed_events_reach_the_office_and_one_is_re_sent_from_the_portal(
        page, site, receiver):
    sign_in(page, site.practice_user("lake"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("Lakeside EHR")
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("[data-secret]").inner_text()
    assert secret.startswith("whsec_")

    body = sample_referrals.routine(external_id="HOOK-1")
    rid = site.submit("lake", body)
    site.stack.wait_for([rid], timeout=60)
    events = wait_until(lambda: (e := receiver.events(secret)) and any(
        x["data"].get("status") == "completed" and x["type"] == "referral.status_changed"
        for x in e) and e)

    ours = [e for e in events if e["data"]["referral_id"] == rid]
    changes = sorted((e for e in ours if e["type"] == "referral.status_changed"),
                     key=lambda e: e["data"]["event_id"])
    assert [e["data"]["status"] for e in changes] == CHAIN
    assert {e["data"]["external_id"] for e in ours} == {"HOOK-1"}
    sent = [e for e in ours if e["type"] == "delivery.sent"]
    assert sent and all(e["data"]["delivery_id"] and e["data"]["channel"] for e in sent)
    for _, raw in receiver.requests:
        for value in (body["patient"]["given_name"], body["patient"]["family_name"],
                      body["patient"]["birth_date"]):
            assert value not in raw.decode()
    # From the status change's commit to the receiver: the scheduler's fan-out
    # and relay, the broker, the worker's signed POST.
    with site.stack.db.session() as s:
        at = {e.id: e.at.timestamp() for e in s.scalars(
            select(ReferralEvent).where(ReferralEvent.referral_id == rid))}
    latencies = sorted(e["received_at"] - at[e["data"]["event_id"]] for e in ours)
    print(f"\nwebhook latency, event to receiver: {len(latencies)} events, "
          f"median {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"max {latencies[-1] * 1000:.0f} ms")
    assert latencies[-1] < 5.0

    # The delivery log, and a re-send of the "completed" event.
    completed = changes[-1]["webhook-id"]
    page.goto("/portal/webhooks")
    page.get_by_role("link", name="Delivery log").first.click()
    row = page.locator(f"tr[data-message='{completed}']")
    expect(row).to_have_attribute("data-status", "sent")
    expect(row).to_contain_text("referral.status_changed")
    expect(row).to_contain_text(rid)
    row.get_by_role("button", name="Re-send").click()
    expect(page.get_by_role("status")).to_contain_text("is being sent again")
    wait_until(lambda: [h for h, _ in receiver.requests if h["webhook-id"] == completed][1:])
    again = [(h, raw) for h, raw in receiver.requests if h["webhook-id"] == completed]
    assert len(again) == 2
    assert Webhook(secret).verify(again[1][1], again[1][0])["data"]["status"] == "completed"
    page.reload()
    row = page.locator(f"tr[data-message='{completed}']")
    expect(row.locator("td").nth(4)).to_have_text("2")  # attempts
    expect(row).to_have_attribute("data-status", "sent")
    assert page.console_errors == []
