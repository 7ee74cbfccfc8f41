"""refflow's referral form to print and fax back (``documents.referral_form``).

``GET /forms/referral.pdf`` is public: a blank form whose barcode names no
practice (no PHI, the same for everyone, so browsers and proxies may keep it).
A referring office's portal offers the form printed for that practice
(``portal.referral_form``): its barcode names the practice, so the fax is
matched to it whatever number it comes from.
"""

from __future__ import annotations

import functools
import hashlib

from flask import Blueprint, Response, current_app, request

from refflow.documents.clinic import ClinicInfo

bp = Blueprint("paper_forms", __name__)

PUBLIC_MAX_AGE = 24 * 3600
PRACTICE_MAX_AGE = 3600
FILENAME = "referral-form.pdf"


@functools.lru_cache(maxsize=16)
def _render(clinic: ClinicInfo, practice_id: str | None, practice_name: str | None,
            paper: str) -> bytes:
    from refflow.documents.referral_form import render_form

    return render_form(clinic, practice_id=practice_id, practice_name=practice_name,
                       paper=paper)


def form_pdf(practice_id: str | None = None, practice_name: str | None = None) -> bytes:
    """The form for this clinic (rendered once per clinic, practice and paper size)."""
    settings = current_app.extensions["refflow.settings"]
    return _render(ClinicInfo.from_settings(settings), practice_id, practice_name,
                   settings.paper)


def form_response(practice_id: str | None = None, practice_name: str | None = None) -> Response:
    """The form as a PDF download; a practice's copy is private to the browser."""
    content = form_pdf(practice_id, practice_name)
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
    if practice_id is None:
        response.cache_control.public = True
        response.cache_control.max_age = PUBLIC_MAX_AGE
    else:
        response.cache_control.private = True
        response.cache_control.max_age = PRACTICE_MAX_AGE
        response.vary.add("Cookie")
    response.set_etag(hashlib.sha256(content).hexdigest()[:32])
    return response.make_conditional(request)


@bp.get("/forms/referral.pdf")
def referral_form():
    return form_response()
