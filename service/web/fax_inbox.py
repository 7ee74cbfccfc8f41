"""The staff Fax inbox: received faxes waiting for a person, and the review screen
where a fax becomes a referral, joins an existing one, or is archived.

``/faxes`` lists the faxes (waiting, done or archived), newest first.
``/faxes/<fax_id>`` shows the pages beside the draft that reading made: one
input per field of refflow's referral form (``documents.referral_form.FIELDS``),
prefilled with what was read and marked "Check this" where the reader was
unsure. Its three actions go through ``faxin.inbox`` (``create_referral``,
``attach``, ``archive``), which record the timeline and the audit trail.

A fax is PHI: the URLs carry ids only, nothing about a fax is logged, and
every view of a fax (the list, the review screen, each page image) is an audit
entry with ids only, written by ``faxin.inbox`` (``listing``, ``view``,
``page_png``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from refflow.db.models import ReceivedFax, Referral, User
from refflow.documents.formatting import clinic_region, phone_text
from refflow.faxin import draft, inbox, pages
from refflow.intake.validation import InvalidReferral
from refflow.pipeline.context import Pipeline, StepError
from refflow.web import downloads, queue
from refflow.web.auth import WebUser, current_user, staff_required
from refflow.web.converters import is_id

bp = Blueprint("fax_inbox", __name__)

READING, READ = "received", "read"
WAITING = (READING, READ)
SHOWS = {"waiting": WAITING, "done": ("referral", "attached"), "archived": ("archived",)}
SHOW_LABELS = {"waiting": "Waiting", "done": "Done", "archived": "Archived"}
STATUS_LABELS = {READING: "Reading…", READ: "Waiting for review",
                 "referral": "Referral created", "attached": "Attached to a referral",
                 "archived": "Archived"}
LIST_LIMIT = 50
CHECK_BELOW = 0.8  # a field read with less confidence than this is marked "Check this"
PAGE_WIDTH = 1100  # pixels of a page image on the review screen (a fax page is 1728)
TEXT_MAX = 4000


def _pipeline() -> Pipeline:
    return current_app.extensions["refflow.pipeline"]


def _db():
    return current_app.extensions["refflow.db"]


def _settings():
    return current_app.extensions["refflow.settings"]


# -- the count in the navigation ------------------------------------------------------

def waiting_count(s) -> int:
    counts = inbox.counts(s)
    return sum(counts.get(status, 0) for status in WAITING)


@bp.app_context_processor
def _navigation() -> dict:
    """``fax_waiting()`` for the staff navigation (asked only when a staff page renders)."""
    def fax_waiting() -> int:
        user = current_user()
        if user is None or not user.is_staff:
            return 0
        with _db().session() as s:
            return waiting_count(s)
    return {"fax_waiting": fax_waiting}


# -- how a fax is shown ----------------------------------------------------------------

def caller_text(number: str | None, region: str) -> str:
    """The caller's number as the clinic writes numbers, or as received when it is
    not a phone number (a fax machine's TSI)."""
    return phone_text(number, region) or "Number withheld"


def _region() -> str:
    return clinic_region(_settings().clinic_locale)


def kind_of(fax: inbox.FaxView) -> str:
    """"form" (refflow's referral form), "free" (any other fax) or "reading"."""
    if fax.reading is None:
        return "reading"
    return "form" if fax.form else "free"


# -- the list ----------------------------------------------------------------------------

@bp.get("/faxes")
@staff_required
def index(user: WebUser):
    show = request.args.get("show", "waiting")
    if show not in SHOWS:
        show = "waiting"
    cursor = request.args.get("after") or None
    region = _region()
    with _db().session() as s:
        try:
            faxes, next_cursor = inbox.listing(s, actor=user.actor, ip=request.remote_addr,
                                               statuses=list(SHOWS[show]), limit=LIST_LIMIT,
                                               cursor=cursor)
        except ValueError:
            abort(404)
        counts = inbox.counts(s)
    items = [{"fax": f, "caller": caller_text(f.from_number, region), "kind": kind_of(f)}
             for f in faxes]
    totals = {name: sum(counts.get(st, 0) for st in statuses)
              for name, statuses in SHOWS.items()}
    body = render_template("staff/fax_inbox.html", user=user, items=items, show=show,
                           totals=totals, shows=SHOW_LABELS, status_labels=STATUS_LABELS,
                           next_cursor=next_cursor, paged=cursor is not None)
    return downloads.private(Response(body))


# -- the review screen ---------------------------------------------------------------

# The form's sections (``documents.referral_form``), by the first field of each:
# fieldsets name them, so two fields called "Phone" are told apart.
SECTIONS = {"patient.family_name": "Patient", "referrer.name": "Referring provider",
            "diagnosis.codes": "Diagnosis", "clinical.t_score": "Bone health and falls",
            "clinical.conditions": "Health and goals"}
TEXTAREA_KINDS = ("text",)  # a text field of more than one line
INPUTMODES = {"number": "decimal", "npi": "numeric", "phone": "tel", "email": "email"}
HINTS = {"date": "YYYY-MM-DD (or MM/DD/YYYY)", "phone": "Any common format",
         "icd10": "Separate codes with spaces or commas"}


@dataclass
class Input:
    """One field of the draft as the review screen shows it."""

    field: object  # documents.referral_form.FormField
    id: str
    value: str
    confidence: float | None  # None: nothing was read for it (a free-form fax)
    error: str | None = None
    read: str = ""  # the value as read

    @property
    def read_blank(self) -> bool:
        return self.confidence is not None and not self.read.strip()

    @property
    def check(self) -> bool:
        return self.confidence is not None and self.confidence < CHECK_BELOW

    @property
    def percent(self) -> int | None:
        return None if self.confidence is None else round(self.confidence * 100)

    @property
    def options(self) -> list[tuple[str, str]]:
        return [(str(choice[0]), str(choice[1])) for choice in self.field.choices]

    @property
    def marked(self) -> set[str]:
        """The choices marked (several for a "mark all that apply" field)."""
        return {part.strip() for part in self.value.split(",") if part.strip()}

    @property
    def unmatched(self) -> str:
        """A choice field's value that is none of its choices (as read), else ''."""
        if self.field.kind != "choice" or not self.value.strip():
            return ""
        return self.value if self.marked - {v for v, _ in self.options} else ""

    @property
    def multiline(self) -> bool:
        return self.field.kind in TEXTAREA_KINDS and self.field.lines > 1

    @property
    def inputmode(self) -> str:
        return INPUTMODES.get(self.field.kind, "")

    @property
    def hint(self) -> str:
        return HINTS.get(self.field.kind, "")


@dataclass
class Section:
    title: str
    inputs: list[Input]


@functools.cache
def _form_fields() -> tuple:
    from refflow.documents.referral_form import FIELDS

    return tuple(FIELDS)


def input_id(name: str) -> str:
    return "fx-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def _sections(read: dict, posted: dict | None, errors: dict[str, str]) -> list[Section]:
    """The draft's inputs in the form's sections: what was typed (``posted``) or
    else what was read."""
    sections: list[Section] = []
    for field in _form_fields():
        found = read.get(field.name) or {}
        value = posted.get(field.name, "") if posted is not None else str(found.get("value")
                                                                        or "")
        confidence = found.get("confidence") if found else None
        item = Input(field, input_id(field.name), value,
                     float(confidence) if confidence is not None else None,
                     errors.get(field.name), str(found.get("value") or ""))
        if field.name in SECTIONS or not sections:
            sections.append(Section(SECTIONS.get(field.name, "Referral"), []))
        sections[-1].inputs.append(item)
    return sections


def _posted_values() -> dict[str, str]:
    values = {}
    for field in _form_fields():
        if field.kind == "checkbox":
            values[field.name] = "x" if request.form.get(field.name) else ""
        elif field.kind == "choice" and field.multiple:
            values[field.name] = ",".join(v for v in request.form.getlist(field.name) if v)
        else:
            values[field.name] = (request.form.get(field.name) or "")[:TEXT_MAX]
    return values


def error_input(key: str) -> str:
    """The form field a validation error (a referral JSON path) belongs to, or ''.

    The form's fields are named by the paths they fill: the field of that name,
    or the closest one above or below it (``clinical.fractures.0.site`` →
    ``clinical.fractures``, ``diagnosis`` → its first field)."""
    names = [f.name for f in _form_fields()]
    if key in names:
        return key
    above = [n for n in names if key.startswith(n + ".")]
    if above:
        return max(above, key=len)
    return next((n for n in names if n.startswith(key + ".")), "")


def _handled_by(s, actor: str | None) -> str:
    """Who handled a fax, by email for a person."""
    actor = actor or ""
    if actor.startswith("user:"):
        return s.scalar(select(User.email).where(User.id == actor.split(":", 1)[1])) or actor
    return actor


def _review(user: WebUser, fax_id: str, *, posted: dict | None = None,
            errors: dict[str, str] | None = None, problem: dict | None = None,
            status: int = 200) -> Response:
    """The review screen; ``posted``/``errors``: a refused draft, shown again with
    what was typed; ``problem``: a refused attach or archive ({"action", "message",
    "typed"})."""
    errors = errors or {}
    field_names = {f.name for f in _form_fields()}
    with _db().session() as s:
        fax = inbox.view(s, fax_id, actor=user.actor, ip=request.remote_addr)
        if fax is None:
            abort(404)
        practices = queue.practices(s)
        names = dict(practices)
        barcode_practice = (fax.form or {}).get("practice_id")
        chosen = (request.form.get("practice_id", "") if posted is not None
                  else fax.practice_id or "")
        referral = s.get(Referral, fax.referral_id) if fax.referral_id else None
        referral_name = queue.patient_name(referral) if referral else None
        sections = _sections(fax.fields, posted, errors)
        summary = [(i.id, f"{section.title}: {i.field.label}", i.error)
                   for section in sections for i in section.inputs if i.error]
        if errors.get("practice_id"):
            summary.insert(0, ("fx-practice", "Referring practice", errors["practice_id"]))
        ctx = {
            "fax": fax, "kind": kind_of(fax),
            "caller": caller_text(fax.from_number, _region()),
            "matched_practice": fax.practice_name, "matched_by": fax.matched_by,
            "form_practice": names.get(barcode_practice) if barcode_practice else None,
            "practices": practices, "chosen_practice": chosen,
            "sections": sections, "summary": summary,
            "page_texts": fax.page_texts,
            "errors": errors,
            "general_errors": [m for k, m in errors.items()
                               if k not in field_names and k != "practice_id"],
            "problem": problem or {},
            "waiting": fax.is_open,
            "reading_now": fax.reading is None and fax.is_open,
            "referral_name": referral_name,
            "handled_by": _handled_by(s, fax.handled_by),
            "status_labels": STATUS_LABELS,
            "check_below": round(CHECK_BELOW * 100),
        }
    # rendered after the session ends: the page's navigation asks the database too
    body = render_template("staff/fax_review.html", user=user, **ctx)
    return downloads.private(Response(body, status=status))


@bp.get("/faxes/<fax_id>")
@staff_required
def review(user: WebUser, fax_id: str):
    return _review(user, fax_id)


@bp.get("/faxes/<fax_id>/reading")
@staff_required
def reading_fragment(user: WebUser, fax_id: str):
    """While a fax is being read: whether reading has finished (nothing of the fax
    itself, so not an audited read)."""
    with _db().session() as s:
        found = s.execute(select(ReceivedFax.status, ReceivedFax.reading.is_not(None))
                          .where(ReceivedFax.id == fax_id)).first()
    if found is None:
        abort(404)
    status, read = found
    body = render_template("staff/_fax_reading.html", fax_id=fax_id,
                           done=read or status not in WAITING)
    return downloads.private(Response(body))


@bp.get("/faxes/<fax_id>/pages/<int:page>.png")
@staff_required
def page_png(user: WebUser, fax_id: str, page: int):
    """Page ``page`` (1-based) as PNG: scaled for the screen, or ``?size=full``."""
    width = None if request.args.get("size") == "full" else PAGE_WIDTH
    with _db().session() as s:
        try:
            body = inbox.page_png(s, _pipeline().store, fax_id, page, actor=user.actor,
                                  ip=request.remote_addr, width=width)
        except pages.NotAFax:
            body = None
    if body is None:
        abort(404)
    return downloads.private(Response(body, mimetype="image/png"))


# -- the actions ----------------------------------------------------------------------

def _handled(fax_id: str):
    flash("This fax was already dealt with (someone else may have done it first).", "error")
    return redirect(url_for("fax_inbox.review", fax_id=fax_id))


@bp.post("/faxes/<fax_id>/referral")
@staff_required
def create_referral(user: WebUser, fax_id: str):
    values = _posted_values()
    practice_id = (request.form.get("practice_id") or "").strip() or None
    try:
        payload = draft.referral_payload(values)
        answer = inbox.create_referral(_pipeline(), fax_id, payload, practice_id=practice_id,
                                       actor=user.actor, ip=request.remote_addr)
    except InvalidReferral as exc:
        errors: dict[str, str] = {}
        for key, message in (exc.fields or {"body": exc.message}).items():
            errors.setdefault(error_input(key) or key, _wording(message))
        return _review(user, fax_id, posted=values, errors=errors, status=422)
    except inbox.InvalidFaxAction as exc:
        message = ("Choose the practice that sent this referral."
                   if "practice_id" in exc.fields else exc.message)
        return _review(user, fax_id, posted=values, errors={"practice_id": message},
                       status=422)
    except LookupError:
        abort(404)
    except StepError:
        return _handled(fax_id)
    if answer.get("status") == "rejected":
        flash("The referral was created from the fax but not accepted by the clinic's "
              "intake rules; its timeline says why.", "error")
    else:
        flash("Referral created from the fax. Its plan is being built.", "success")
    return redirect(url_for("staff.referral", referral_id=answer["id"]))


def _wording(message: str) -> str:
    return {"required": "This is required."}.get(message, message)


def _find_referral(s, text: str, practice_id: str | None) -> tuple[str | None, str | None]:
    """A referral by its id or by the referring office's reference: (id, problem)."""
    text = text.strip()
    if not text:
        return None, "Give the referral's id or the referring office's reference."
    if is_id(text.lower()):
        found = s.scalar(select(Referral.id).where(Referral.id == text.lower()))
        if found is not None:
            return found, None
    matches = s.scalars(select(Referral.id).where(Referral.external_id == text)
                        .limit(20)).all()
    if len(matches) > 1 and practice_id:
        own = s.scalars(select(Referral.id).where(Referral.external_id == text,
                                                  Referral.practice_id == practice_id)
                        .limit(2)).all()
        matches = own or matches
    if len(matches) == 1:
        return matches[0], None
    if matches:
        return None, ("Several referrals have this reference: give the referral's id "
                      "(the last part of its page's address).")
    return None, "No referral has this id or reference."


@bp.post("/faxes/<fax_id>/attach")
@staff_required
def attach(user: WebUser, fax_id: str):
    typed = (request.form.get("referral") or "")[:200]
    with _db().session() as s:
        matched = s.scalar(select(ReceivedFax.practice_id).where(ReceivedFax.id == fax_id))
        referral_id, problem = _find_referral(s, typed, matched)
    if problem:
        return _review(user, fax_id, status=422,
                       problem={"action": "attach", "message": problem, "typed": typed})
    try:
        inbox.attach(_pipeline(), fax_id, referral_id, actor=user.actor, ip=request.remote_addr)
    except inbox.NoSuchReferral:  # deleted in the meantime
        return _review(user, fax_id, status=422, problem={
            "action": "attach", "message": "No referral has this id or reference.",
            "typed": typed})
    except LookupError:
        abort(404)
    except StepError:
        return _handled(fax_id)
    flash("The fax was attached to this referral; its timeline says so.", "success")
    return redirect(url_for("staff.referral", referral_id=referral_id))


@bp.post("/faxes/<fax_id>/archive")
@staff_required
def archive(user: WebUser, fax_id: str):
    reason = " ".join((request.form.get("reason") or "").split())
    try:
        inbox.archive(_pipeline(), fax_id, reason, actor=user.actor, ip=request.remote_addr)
    except inbox.InvalidFaxAction as exc:
        message = {"required": "Say why the fax is archived."}.get(
            exc.fields.get("reason", ""), exc.message)
        return _review(user, fax_id, status=422,
                       problem={"action": "archive", "message": message, "typed": reason})
    except LookupError:
        abort(404)
    except StepError:
        return _handled(fax_id)
    flash("Fax archived. It is kept for the retention period, then deleted.", "success")
    return redirect(url_for("fax_inbox.index"))
