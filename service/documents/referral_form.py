"""refflow's own referral form: one Letter page a referring office prints,
fills by hand or typewriter and faxes back.

The page is laid out to be read again after a fax, at 204 x 98 dpi "normal"
as well as 204 x 196 "fine":

- every field is a box with its label outside it; names, dates, numbers,
  phones and the NPI are comb boxes (one capital letter per cell), free text
  has one box per line, and choices are big square checkboxes;
- a QR code (``segno``, drawn as vectors) says which form this is, its version
  and the practice it was printed for (no patient data ever);
- four black squares near the corners (``FIDUCIALS``) let the reader map the
  faxed page back onto this layout (skew, scale, offset, upside down).

``FIELDS`` is the layout: each ``FormField`` names the referral JSON path it
fills (``patient.birth_date``), its label, its kind and its boxes in PDF
points measured from the top-left corner of the form (the Letter page; on A4
the same form is centred on the sheet, so the reader registers by the
fiducials and the QR code, never by the paper's edge).

The reader is ``refflow.faxin.form_reader``; ``refflow.faxin.draft`` turns
the values into a referral.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import segno
from reportlab.lib.pagesizes import LETTER
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from refflow.documents.clinic import ClinicInfo
from refflow.documents.fonts import BOLD, REGULAR, ensure_fonts
from refflow.documents.layout import paper_size

FORM_ID = "referral"
FORM_VERSION = 1
BARCODE_PREFIX = "refflow"
WIDTH, HEIGHT = LETTER  # the form's frame, in points (612 x 792)

KINDS = ("text", "date", "number", "phone", "email", "npi", "icd10", "checkbox", "choice")

CONFIDENTIALITY = ("Confidential: this form contains protected health information for the "
                   "named clinic only. If you received it in error, call us and destroy it.")


@dataclass(frozen=True)
class Box:
    """A rectangle on the form: points from the form's top-left corner, y down."""

    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2


class Choice(NamedTuple):
    """One checkbox of a choice field (a tuple: ``value, label = choice`` works)."""

    value: str  # what the field's value is when this box is marked (the referral's enum value)
    label: str
    box: Box  # the checkbox


@dataclass(frozen=True)
class FormField:
    """One field of the form.

    ``cells`` are the comb boxes (one character each, left to right); a text
    field without cells has one box per line (``lines``); ``choices`` are the
    checkboxes of a ``choice`` field (``multiple``: several may be marked);
    a ``checkbox`` field is one box of its own (``box``). ``point_after``:
    a number's decimal point is printed after that many cells; ``sign`` is
    printed before the cells ("-" for the T-score). ``low``/``high`` bound a
    number.
    """

    name: str
    label: str
    kind: str
    box: Box
    cells: tuple[Box, ...] = ()
    lines: int = 1
    choices: tuple[Choice, ...] = ()
    multiple: bool = False
    point_after: int | None = None
    sign: str = ""
    low: float | None = None
    high: float | None = None

    @property
    def comb(self) -> bool:
        return bool(self.cells)

    def line_boxes(self) -> tuple[Box, ...]:
        """A free-text field's lines, top to bottom."""
        height = self.box.height / self.lines
        return tuple(Box(self.box.x, self.box.y + i * height, self.box.width, height)
                     for i in range(self.lines))

    def choice(self, value: str) -> Choice | None:
        return next((c for c in self.choices if c.value == value), None)


# -- the identity in the barcode --------------------------------------------------------
def barcode_text(practice_id: str | None = None) -> str:
    """``refflow:referral:1:<practice id>`` (``-`` on a blank form): no patient data."""
    return f"{BARCODE_PREFIX}:{FORM_ID}:{FORM_VERSION}:{practice_id or '-'}"


def parse_barcode_text(text: str) -> tuple[str, int, str | None] | None:
    """(form, version, practice id or None) of a refflow form's barcode, else None."""
    parts = text.split(":", 3)
    if len(parts) != 4 or parts[0] != BARCODE_PREFIX or not parts[2].isdigit():
        return None
    practice = parts[3]
    return parts[1], int(parts[2]), (None if practice in ("", "-") else practice)


# -- the layout -------------------------------------------------------------------------
MARGIN = 40.0
RIGHT = WIDTH - MARGIN
CELL_W = 14.5  # a comb cell: a capital letter written by hand fits, and so does 12 pt type
CELL_H = 21.0
CHECK = 12.5  # a checkbox's side
GROUP_GAP = 9.0  # between the groups of a date or a phone number (a "/" or "-" is printed)
LABEL_FONT = (BOLD, 8.5)
HINT_FONT = (REGULAR, 8.5)
LABEL_SPACE = 10.0  # a row: its label above (in this space), then its boxes
ROW_GAP = 3.0  # below a row's boxes
LABEL_UP = 3.0  # the label's baseline above its box
SECTION = 16.0  # a section heading's height

FIDUCIAL = 12.0  # the side of the corner squares
FIDUCIAL_INSET = 24.0
FIDUCIALS = (
    Box(FIDUCIAL_INSET, FIDUCIAL_INSET, FIDUCIAL, FIDUCIAL),
    Box(WIDTH - FIDUCIAL_INSET - FIDUCIAL, FIDUCIAL_INSET, FIDUCIAL, FIDUCIAL),
    Box(FIDUCIAL_INSET, HEIGHT - FIDUCIAL_INSET - FIDUCIAL, FIDUCIAL, FIDUCIAL),
    Box(WIDTH - FIDUCIAL_INSET - FIDUCIAL, HEIGHT - FIDUCIAL_INSET - FIDUCIAL, FIDUCIAL,
        FIDUCIAL),
)
# The QR code's symbol (without its quiet zone); about 2.4 pt a module for the
# printed-for-a-practice form (33 modules): 3.3 scan lines at 98 dpi.
QR_BOX = Box(RIGHT - 94, 30.0, 80.0, 80.0)


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  # baseline, from the top
    text: str
    font: tuple[str, float]
    align: str = "left"


class _Layout:
    """Builds the fields row by row (the form's geometry is computed once, at import)."""

    def __init__(self) -> None:
        self.fields: list[FormField] = []
        self.texts: list[_Text] = []
        self.rules: list[tuple[float, float, float, float]] = []
        self.y = 0.0

    def section(self, title: str) -> None:
        self.y += SECTION
        self.texts.append(_Text(MARGIN, self.y - 5, title, (BOLD, 10.5)))
        self.rules.append((MARGIN, self.y - 2.5, RIGHT, 1.4))

    def row(self, lines: int = 1) -> float:
        """Start a row of boxes ``lines`` lines high; returns the top of its boxes."""
        top = self.y + LABEL_SPACE
        self.y = top + lines * CELL_H + ROW_GAP
        return top

    def label(self, x: float, top: float, label: str, hint: str = "") -> None:
        if not label:
            return
        self.texts.append(_Text(x, top - LABEL_UP, label, LABEL_FONT))
        if hint:
            width = pdfmetrics.stringWidth(label + "  ", *LABEL_FONT)
            self.texts.append(_Text(x + width, top - LABEL_UP, hint, HINT_FONT))

    def comb(self, name: str, label: str, kind: str, x: float, top: float, n: int, *,
             groups: tuple[int, ...] = (), separator: str = "", hint: str = "",
             point_after: int | None = None, sign: str = "", low: float | None = None,
             high: float | None = None, caption: str | None = None) -> float:
        """A comb of ``n`` cells (in ``groups`` with ``separator`` printed between);
        returns its right edge. ``caption`` is printed instead of the label."""
        self.label(x, top, label if caption is None else caption, hint)
        if sign:
            self.texts.append(_Text(x + 1, top + CELL_H - 6, sign, (BOLD, 13)))
            x += 10
        start = x
        cells = []
        sizes = groups or (n,)
        for g, size in enumerate(sizes):
            if g:
                self.texts.append(_Text(x + GROUP_GAP / 2, top + CELL_H - 6, separator,
                                        (BOLD, 12), "center"))
                x += GROUP_GAP
            for _ in range(size):
                cells.append(Box(x, top, CELL_W, CELL_H))
                x += CELL_W
        box = Box(start, top, x - start, CELL_H)
        self.fields.append(FormField(name, label, kind, box, cells=tuple(cells),
                                     point_after=point_after, sign=sign, low=low, high=high))
        return x

    def lines(self, name: str, label: str, x: float, top: float, width: float,
              lines: int = 1, hint: str = "") -> float:
        self.label(x, top, label, hint)
        box = Box(x, top, width, CELL_H * lines)
        self.fields.append(FormField(name, label, "text", box, lines=lines))
        return x + width

    def choices(self, name: str, label: str, x: float, top: float,
                options: tuple[tuple[str, str], ...], *, multiple: bool = False,
                gap: float = 11.0) -> float:
        self.label(x, top, label, "(mark all that apply)" if multiple else "")
        boxes = []
        start = x
        y = top + (CELL_H - CHECK) / 2
        for value, text in options:
            boxes.append(Choice(value, text, Box(x, y, CHECK, CHECK)))
            x += CHECK + 4
            self.texts.append(_Text(x, y + CHECK - 2.5, text, (REGULAR, 10)))
            x += pdfmetrics.stringWidth(text, REGULAR, 10) + gap
        box = Box(start, top, x - gap - start, CELL_H)
        self.fields.append(FormField(name, label, "choice", box, choices=tuple(boxes),
                                     multiple=multiple))
        return x - gap

    def checkbox(self, name: str, label: str, x: float, top: float, text: str) -> float:
        y = top + (CELL_H - CHECK) / 2
        box = Box(x, y, CHECK, CHECK)
        self.texts.append(_Text(x + CHECK + 4, y + CHECK - 2.5, text, (BOLD, 10)))
        self.fields.append(FormField(name, label, "checkbox", box))
        return x + CHECK + 4 + pdfmetrics.stringWidth(text, BOLD, 10)


YES_NO = (("yes", "Yes"), ("no", "No"))
TOP = 118.0  # the first section, below the heading, the instructions and the QR code
DATE = {"groups": (2, 2, 4), "separator": "/", "hint": "MM / DD / YYYY"}
PHONE = {"groups": (3, 3, 4), "separator": "-"}


def _layout() -> _Layout:
    ensure_fonts()  # label widths are measured with the document fonts
    f = _Layout()
    f.y = TOP

    f.section("PATIENT")
    top = f.row()
    right = f.comb("patient.family_name", "Last name", "text", MARGIN, top, 18)
    f.comb("patient.given_name", "First name", "text", right + 14, top, 16)
    top = f.row()
    right = f.comb("patient.birth_date", "Date of birth", "date", MARGIN, top, 8, **DATE)
    f.choices("patient.sex", "Sex", right + 18, top,
              (("female", "Female"), ("male", "Male"), ("other", "Other")))
    f.comb("patient.phone", "Phone", "phone", RIGHT - 10 * CELL_W - 2 * GROUP_GAP, top, 10,
           **PHONE)
    top = f.row()
    f.comb("patient.email", "Email", "email", MARGIN, top, 32, hint="for the exercise plan")

    f.section("REFERRING PROVIDER")
    top = f.row()
    f.comb("referrer.name", "Name", "text", MARGIN, top, 24)
    f.comb("referrer.npi", "NPI", "npi", RIGHT - 10 * CELL_W, top, 10)
    top = f.row()
    right = f.comb("referrer.phone", "Phone", "phone", MARGIN, top, 10, **PHONE)
    right = f.comb("referrer.fax", "Fax", "phone", right + 24, top, 10, **PHONE)
    f.checkbox("urgency", "Urgent", right + 30, top, "Urgent")

    f.section("DIAGNOSIS")
    top = f.row()
    right = f.comb("diagnosis.codes", "ICD-10 codes", "icd10", MARGIN, top, 13,
                   hint="a space between codes")
    f.lines("diagnosis.text", "Diagnosis in words", right + 14, top, RIGHT - right - 14)

    f.section("BONE HEALTH AND FALLS")
    top = f.row()
    right = f.comb("clinical.t_score", "T-score (lowest)", "number", MARGIN, top, 2, sign="-",
                   groups=(1, 1), separator=".", point_after=1, low=-7, high=4)
    right = f.comb("clinical.frax.major_osteoporotic", "FRAX major %", "number", right + 40,
                   top, 3, groups=(2, 1), separator=".", point_after=2, low=0, high=100)
    right = f.comb("clinical.frax.hip", "FRAX hip %", "number", right + 26, top, 3,
                   groups=(2, 1), separator=".", point_after=2, low=0, high=100)
    right = f.comb("clinical.blood_pressure.systolic", "Blood pressure, systolic", "number",
                   right + 26, top, 3, low=50, high=300, caption="Blood pressure")
    f.texts.append(_Text(right + 5, top + CELL_H - 6, "/", (BOLD, 12), "center"))
    right = f.comb("clinical.blood_pressure.diastolic", "Blood pressure, diastolic", "number",
                   right + 10, top, 3, low=20, high=200, caption="")
    f.comb("clinical.pain.score", "Pain (0-10)", "number", right + 36, top, 2, low=0, high=10)
    top = f.row()
    f.choices("clinical.fractures", "Fractures in adult life", MARGIN, top,
              (("none", "None"), ("vertebral", "Spine"), ("hip", "Hip"), ("wrist", "Wrist"),
               ("humerus", "Upper arm"), ("pelvis", "Pelvis"), ("rib", "Rib"),
               ("ankle", "Ankle"), ("other", "Other")), multiple=True, gap=10.5)
    top = f.row()
    right = f.comb("clinical.fractures.date", "Latest fracture", "date", MARGIN, top, 8,
                   **DATE)
    right = f.comb("clinical.falls_last_12_months", "Falls in the last year", "number",
                   right + 18, top, 2, low=0, high=365)
    right = f.choices("clinical.injurious_fall", "Hurt in a fall?", right + 76, top, YES_NO)
    f.choices("clinical.can_rise_from_floor", "Can get up from the floor?", right + 30, top,
              YES_NO)
    top = f.row()
    right = f.choices("clinical.mobility_aid", "Walking aid", MARGIN, top,
                      (("none", "None"), ("cane", "Cane"), ("walker", "Walker"),
                       ("rollator", "Rollator"), ("wheelchair", "Wheelchair")))
    f.choices("clinical.activity_level", "Activity", right + 30, top,
              (("sedentary", "Sedentary"), ("light", "Light"), ("active", "Active")))

    f.section("HEALTH AND GOALS")
    half = (RIGHT - MARGIN - 14) / 2
    second = MARGIN + half + 14
    top = f.row(2)
    f.lines("clinical.conditions", "Other conditions", MARGIN, top, half, 2,
            hint="commas between them")
    f.lines("clinical.medications", "Medications", second, top, half, 2,
            hint="commas between them")
    top = f.row(2)
    f.lines("clinical.contraindications_text", "Restrictions or precautions", MARGIN, top,
            half, 2)
    f.lines("goals", "Patient's goals", second, top, half, 2, hint="commas between them")
    top = f.row(2)
    f.lines("notes", "Notes for the therapist", MARGIN, top, RIGHT - MARGIN, 2)
    top = f.row()
    right = f.choices("deliver.email_to_patient", "Email the plan to the patient?", MARGIN,
                      top, YES_NO)
    f.choices("deliver.fax_to_referrer", "Fax the plan summary to your office?", second, top,
              YES_NO)
    return f


_LAYOUT = _layout()
FIELDS: tuple[FormField, ...] = tuple(_LAYOUT.fields)
FIELD_NAMES = tuple(field.name for field in FIELDS)
SIGNATURE_Y = _LAYOUT.y + 18  # the signature line's baseline


def field(name: str) -> FormField:
    for f in FIELDS:
        if f.name == name:
            return f
    raise KeyError(name)


# -- what is written in the boxes -------------------------------------------------------
def cell_text(f: FormField, value: str) -> str:
    """The characters a person writes in a comb field's cells for ``value``
    (a date as MMDDYYYY, a phone's ten digits, a number around its printed
    point), left-aligned and cut to the cells."""
    value = str(value).strip().upper()
    if f.kind == "date":
        try:
            day = dt.date.fromisoformat(value)
            value = f"{day.month:02d}{day.day:02d}{day.year:04d}"
        except ValueError:
            pass
    elif f.kind == "phone":
        digits = "".join(ch for ch in value if ch.isdigit())
        value = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    elif f.kind == "number":
        if f.sign and value.startswith(f.sign):
            value = value[len(f.sign):]
        if f.point_after is not None:
            whole, _, fraction = value.partition(".")
            value = whole.rjust(f.point_after) + (fraction or "0")[: len(f.cells) - f.point_after]
        else:
            value = value.rjust(len(f.cells))
    return value[: len(f.cells)]


# -- drawing ----------------------------------------------------------------------------
class _Page:
    """Form coordinates (top-left, y down) on a ReportLab canvas."""

    def __init__(self, canvas: Canvas, page_height: float) -> None:
        self.c = canvas
        self.h = page_height

    def y(self, y: float) -> float:
        return self.h - y

    def rect(self, box: Box, *, width: float, fill: bool = False) -> None:
        self.c.setLineWidth(width)
        self.c.rect(box.x, self.y(box.bottom), box.width, box.height, stroke=0 if fill else 1,
                    fill=1 if fill else 0)

    def text(self, t: _Text) -> None:
        self.c.setFont(*t.font)
        if t.align == "center":
            self.c.drawCentredString(t.x, self.y(t.y), t.text)
        elif t.align == "right":
            self.c.drawRightString(t.x, self.y(t.y), t.text)
        else:
            self.c.drawString(t.x, self.y(t.y), t.text)


def draw_form(canvas: Canvas, clinic: ClinicInfo, *, practice_id: str | None = None,
              practice_name: str | None = None, page_height: float = HEIGHT) -> None:
    """Draw the blank form on ``canvas`` in the form's frame (the canvas's
    origin is the form's bottom-left corner; ``page_height`` is the frame's
    height, the Letter page's)."""
    ensure_fonts()
    p = _Page(canvas, page_height)
    c = canvas
    c.setFillGray(0)
    c.setStrokeGray(0)
    for box in FIDUCIALS:
        p.rect(box, width=0, fill=True)

    # heading: who to fax it to
    p.text(_Text(MARGIN, 46, clinic.name, (BOLD, 13)))
    p.text(_Text(MARGIN, 68, "Exercise referral: osteoporosis, low bone mass", (BOLD, 16)))
    p.text(_Text(MARGIN, 89, f"Fax to {clinic.fax}", (BOLD, 14)))
    fax_width = pdfmetrics.stringWidth(f"Fax to {clinic.fax}", BOLD, 14)
    p.text(_Text(MARGIN + fax_width + 14, 89, f"Questions? Call {clinic.phone}", (REGULAR, 10)))
    _draw_barcode(p, barcode_text(practice_id))
    # (its quiet zone: nothing within four modules, about 10 points, of the code)
    p.text(_Text(QR_BOX.center[0], QR_BOX.bottom + 16,
                 f"refflow {FORM_ID} form v{FORM_VERSION}", (REGULAR, 6.5), "center"))
    p.text(_Text(MARGIN, 108, "Print in CAPITAL letters, one letter per box. Mark boxes with "
                 "an X.", (BOLD, 10.5)))
    if practice_name:
        p.text(_Text(QR_BOX.x - 14, 46, f"For {practice_name}", (REGULAR, 10), "right"))

    for rule in _LAYOUT.rules:
        x, y, right, width = rule
        c.setLineWidth(width)
        c.line(x, p.y(y), right, p.y(y))
    c.setFillGray(0)
    for t in _LAYOUT.texts:
        p.text(t)
    for f in FIELDS:
        if f.comb:
            p.rect(f.box, width=1.3)
            for cell in f.cells:
                p.rect(cell, width=1.0)
        elif f.kind == "text":
            for line in f.line_boxes():
                p.rect(line, width=1.0)
        elif f.kind == "choice":
            for choice in f.choices:
                p.rect(choice.box, width=1.4)
        elif f.kind == "checkbox":
            p.rect(f.box, width=1.4)

    # signature (not read: a person checks it), then the confidentiality line
    y = SIGNATURE_Y
    c.setFont(*LABEL_FONT)
    c.setLineWidth(0.8)
    label = "Referring provider's signature"
    c.drawString(MARGIN, p.y(y), label)
    c.line(MARGIN + pdfmetrics.stringWidth(label, *LABEL_FONT) + 6, p.y(y), 420, p.y(y))
    c.drawString(440, p.y(y), "Date")
    c.line(440 + pdfmetrics.stringWidth("Date", *LABEL_FONT) + 6, p.y(y), RIGHT, p.y(y))
    p.text(_Text(WIDTH / 2, HEIGHT - 26, CONFIDENTIALITY, (REGULAR, 7.5), "center"))


def _draw_barcode(p: _Page, text: str) -> None:
    """The QR code in ``QR_BOX``, as filled rectangles (one per run of dark modules)."""
    qr = segno.make(text, error="m", micro=False)
    rows = [list(row) for row in qr.matrix_iter(scale=1, border=0)]
    module = QR_BOX.width / len(rows)
    c = p.c
    path = c.beginPath()
    for r, row in enumerate(rows):
        start = None
        for col, dark in enumerate(row + [0]):
            if dark and start is None:
                start = col
            elif not dark and start is not None:
                x = QR_BOX.x + start * module
                y = QR_BOX.y + r * module
                path.rect(x, p.y(y + module), (col - start) * module, module)
                start = None
    c.drawPath(path, stroke=0, fill=1)


def draw_values(canvas: Canvas, values: Mapping[str, str], *, font: str = "Courier-Bold",
                size: float = 13.0, jitter: random.Random | None = None,
                page_height: float = HEIGHT) -> None:
    """Write ``values`` (field name -> value, as ``read_fax`` gives them back)
    into the form's boxes, as a person or a typewriter would: one character
    per comb cell, free text on the lines, an X in each marked checkbox.
    ``jitter`` moves and sizes each character a little (handwriting)."""
    p = _Page(canvas, page_height)
    c = canvas
    c.setFillGray(0)
    c.setStrokeGray(0)

    def shake(amount: float) -> float:
        return jitter.uniform(-amount, amount) if jitter else 0.0

    def mark(box: Box) -> None:
        x0, y0 = box.x + 2 + shake(1), box.y + 2 + shake(1)
        x1, y1 = box.right - 2 + shake(1), box.bottom - 2 + shake(1)
        c.setLineWidth(1.8)
        c.line(x0, p.y(y0), x1, p.y(y1))
        c.line(x0, p.y(y1), x1, p.y(y0))

    for f in FIELDS:
        value = str(values.get(f.name, "") or "").strip()
        if not value:
            continue
        if f.kind == "checkbox":
            mark(f.box)
        elif f.kind == "choice":
            for part in value.split(","):
                choice = f.choice(part.strip())
                if choice:
                    mark(choice.box)
        elif f.comb:
            for ch, cell in zip(cell_text(f, value), f.cells):
                if ch == " ":
                    continue
                s = size * (1 + shake(0.08))
                x, y = cell.center
                c.saveState()
                c.translate(x + shake(1.2), p.y(y) + shake(1.0))
                c.rotate(shake(5))
                c.setFont(font, s)
                c.drawCentredString(0, -s * 0.36, ch)
                c.restoreState()
        else:
            s = size * 0.92
            c.setFont(font, s)
            lines = _wrap_lines(value, font, s, f.box.width - 8, f.lines)
            for text, line in zip(lines, f.line_boxes()):
                c.drawString(line.x + 4 + shake(1.5), p.y(line.center[1]) - s * 0.36 + shake(1.0),
                             text)


def _wrap_lines(text: str, font: str, size: float, width: float, lines: int) -> list[str]:
    out: list[str] = []
    for word in text.split():
        if out and pdfmetrics.stringWidth(out[-1] + " " + word, font, size) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    return out[:lines]


def register_values_font(path: str, name: str | None = None) -> str:
    """Register a TrueType font (e.g. a handwriting style) for ``draw_values``."""
    name = name or "Values-" + path.rsplit("/", 1)[-1].split(".")[0]
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path))
    return name


def render_form(clinic: ClinicInfo, *, practice_id: str | None = None,
                practice_name: str | None = None, paper: str = "letter",
                values: Mapping[str, str] | None = None, values_font: str = "Courier-Bold",
                values_size: float = 13.0) -> bytes:
    """The one-page referral form as PDF; ``values`` fills it in (samples, tests)."""
    ensure_fonts()
    width, height = paper_size(paper)
    out = io.BytesIO()
    c = Canvas(out, pagesize=(width, height), pageCompression=1, initialFontName=REGULAR)
    c.setTitle("Referral for exercise")
    c.setAuthor(clinic.name)
    c.setCreator("refflow")
    c.setProducer("refflow (ReportLab)")
    # The form is laid out on Letter; on another paper it is centred.
    c.translate((width - WIDTH) / 2, (height - HEIGHT) / 2)
    draw_form(c, clinic, practice_id=practice_id, practice_name=practice_name)
    if values:
        draw_values(c, values, font=values_font, size=values_size)
    c.showPage()
    c.save()
    return out.getvalue()
