"""Fixing failures in bulk, in a real browser on the real pipeline (worker and
scheduler processes, a real SMTP server): three patients' emails are refused
(550) and fail; staff open Failures, tick two, press "Retry selected", see
the result at the top of the page, and each of the two reaches the SMTP
server once while the third stays failed."""

from __future__ import annotations

import time
import uuid

from playwright.sync_api import expect
from sample_referrals import routine
from signing_in import sign_in
from sqlalchemy import select

from refflow.db.models import Delivery

NAMES = ("Ada", "Bea", "Cleo")


def _wait(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


def test_staff_retry_selected_failed_deliveries(page, site, smtp):
    family = f"Bulk{uuid.uuid4().hex[:6]}"
    with smtp.lock:
        smtp.fail_next[:] = ["550 5.1.1 mailbox unavailable"] * len(NAMES)
    ids = {}
    for name in NAMES:
        body = routine(external_id=f"EHR-{uuid.uuid4().hex[:8]}")
        body["patient"] = {**body["patient"], "given_name": name, "family_name": family,
                           "email": f"{name.lower()}@example.org"}
        ids[name] = site.submit("north", body)
        # one at a time, so the refusals go to these three emails in order
        site.stack.wait_for([ids[name]], statuses=("failed", "completed"))
    with site.stack.db.session() as session:
        emails = {name: session.scalar(select(Delivery).where(
            Delivery.referral_id == rid, Delivery.channel == "email")) for name, rid in ids.items()}
    assert {d.status for d in emails.values()} == {"failed"}

    sign_in(page, site.staff_email)
    page.get_by_role("link", name="Failures").click()
    expect(page.get_by_role("heading", name="Fixing failures in bulk")).to_be_visible()
    for name in NAMES[:2]:
        page.get_by_role("checkbox", name=f"Choose the email delivery to {family}, {name}").check()
    page.get_by_role("button", name="Retry selected").click()

    notice = page.get_by_role("status").filter(has_text="Sent again 2, skipped 0.")
    expect(notice).to_be_in_viewport()
    for name in NAMES[:2]:
        _wait(lambda name=name: len(smtp.for_delivery(emails[name].id)) == 1)
    expect(page.get_by_role("checkbox", name=f"Choose the email delivery to {family}, {NAMES[2]}")
           ).to_be_visible()
    expect(page.get_by_text(f"{family}, {NAMES[0]}", exact=True)).to_have_count(0)
    site.stack.wait_for([ids[n] for n in NAMES[:2]], statuses=("completed",))
    assert [len(smtp.for_delivery(emails[n].id)) for n in NAMES] == [1, 1, 0]
    assert page.console_errors == []
