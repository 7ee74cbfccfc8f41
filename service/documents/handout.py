"""The patient handout: the plan in large type and plain language.

Body text is 13 pt (nothing smaller than 12 pt), headings are bold, and the
"Stop and call us if…" box has a heavy border. A ``review`` plan is marked
DRAFT on every page; a ``do_not_exercise`` plan lists no exercises and asks
the patient to see their doctor first.
"""

from __future__ import annotations

from refflow.documents import formatting as fmt
from refflow.documents.clinic import ClinicInfo
from refflow.documents.fonts import BOLD, REGULAR
from refflow.documents.layout import Flow, Style, draft_watermark

BODY = Style(REGULAR, 13, 17.5)
BODY_BOLD = Style(BOLD, 13, 17.5)
SMALL = Style(REGULAR, 12, 15)  # the smallest type in the handout
TITLE = Style(BOLD, 24, 30)
H1 = Style(BOLD, 18, 23)
H2 = Style(BOLD, 15, 19)
BOX_TITLE = Style(BOLD, 16, 21)
BANNER = Style(BOLD, 16, 21)

DRAFT_TEXT = "DRAFT – not yet approved"
DO_NOT_EXERCISE_TEXT = "Please do not start exercises until you have seen your doctor."
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LOG_WEEKS = 12  # the programme's 12 weeks to the target level (guidance 4.1)
LOG_ROW_HEIGHT = 30  # points: twelve weeks and the notes on one page


def render_handout(referral, plan: dict, clinic: ClinicInfo, *, paper: str = "letter") -> bytes:
    """The patient handout PDF for ``plan`` (bytes)."""
    decision = plan.get("decision", "review")
    draft = decision == "review"
    title = "Your exercise plan" + (f" ({DRAFT_TEXT})" if draft else "")

    def decorate(flow: Flow) -> None:
        c = flow.canvas
        if draft:
            draft_watermark(flow)
        c.setFillGray(0)
        c.setFont(BOLD, 13)
        c.drawString(flow.left, flow.height - 40, clinic.name)
        c.setFont(REGULAR, 13)
        c.drawRightString(flow.right, flow.height - 40, f"Phone {clinic.phone}")
        c.setLineWidth(1)
        c.line(flow.left, flow.height - 48, flow.right, flow.height - 48)
        c.setFont(REGULAR, 12)
        left = DRAFT_TEXT if draft else f"Questions? Call us at {clinic.phone}"
        c.drawString(flow.left, 34, left)
        label = f"Page {flow.page} of "
        x = flow.right - c.stringWidth(label + "00", REGULAR, 12)
        c.drawString(x, 34, label)
        flow.draw_page_count(x + c.stringWidth(label, REGULAR, 12), 34, REGULAR, 12)

    flow = Flow(paper=paper, title=title, author=clinic.name,
                subject="Home exercise plan", decorate=decorate)
    patient = referral.patient
    flow.lines(["Your exercise plan"], TITLE)
    flow.space(2)
    flow.paragraph(f"For {patient.given_name} {patient.family_name}", BODY_BOLD, after=0)
    as_of = plan.get("as_of")
    if as_of:
        flow.paragraph(f"Plan date: {fmt.long_date(as_of)}", BODY, after=0)
    approved = plan.get("approved") or {}
    if decision == "release" and approved.get("by") and approved.get("at"):
        flow.paragraph(f"Approved by {approved['by']} on {fmt.long_date(str(approved['at'])[:10])}.",
                       BODY, after=0)
    flow.paragraph(f"From {clinic.name}. Questions? Call us at {clinic.phone}.", BODY)
    flow.space(4)

    if draft:
        flow.box(DRAFT_TEXT, [
            "Your therapist has not checked this plan yet.",
            "Please wait until we call you before you start these exercises.",
        ], BANNER, BODY, bullet="!")
    if decision == "do_not_exercise":
        _do_not_exercise(flow, plan, clinic)
        return flow.finish()

    exercises = plan.get("exercises") or []
    _notes(flow, plan)
    flow.heading("How to use this plan", H1, rule=True)
    flow.bullets([
        "Do the exercises on the days shown in \"Your week\".",
        "Start gently. You should be able to talk while you exercise.",
        "Some muscle tiredness is normal. Pain is not: stop and rest.",
        "Tick the log sheet at the end each time you exercise.",
    ], BODY)
    _phases(flow, plan)

    flow.heading("Your exercises", H1, rule=True, keep_with=120)
    if not exercises:
        flow.paragraph("There are no exercises in your plan yet. Your therapist will call you.",
                       BODY)
    starts = start_weeks(plan)
    for number, exercise in enumerate(exercises, 1):
        _exercise(flow, number, exercise, starts.get(exercise.get("id")))

    schedule = plan.get("weekly_schedule") or []
    if schedule:
        _week(flow, schedule, exercises, starts)

    _precautions_and_stop(flow, plan, clinic)
    if exercises and schedule:
        _log_sheet(flow, schedule)
    return flow.finish()


def _notes(flow: Flow, plan: dict) -> None:
    """The therapist's notes to the patient (written by the clinician who checked the plan)."""
    notes = [n for n in plan.get("patient_notes") or [] if isinstance(n, str) and n.strip()]
    if notes:
        flow.heading("A note from your therapist", H1, rule=True, keep_with=60)
        flow.bullets([fmt.sentence(n) for n in notes], BODY)


def start_weeks(plan: dict) -> dict[str, int]:
    """The week each exercise that starts in a later stage starts in (by id):
    the first week of its ``phase_from``. Exercises of the first stage are
    not listed."""
    first_week = {ph.get("phase"): ph.get("week_from") for ph in plan.get("phases") or []}
    starts = {}
    for ex in plan.get("exercises") or []:
        phase = ex.get("phase_from") or 1
        week = first_week.get(phase)
        if phase > 1 and week:
            starts[ex.get("id")] = week
    return starts


def _week(flow: Flow, schedule: list[dict], exercises: list[dict],
          starts: dict[str, int]) -> None:
    """The weekly schedule as a grid: one row per exercise, a tick on its days;
    an exercise of a later stage says from which week."""
    days = [d.get("day") or "" for d in schedule]
    on_day = [set(d.get("exercises") or []) for d in schedule]
    header = ["Exercise"] + [day[:3] for day in days]
    rest_days = [day for day, d in zip(days, schedule) if d.get("rest")]
    rows = [header]
    for number, ex in enumerate(exercises, 1):
        name = ex.get("name") or ex.get("id") or ""
        start = starts.get(ex.get("id"))
        label = f"{number}. {name}" + (f" (from week {start})" if start else "")
        rows.append([label] + ["✓" if ex.get("id") in ids else "" for ids in on_day])
    known = {ex.get("id") for ex in exercises}
    for ids in on_day:  # anything scheduled that is not in the list above
        for extra in sorted(i for i in ids if i not in known):
            known.add(extra)
            rows.append([extra] + ["✓" if extra in day_ids else "" for day_ids in on_day])
    flow.heading("Your week", H1, rule=True, keep_with=BODY.lead * 9)
    intro = "A tick (✓) means: do this exercise on that day."
    if starts:
        intro += " An exercise marked \"from week …\" waits until that week."
    if rest_days:
        intro += f" Rest day: {' and '.join(rest_days)} (gentle exercises only, if any)."
    flow.paragraph(intro, BODY)
    flow.table(rows, [5.2] + [1] * len(days), BODY, BODY_BOLD, padding=3)


def _phases(flow: Flow, plan: dict) -> None:
    phases = plan.get("phases") or []
    if not phases:
        return
    flow.heading("Your stages", H2, keep_with=40)
    for phase in phases:
        weeks = fmt.weeks_text(phase.get("week_from"), phase.get("week_to"))
        name = phase.get("name") or f"Stage {phase.get('phase', '')}"
        text = f"{weeks}: {name}." if weeks else f"{name}."
        changes = phase.get("changes")
        if changes:
            text += " " + fmt.sentence(changes)
        flow.bullets([text], BODY)


LABEL_WIDTH = 140


def _exercise_rows(ex: dict, start_week: int | None = None) -> list[tuple[str, str, Style]]:
    """The exercise as (label, text, style) rows; label "" = a numbered step."""
    rows: list[tuple[str, str, Style]] = []
    if start_week:
        rows.append(("When to start:",
                     f"In week {start_week}. Do not start it before then.", BODY_BOLD))
    rows += [
        ("How much:", fmt.sentence(fmt.dose_text(ex.get("dose"))), BODY),
        ("How often:", fmt.sentence(fmt.days_text(ex.get("days_per_week"))), BODY),
    ]
    equipment = ex.get("equipment")
    if equipment and equipment.strip().lower() not in {"none", "no equipment"}:
        rows.append(("You need:", fmt.sentence(equipment), BODY))
    for i, step in enumerate(ex.get("instructions") or [], 1):
        rows.append((f"{i}.", fmt.sentence(step), BODY))
    if ex.get("safety_cue"):
        rows.append(("Stay safe:", fmt.sentence(ex["safety_cue"]), BODY_BOLD))
    if ex.get("progression"):
        rows.append(("When it is easy:", fmt.sentence(ex["progression"]), BODY))
    if ex.get("regression"):
        rows.append(("If it is too hard:", fmt.sentence(ex["regression"]), BODY))
    return rows


def _exercise(flow: Flow, number: int, ex: dict, start_week: int | None = None) -> None:
    name = ex.get("name") or ex.get("id") or "Exercise"
    rows = _exercise_rows(ex, start_week)
    steps = [r for r in rows if r[0][:-1].isdigit()]
    # Keep the whole exercise on one page when it fits on a page at all.
    height = BODY.lead * (1 if steps else 0) + 8
    for label, text, style in rows:
        width = flow.text_width - (22 if label[:-1].isdigit() else LABEL_WIDTH)
        height += style.lead * len(flow.wrap(text, style.font, style.size, width)) + 1
    flow.heading(f"{number}. {name}", H2, before=12, keep_with=height)
    shown_steps = False
    for label, text, style in rows:
        if label[:-1].isdigit():
            if not shown_steps:
                flow.paragraph("How to do it:", BODY_BOLD, after=0)
                shown_steps = True
            flow.bullets([text], BODY, bullet=label, indent=22, after=0)
            continue
        flow.label_value(label, text, style, BODY_BOLD, label_width=LABEL_WIDTH)
    flow.space(4)


def _stop_box(flow: Flow, plan: dict, clinic: ClinicInfo) -> None:
    items = [fmt.sentence(item) for item in plan.get("stop_and_call_if") or []]
    if not items:
        items = ["You have new pain, chest pain, dizziness or a fall."]
    flow.box("Stop and call us if…", items, BOX_TITLE, BODY,
             footer=f"Call {clinic.name}: {clinic.phone}. "
                    "In an emergency call 911 (or your local emergency number).",
             footer_style=BODY_BOLD)


def _precautions_and_stop(flow: Flow, plan: dict, clinic: ClinicInfo) -> None:
    precautions = plan.get("precautions") or []
    if precautions:
        flow.heading("Please be careful", H1, rule=True, keep_with=60)
        flow.bullets([fmt.sentence(p) for p in precautions], BODY)
    flow.space(6)
    _stop_box(flow, plan, clinic)


def _do_not_exercise(flow: Flow, plan: dict, clinic: ClinicInfo) -> None:
    flow.box(DO_NOT_EXERCISE_TEXT, [
        "Your doctor needs to see you before you begin an exercise program.",
        "Please see your doctor, or go to urgent care, before you start any exercise.",
        (f"When your doctor says it is safe, call us at {clinic.phone} and we will "
         "make a plan with you."),
    ], BANNER, BODY, bullet="!")
    flow.space(6)
    _precautions_and_stop(flow, plan, clinic)


def _log_sheet(flow: Flow, schedule: list[dict]) -> None:
    flow.new_page()
    flow.heading("My exercise log", H1, rule=True)
    flow.paragraph("Put a tick in the box each day you do your exercises. "
                   "\"Rest\" marks your rest days. Bring this sheet to your next visit.", BODY)
    active = {d.get("day"): not d.get("rest") for d in schedule}
    header = ["Week"] + [d[:3] for d in DAYS]
    rows = [header]
    for week in range(1, LOG_WEEKS + 1):
        rows.append([str(week)] + ["" if active.get(day, True) else "Rest" for day in DAYS])
    top = flow.y
    flow.table(rows, [1.2] + [1] * 7, BODY, BODY_BOLD, min_row_height=LOG_ROW_HEIGHT)
    _tick_boxes(flow, top, rows)
    flow.paragraph("Notes for your therapist:", BODY_BOLD, after=0)
    for _ in range(4):
        flow.space(30)
        flow.rule(0.8, after=0)


def _tick_boxes(flow: Flow, top: float, rows: list[list[str]]) -> None:
    """Draw an empty square in each day cell of the log table that is not a rest day."""
    c = flow.canvas
    widths = [1.2] + [1] * 7
    scale = flow.text_width / sum(widths)
    header_h = BODY_BOLD.lead + 8
    c.setLineWidth(1.2)
    side = 16
    y = top - header_h
    for row in rows[1:]:
        x = flow.left + widths[0] * scale
        for cell in row[1:]:
            if not cell:
                c.rect(x + (scale - side) / 2, y - LOG_ROW_HEIGHT / 2 - side / 2, side, side,
                       stroke=1, fill=0)
            x += scale
        y -= LOG_ROW_HEIGHT
