"""The patient handout: the plan in large type and plain language.

Body text is 14 pt, or 16 pt in large print (``ClinicInfo.large_print``);
nothing is smaller than 12 pt (the page footer). Page 1 holds the "Stop and
call us if…" box. Exercise cards flow down the pages: a card is kept on one
page when it fits, but never at the cost of leaving more than a third of a
page empty. "Your week" groups the exercises done on the same days, and the
exercise log has a box on every day "Your week" gives exercises. A
``review`` plan is marked DRAFT on every page; a ``do_not_exercise`` plan
lists no exercises and asks the patient to see their doctor first.
"""

from __future__ import annotations

from dataclasses import dataclass

from reportlab.pdfbase.pdfmetrics import stringWidth

from refflow.documents import formatting as fmt
from refflow.documents import translations as tr
from refflow.documents.clinic import ClinicInfo
from refflow.documents.drawings import CardDrawing, card_drawing_height
from refflow.documents.exercise_text import (
    DAYS,
    UNREVIEWED_ENGLISH,
    UNREVIEWED_NOTICE,
    and_days,
    exercise_days,
    exercise_rows,
    handout_language,
    in_language,
    start_weeks,
    unreviewed_translation,
)
from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow, Style, draft_watermark
from refflow.documents.plan_text import plan_sentence
from refflow.documents.translations import N_, _

DRAFT_TEXT = N_("DRAFT – not yet approved")
# The plan JSON's precaution that starts with these words is the fall plan
# (planning.rules.FALL_PLAN_TITLE; documents may not import planning): the
# handout shows it as a box of its own.
FALL_PLAN_TITLE = N_("If you fall and cannot get up")
DO_NOT_EXERCISE_TEXT = N_("Please do not start exercises until you have seen your doctor.")
LOG_WEEKS = 12  # the program's 12 weeks to the target level (guidance 4.1)
FOOTER_SIZE = 12  # the smallest type in the handout


@dataclass(frozen=True)
class Styles:
    """The handout's type, from the body size (14 pt, or 16 pt in large print)."""

    body: Style
    bold: Style
    title: Style
    h1: Style
    h2: Style
    box_title: Style

    @classmethod
    def for_size(cls, size: int) -> Styles:
        lead = round(size * 1.2, 1)
        return cls(body=Style(REGULAR, size, lead), bold=Style(BOLD, size, lead),
                   title=Style(BOLD, size + 8, size + 14), h1=Style(BOLD, size + 4, size + 9),
                   h2=Style(BOLD, size + 2, size + 5), box_title=Style(BOLD, size + 2, size + 7))


def render_handout(referral, plan: dict, clinic: ClinicInfo, **options) -> bytes:
    """The patient handout PDF for ``plan`` (bytes), in the patient's language
    when the plan has one (:func:`handout_language`); an unreviewed
    translation says so on page 1, in English too."""
    with tr.using(handout_language(plan)):
        return _render_handout(referral, plan, clinic, **options)


def _render_handout(referral, plan: dict, clinic: ClinicInfo, *, paper: str = "letter",
                   patient_url: str | None = None) -> bytes:
    """The patient handout PDF for ``plan`` (bytes); with ``patient_url`` (a
    released plan's page for the patient) a QR code of it on page 1."""
    st = Styles.for_size(16 if clinic.large_print else 14)
    decision = plan.get("decision", "review")
    draft = decision == "review"
    title = _("Your exercise plan") + (f" ({_(DRAFT_TEXT)})" if draft else "")

    def decorate(flow: Flow) -> None:
        c = flow.canvas
        if draft:
            draft_watermark(flow)
        c.setFillGray(0)
        c.setFont(BOLD, 14)
        c.drawString(flow.left, flow.height - 32, clinic.name)
        c.setFont(REGULAR, 14)
        c.drawRightString(flow.right, flow.height - 32, _("Phone {phone}").format(phone=clinic.phone))
        c.setLineWidth(1)
        c.line(flow.left, flow.height - 40, flow.right, flow.height - 40)
        c.setFont(REGULAR, FOOTER_SIZE)
        left = _(DRAFT_TEXT) if draft else _("Questions? Call us at {phone}").format(
            phone=clinic.phone)
        c.drawString(flow.left, 24, left)
        flow.draw_page_of(24, REGULAR, FOOTER_SIZE)

    flow = Flow(paper=paper, margin=38, top=52, bottom=40, title=title, author=clinic.name,
                subject=_("Home exercise plan"), decorate=decorate)
    patient = referral.patient
    locale = tr.locale_for(clinic.locale)
    flow.lines([_("Your exercise plan")], st.title)
    flow.paragraph(_("For {name}").format(name=f"{patient.given_name} {patient.family_name}"),
                   st.bold, after=0)
    as_of = plan.get("as_of")
    if as_of:
        flow.paragraph(_("Plan date: {date}").format(date=fmt.long_date(as_of, locale)), st.body,
                       after=0)
    approved = plan.get("approved") or {}
    if decision == "release" and approved.get("by") and approved.get("at"):
        flow.paragraph(_("Approved by {name} on {date}.").format(
            name=approved["by"], date=fmt.long_date(str(approved["at"])[:10], locale)),
            st.body, after=0)
    if unreviewed_translation(plan):
        _unreviewed_notice(flow, st)
    flow.space(6)

    if draft:
        flow.box(_(DRAFT_TEXT), [
            _("Your therapist has not checked this plan yet."),
            _("Please wait until we call you before you start these exercises."),
        ], st.box_title, st.body, bullet="!")
    if decision == "do_not_exercise":
        flow.box(_(DO_NOT_EXERCISE_TEXT), [
            _("Your doctor needs to see you before you begin an exercise program."),
            _("Please see your doctor, or go to urgent care, before you start any exercise."),
            _("When your doctor says it is safe, call us at {phone} and we will "
              "make a plan with you.").format(phone=clinic.phone),
        ], st.box_title, st.body, bullet="!")
        _stop_box(flow, st, plan, clinic)
        _precautions(flow, st, plan)
        return flow.finish()
    _stop_box(flow, st, plan, clinic)
    if patient_url:
        _patient_link(flow, st, patient_url)

    exercises = plan.get("exercises") or []
    schedule = plan.get("weekly_schedule") or []
    _notes(flow, st, plan)
    flow.heading(_("How to use this plan"), st.h1, rule=True, keep_with=st.body.lead * 3)
    flow.bullets([
        _("Start gently. You should be able to talk while you exercise."),
        _("Effort is counted out of 10: 0 is resting, 10 is as hard as you can go."),
        _("Some muscle tiredness is normal. Pain is not: stop and rest."),
    ], st.body, after=1)
    _phases(flow, st, plan)
    _precautions(flow, st, plan)

    flow.heading(_("Your exercises"), st.h1, rule=True, keep_with=st.body.lead * 4)
    if not exercises:
        flow.paragraph(_("There are no exercises in your plan yet. Your therapist will call you."),
                       st.body)
    starts = start_weeks(plan)
    days = exercise_days(schedule)
    exercises = in_language(exercises)  # the cards in the patient's language
    for number, exercise in enumerate(exercises, 1):
        _exercise(flow, st, number, exercise, starts.get(exercise.get("id")),
                  days.get(exercise.get("id")))
    if schedule:
        _week(flow, st, schedule, exercises, starts)
    if exercises and schedule:
        _log_sheet(flow, st, schedule)
    return flow.finish()


PATIENT_LINK_TEXT = N_("Scan to see your exercises and log them")
QR_SIZE = 86.0  # points (about 3 cm): a phone reads it at arm's length


def _patient_link(flow: Flow, st: Styles, url: str) -> None:
    """A QR code of the patient's page (vectors) with what it is for and the
    address to type instead."""
    import segno

    rows = [list(row) for row in segno.make(url, error="m", micro=False)
            .matrix_iter(scale=1, border=0)]
    text_x = flow.left + QR_SIZE + 14
    width = flow.right - text_x
    lines = flow.wrap(_(PATIENT_LINK_TEXT), st.bold.font, st.bold.size, width)
    small = max(FOOTER_SIZE, st.body.size - 2)
    address = flow.wrap(_("Or type this address: {url}").format(url=url), REGULAR, small, width)
    flow.keep(QR_SIZE + 12, max_gap=0.5)
    flow.space(6)
    top = flow.y
    module = QR_SIZE / len(rows)
    c = flow.canvas
    c.setFillGray(0)
    path = c.beginPath()
    for r, row in enumerate(rows):
        start = None
        for col, dark in enumerate(row + [0]):
            if dark and start is None:
                start = col
            elif not dark and start is not None:
                path.rect(flow.left + start * module, top - (r + 1) * module,
                          (col - start) * module, module)
                start = None
    c.drawPath(path, stroke=0, fill=1)
    y = top - st.bold.size
    flow.font(st.bold.font, st.bold.size)
    for line in lines:
        flow.text(text_x, y, line)
        y -= st.bold.lead
    flow.font(REGULAR, small)
    y -= 4
    for line in address:
        flow.text(text_x, y, line)
        y -= small * 1.2
    flow.y = min(top - QR_SIZE, y) - 8


def _unreviewed_notice(flow: Flow, st: Styles) -> None:
    """An unreviewed translation says so, in the patient's language and in English."""
    flow.space(4)
    flow.paragraph(_(UNREVIEWED_NOTICE), st.bold, after=0)
    flow.paragraph(f"({UNREVIEWED_ENGLISH})", st.body, after=0)


def _notes(flow: Flow, st: Styles, plan: dict) -> None:
    """The therapist's notes to the patient (written by the clinician who checked the plan)."""
    notes = [n for n in plan.get("patient_notes") or [] if isinstance(n, str) and n.strip()]
    if notes:
        flow.heading(_("A note from your therapist"), st.h1, rule=True, keep_with=st.body.lead * 2)
        flow.bullets([fmt.sentence(n) for n in notes], st.body)


def _numbers(numbers: list[int]) -> str:
    """"1-3, 5 and 7": runs of three or more numbers are joined with a dash."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = []
    for run in runs:
        parts += [f"{run[0]}–{run[-1]}"] if len(run) >= 3 else [str(n) for n in run]
    return and_days(parts)


def _week(flow: Flow, st: Styles, schedule: list[dict], exercises: list[dict],
          starts: dict[str, int]) -> None:
    """The weekly schedule as a grid: one row per group of exercises done on
    the same days (and from the same week), a tick on those days."""
    days = [d.get("day") or "" for d in schedule]
    on_day = [set(d.get("exercises") or []) for d in schedule]
    groups: dict[tuple, list[int]] = {}
    number = {ex.get("id"): n for n, ex in enumerate(exercises, 1)}
    for ex in exercises:
        ticks = tuple(ex.get("id") in ids for ids in on_day)
        groups.setdefault((ticks, starts.get(ex.get("id"))), []).append(number[ex.get("id")])
    rows = [[_("Exercises")] + [tr.day_name(day, "en_US", "abbreviated") for day in days]]
    for (ticks, start), numbers in groups.items():
        label = _numbers(numbers) + (" " + _("(from week {n})").format(n=start) if start else "")
        rows.append([label] + ["✓" if tick else "" for tick in ticks])
    flow.heading(_("Your week"), st.h1, before=6, rule=True, keep_with=st.body.lead * (len(rows) + 5))
    intro = _("A tick (✓) means: do these exercises on that day.")
    rest = [day for day, d in zip(days, schedule) if not d.get("exercises")]
    if rest:
        intro += " " + _("Rest day: {days}.").format(days=and_days(rest))
    flow.paragraph(intro, st.body)
    flow.table(rows, [5.0] + [1.1] * len(days), st.body, st.bold, padding=2)


def _phases(flow: Flow, st: Styles, plan: dict) -> None:
    phases = plan.get("phases") or []
    if not phases:
        return
    flow.heading(_("Your stages"), st.h2, keep_with=st.body.lead * 3)
    names = _exercise_names(plan)
    for phase in phases:
        weeks = tr.weeks_words(phase.get("week_from"), phase.get("week_to"))
        name = phase.get("name") or _("Stage {n}").format(n=phase.get("phase", ""))
        name = plan_sentence(name, names) or name
        changes = phase.get("changes") and fmt.sentence(phase["changes"])
        changes = changes and (plan_sentence(changes, names) or changes)
        text = f"{name}." + (" " + changes if changes else "")
        flow.label_value(f"{weeks}:" if weeks else "", text, st.body, st.bold,
                         label_width=_label_width(st, stages=True), after=3)


def _exercise_names(plan: dict) -> dict[str, str]:
    """The English exercise names (and posture doses) the stages mention, in
    the handout's language, for :func:`translations.plan_sentence`."""
    language = tr.current_language()
    names: dict[str, str] = {}
    for ex in plan.get("exercises") or []:
        texts = (ex.get("translations") or {}).get(language)
        if texts and ex.get("name"):
            names[ex["name"]] = texts["name"]
            names[ex["name"].split(" (")[0]] = texts["name"].split(" (")[0]
        target = ex.get("dose_target") or {}
        if target.get("text"):
            names["dose:" + target["text"]] = tr.dose_words(target) or target["text"]
    return names


def _label_width(st: Styles, stages: bool = False) -> float:
    """Room for the widest label in bold: "When easy:" on a card, "Weeks 7–12:" for a stage
    (another language's labels may need more)."""
    width = st.body.size * (7.6 if stages else 7)
    if tr.current_language() == tr.SOURCE_LANGUAGE:
        return width
    labels = [tr.weeks_words(10, 12) + ":"] if stages else [
        _("Do:"), _("You need:"), _("Stay safe:"), _("When easy:"), _("If too hard:")]
    widest = max(stringWidth(label, st.bold.font, st.bold.size) for label in labels)
    return max(width, widest + st.body.size * 0.8)


def _exercise(flow: Flow, st: Styles, number: int, ex: dict, start_week: int | None,
              days: list[str] | None) -> None:
    name = ex.get("name") or ex.get("id") or _("Exercise")
    rows = exercise_rows(ex, start_week, days)
    label_width = _label_width(st)
    step_indent = st.body.size * 2
    height = 0.0
    for label, text in rows:
        width = flow.text_width - (step_indent if label[:-1].isdigit() else label_width)
        height += st.body.lead * len(flow.wrap(text, st.body.font, st.body.size, width)) + 1
    heading = flow.wrap(f"{number}. {name}", st.h2.font, st.h2.size, flow.text_width)
    drawn = card_drawing_height(ex.get("drawing"))
    # the whole card, if it fits (its rows wrap beside the drawing: a little taller)
    flow.keep(6 + st.h2.lead * len(heading) + max(height * (1.3 if drawn else 1), drawn),
              max_gap=0.1)
    flow.heading(f"{number}. {name}", st.h2, before=6, keep_with=max(st.body.lead * 3, drawn))
    card = CardDrawing(flow, ex.get("drawing"))  # start -> end, at the right of the card
    for label, text in rows:
        card.update()
        if label[:-1].isdigit():
            flow.bullets([text], st.body, bullet=label, indent=step_indent, after=1)
        else:
            style = st.bold if label == _("Stay safe:") else st.body
            flow.label_value(label, text, style, st.bold, label_width=label_width)
    card.close()


def _stop_box(flow: Flow, st: Styles, plan: dict, clinic: ClinicInfo) -> None:
    items = [fmt.sentence(item) for item in plan.get("stop_and_call_if") or []]
    items = [plan_sentence(item) or item for item in items]
    if not items:
        items = [_("You have new pain, chest pain, dizziness or a fall.")]
    flow.box(_("Stop and call us if…"), items, st.box_title, st.body,
             footer=_("Call {clinic}: {phone}. In an emergency call 911 (or your local "
                      "emergency number).").format(clinic=clinic.name, phone=clinic.phone),
             footer_style=st.bold, padding=8)


def _precautions(flow: Flow, st: Styles, plan: dict) -> None:
    """The precautions as a list; the plan for a fall ("If you fall and cannot
    get up: …") as a box of its own steps."""
    precautions = [fmt.sentence(p) for p in plan.get("precautions") or []]
    fall = [p for p in precautions if p.startswith(FALL_PLAN_TITLE + ":")]
    rest = [plan_sentence(p) or p for p in precautions if p not in fall]
    if rest:
        flow.heading(_("Please be careful"), st.h1, rule=True, keep_with=st.body.lead * 3)
        flow.bullets(rest, st.body, after=2)
    for item in fall:
        steps = item.split(":", 1)[1].replace(". ", ".\n").split("\n")
        steps = [plan_sentence(s.strip()) or s.strip() for s in steps if s.strip()]
        flow.space(4)
        flow.box(_(FALL_PLAN_TITLE), steps, st.box_title, st.body,
                 padding=8)


def _log_sheet(flow: Flow, st: Styles, schedule: list[dict]) -> None:
    """Twelve weeks of tick boxes: a box on every day "Your week" gives exercises."""
    active = {d.get("day"): bool(d.get("exercises")) for d in schedule}
    rows = [[_("Week")] + [tr.day_name(d, "en_US", "abbreviated") for d in DAYS]]
    for week in range(1, LOG_WEEKS + 1):
        rows.append([str(week)] + ["" if active.get(day, True) else _("Rest") for day in DAYS])
    row_height = st.body.lead + 2  # the table's own row height (padding 1)
    intro = _("Tick a box each day you exercise. Bring this sheet to your visits.")
    if not all(active.values()):
        intro += " " + _("\"Rest\" marks your rest days.")
    intro_lines = len(flow.wrap(intro, st.body.font, st.body.size, flow.text_width))
    flow.keep(st.h1.lead + 14 + st.body.lead * (intro_lines + 1) + row_height * 13 + 12
              + 30, max_gap=1.0)
    flow.heading(_("My exercise log"), st.h1, before=6, rule=True)
    flow.paragraph(intro, st.body)
    top = flow.y
    flow.table(rows, [1.3] + [1] * 7, st.body, st.bold, padding=1)
    _tick_boxes(flow, st, top, rows, row_height)
    flow.paragraph(_("Notes for your therapist:"), st.bold, after=0)
    flow.space(30)
    flow.rule(0.8, after=0)


def _tick_boxes(flow: Flow, st: Styles, top: float, rows: list[list[str]],
                row_height: float) -> None:
    """Draw an empty square in each day cell of the log table that is not a rest day."""
    c = flow.canvas
    widths = [1.3] + [1] * 7
    scale = flow.text_width / sum(widths)
    header_h = row_height
    c.setLineWidth(1.2)
    side = st.body.size
    y = top - header_h
    for row in rows[1:]:
        x = flow.left + widths[0] * scale
        for cell in row[1:]:
            if not cell:
                c.rect(x + (scale - side) / 2, y - row_height / 2 - side / 2, side, side,
                       stroke=1, fill=0)
            x += scale
        y -= row_height
