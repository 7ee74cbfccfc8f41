"""refflow's referral form on a fax page: find it, register it, read each field.

1. **Find**: the page whose QR code is refflow's form (``barcode``).
2. **Register**: the QR code's corners give a first map from the form's
   layout (points, ``documents.referral_form``) to the page's pixels; the
   four corner squares (``FIDUCIALS``), looked for where that map puts them,
   give the final one: an affine map fitted to their centres, which takes
   in skew, scale, offset, the fax's unequal resolutions and a page fed
   upside down alike.
3. **Crop**: every box is cut out through that map, upright, at ``SCALE``
   pixels a point; each box's own edges are then found near where they
   should be, so a page stretched unevenly by the fax machine still lines up.
4. **Read**: the box lines are left out (only each cell's or line's inside
   is read) and so are specks (pieces of ink smaller than a full stop); a
   cell or line with no ink left is empty. A comb's letters and digits are
   put side by side and read by Tesseract as one line, with the characters
   its kind allows (``WHITELISTS``), each character given back to its cell
   (measured better and faster than reading cell by cell); its small marks
   (. - _ ') are told by their shape and place. A line of free text is read
   as a line. A checkbox is marked when enough of its inside is ink.
5. **Check**: each value is checked as its kind requires (a real date, a
   valid US phone number, the NPI's check digit, an ICD-10-CM code, a
   number in its range) and written as the referral wants it (dates ISO,
   phones E.164). The confidence is Tesseract's for the least sure
   character; a value that fails its check gets at most ``FAILED``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from PIL import Image, ImageOps

from refflow.documents.referral_form import (
    FIDUCIALS,
    FIELDS,
    QR_BOX,
    Box,
    FormField,
)
from refflow.faxin import ocr
from refflow.faxin.barcode import FormBarcode, read_form_barcode
from refflow.intake.contact import normalize_email
from refflow.intake.schemas import ICD10_PATTERN

SCALE = 4.5  # pixels a point in the crops Tesseract reads (324 dpi)
INK = 160  # a pixel darker than this is ink
CELL_INSET = 1.7  # points left out inside a cell's lines
LINE_INSET = 2.0
CHECK_INSET = 2.4
MARKED = 0.07  # a checkbox with more ink than this is marked
FAILED = 0.2  # the most confidence a value that fails its kind's check keeps

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
DIGIT_KINDS = frozenset({"date", "phone", "npi", "number"})
# A comb's letters and digits are read by Tesseract; its small marks
# (. - _ ') by their shape (``SMALL_MARKS``).
WHITELISTS = {
    "text": LETTERS,
    "email": LETTERS + DIGITS + "@+",
    "icd10": LETTERS + DIGITS,
    "date": DIGITS,
    "phone": DIGITS,
    "npi": DIGITS,
    "number": DIGITS,
    "lines": LETTERS + LETTERS.lower() + DIGITS + " ,.;:'-/()&%+",
}


@dataclass(frozen=True)
class Read:
    """One field as read: its value (as the referral wants it), confidence and source."""

    value: str
    confidence: float
    source: str  # "ocr" or "checkbox"


# -- find and register ------------------------------------------------------------------
def find_form(images: Sequence[Image.Image]) -> tuple[int, FormBarcode] | None:
    """The first page carrying the form's barcode and the barcode, or None."""
    for index, image in enumerate(images):
        found = read_form_barcode(image)
        if found is not None:
            return index, found
    return None


@dataclass(frozen=True)
class Affine:
    """Form points (x, y from the top-left) to image pixels: u = a x + b y + c, v = d x + e y + f."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        return self.a * x + self.b * y + self.c, self.d * x + self.e * y + self.f

    @property
    def scale(self) -> float:
        """Pixels a point (the mean of the two axes)."""
        return abs(self.a * self.e - self.b * self.d) ** 0.5

    @classmethod
    def fit(cls, pairs: Sequence[tuple[tuple[float, float], tuple[float, float]]]) -> Affine:
        """The least-squares map of three or more (form point, image point) pairs."""
        rows = [(x, y, 1.0) for (x, y), _ in pairs]
        u = _least_squares(rows, [p[0] for _, p in pairs])
        v = _least_squares(rows, [p[1] for _, p in pairs])
        return cls(*u, *v)


def _least_squares(rows: list[tuple[float, float, float]], target: list[float]) -> list[float]:
    """Solve the 3 x 3 normal equations (Gauss-Jordan with pivoting)."""
    m = [[sum(r[i] * r[j] for r in rows) for j in range(3)]
         + [sum(r[i] * t for r, t in zip(rows, target))] for i in range(3)]
    for col in range(3):
        pivot = max(range(col, 3), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        if abs(m[col][col]) < 1e-12:
            raise ValueError("the points do not fix a map")
        for r in range(3):
            if r != col:
                k = m[r][col] / m[col][col]
                m[r] = [a - k * b for a, b in zip(m[r], m[col])]
    return [m[i][3] / m[i][i] for i in range(3)]


def register(image: Image.Image, barcode: FormBarcode) -> Affine:
    """The map from the form's layout to ``image``: first from the QR code's
    corners, then fitted to the corner squares found near where it puts them
    (the QR code's corners fill in for squares not found)."""
    q = QR_BOX
    form_corners = ((q.x, q.y), (q.right, q.y), (q.right, q.bottom), (q.x, q.bottom))
    rough = Affine.fit(list(zip(form_corners, barcode.corners)))
    found = []
    for square in FIDUCIALS:
        centre = _dark_centre(image, rough(*square.center), rough.scale, square)
        if centre is not None:
            found.append((square.center, centre))
    if len(found) < 3:
        found += list(zip(form_corners, barcode.corners))
    return Affine.fit(found)


def _dark_centre(image: Image.Image, at: tuple[float, float], scale: float,
                 square: Box) -> tuple[float, float] | None:
    """The centre of the dark square near ``at``: the ink's centroid in a window
    around it, then again in a tighter window; None if the ink there is not
    about the square's size."""
    u, v = at
    for radius in (square.width * 1.4, square.width * 0.8):
        r = radius * scale
        left, top = int(u - r), int(v - r)
        window = image.crop((left, top, int(u + r) + 1, int(v + r) + 1))
        dark = 0
        sum_x = sum_y = 0.0
        width = window.width
        for i, grey in enumerate(window.tobytes()):
            if grey < INK:
                dark += 1
                sum_x += i % width
                sum_y += i // width
        if not dark:
            return None
        u, v = left + sum_x / dark + 0.5, top + sum_y / dark + 0.5
    area = square.width * square.height * scale * scale
    if not 0.6 * area <= dark <= 1.5 * area:
        return None
    return u, v


# -- crops ------------------------------------------------------------------------------
def crop(image: Image.Image, where: Affine, box: Box, margin: float = 0.0) -> Image.Image:
    """``box`` (plus ``margin`` points around it) cut out upright at ``SCALE``
    pixels a point (bilinear, white outside the page)."""
    x0, y0 = box.x - margin, box.y - margin
    size = (round((box.width + 2 * margin) * SCALE), round((box.height + 2 * margin) * SCALE))
    s = 1 / SCALE
    a = where
    data = (a.a * s, a.b * s, a.a * x0 + a.b * y0 + a.c,
            a.d * s, a.e * s, a.d * x0 + a.e * y0 + a.f)
    return image.transform(size, Image.Transform.AFFINE, data, Image.Resampling.BILINEAR,
                           fillcolor=255)


def _profile(image: Image.Image, axis: str) -> list[float]:
    """The share of ink in each column (``"x"``) or row (``"y"``)."""
    ink = image.point(lambda g: 255 if g < INK else 0)
    size = (image.width, 1) if axis == "x" else (1, image.height)
    return [p / 255 for p in ink.resize(size, Image.Resampling.BOX).tobytes()]


def _line_near(profile: list[float], at: float, reach: float) -> float:
    """The position of the darkest row (or column) within ``reach`` pixels of ``at``."""
    lo, hi = max(0, int(at - reach)), min(len(profile), int(at + reach) + 1)
    if lo >= hi:
        return at
    best = max(range(lo, hi), key=lambda i: (profile[i], -abs(i - at)))
    return best + 0.5 if profile[best] > 0.5 else at


class FieldImage:
    """A field's boxes cut out of the page, with its lines found where they are."""

    MARGIN = 4.0  # points cut beyond the field's box

    def __init__(self, image: Image.Image, where: Affine, f: FormField) -> None:
        self.field = f
        self.image = crop(image, where, f.box, self.MARGIN)
        self.dx, self.dy = self._offset()

    def _offset(self) -> tuple[float, float]:
        """How far (pixels) the field's outer lines are from where the map put them."""
        f, m = self.field, self.MARGIN * SCALE
        reach = 2.5 * SCALE
        rows = _profile(self.image, "y")
        cols = _profile(self.image, "x")
        top = _line_near(rows, m, reach) - m
        bottom = _line_near(rows, m + f.box.height * SCALE, reach) - (m + f.box.height * SCALE)
        left = _line_near(cols, m, reach) - m
        right = _line_near(cols, m + f.box.width * SCALE, reach) - (m + f.box.width * SCALE)
        return (left + right) / 2, (top + bottom) / 2

    def inside(self, box: Box, inset: float) -> Image.Image:
        """The inside of one of the field's boxes (a cell, a line), its lines left out."""
        f = self.field
        x = (box.x - f.box.x + self.MARGIN + inset) * SCALE + self.dx
        y = (box.y - f.box.y + self.MARGIN + inset) * SCALE + self.dy
        w, h = (box.width - 2 * inset) * SCALE, (box.height - 2 * inset) * SCALE
        return _without_edge_lines(self.image.crop((round(x), round(y), round(x + w),
                                                    round(y + h))))


def _without_edge_lines(image: Image.Image) -> Image.Image:
    """Whiten what is left of a box's lines along the crop's edges (rows or
    columns within a point and a half of an edge that are mostly ink)."""
    reach = int(1.5 * SCALE)
    rows, cols = _profile(image, "y"), _profile(image, "x")
    out = image
    for index in list(range(reach)) + list(range(len(rows) - reach, len(rows))):
        if 0 <= index < len(rows) and rows[index] > 0.6:
            out = out if out is not image else image.copy()
            out.paste(255, (0, index, image.width, index + 1))
    for index in list(range(reach)) + list(range(len(cols) - reach, len(cols))):
        if 0 <= index < len(cols) and cols[index] > 0.6:
            out = out if out is not image else image.copy()
            out.paste(255, (index, 0, index + 1, image.height))
    return out


def ink(image: Image.Image) -> float:
    """The share of ``image`` that is ink."""
    if not image.width or not image.height:
        return 0.0
    histogram = image.histogram()
    return sum(histogram[:INK]) / (image.width * image.height)


@dataclass(frozen=True)
class Blob:
    """A connected piece of ink: its size in pixels and its bounding box."""

    area: int
    left: int
    top: int
    right: int  # exclusive
    bottom: int


_RUN = re.compile(rb"[\x00-\x7f]+")  # a run of ink pixels in a row (grey < 128)


def blobs(image: Image.Image) -> list[Blob]:
    """The connected pieces of ink (8-connected), found from runs of ink in
    each row joined to the runs they touch in the row above."""
    width = image.width
    data = image.tobytes()
    parent: list[int] = []
    runs: list[tuple[int, int, int]] = []  # (row, start, end) of each run
    previous: list[int] = []  # run indexes of the row above

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for row in range(image.height):
        line = data[row * width:(row + 1) * width]
        current = []
        for match in _RUN.finditer(line):
            start, end = match.span()
            index = len(runs)
            runs.append((row, start, end))
            parent.append(index)
            for other in previous:
                _, o_start, o_end = runs[other]
                if o_start <= end and start <= o_end:  # touching, diagonals included
                    a, b = root(index), root(other)
                    if a != b:
                        parent[a] = b
            current.append(index)
        previous = current
    found: dict[int, list[int]] = {}
    for index, (row, start, end) in enumerate(runs):
        r = root(index)
        box = found.get(r)
        if box is None:
            found[r] = [end - start, start, row, end, row + 1]
        else:
            box[0] += end - start
            box[1], box[2] = min(box[1], start), min(box[2], row)
            box[3], box[4] = max(box[3], end), max(box[4], row + 1)
    return [Blob(*box) for box in found.values()]


# Ink smaller than this is a speck, not writing (square points): a pen's or
# a printer's full stop is 1.6 or more, specks on a fax line are up to about 1.1.
SPECK = 1.3
# Where only digits go, nothing smaller than a quarter of a thin "1" is writing.
DIGIT_SPECK = 4.0
# In a line of free text, small ink further than this (points) from any
# letter is a speck, not punctuation.
LONE = 6.0


def despeckled(image: Image.Image, speck: float = SPECK,
               lone: float | None = None) -> tuple[Image.Image, list[Blob]]:
    """The image in black and white without specks (``speck`` square points;
    with ``lone``, also anything under ``DIGIT_SPECK`` further than ``lone``
    points from bigger ink), and the pieces of ink kept."""
    binary = image.point(lambda g: 0 if g < INK else 255)
    pieces = blobs(binary)
    kept = [b for b in pieces if b.area >= speck * SCALE * SCALE]
    if lone is not None:
        # In free text, small ink is a full stop or a comma only just after
        # a letter and in the lower half of the line; anything else is a speck.
        big = [b for b in kept if b.area >= DIGIT_SPECK * SCALE * SCALE]
        reach = lone * SCALE
        kept = [b for b in kept if b in big or (
            b.top > image.height * 0.45
            and any(0 <= b.left - o.right < reach and o.top < b.bottom for o in big))]
    if len(kept) == len(pieces):
        return binary, kept
    clean = Image.new("L", image.size, 255)
    for b in kept:  # only the kept pieces' boxes are copied back
        box = (b.left, b.top, b.right, b.bottom)
        clean.paste(binary.crop(box), box)
    return clean, kept


# -- reading each kind ------------------------------------------------------------------
def read_form(image: Image.Image, barcode: FormBarcode, *,
              tessdata_dir: str | None = None) -> dict[str, Read]:
    """Every field of the form on ``image`` (the page the barcode is on)."""
    where = register(image, barcode)
    return {f.name: read_field(image, where, f, tessdata_dir=tessdata_dir) for f in FIELDS}


def read_field(image: Image.Image, where: Affine, f: FormField, *,
               tessdata_dir: str | None = None) -> Read:
    if f.kind == "checkbox":
        share = ink(_box_inside(image, where, f.box))
        return Read("x" if share > MARKED else "", _mark_confidence(share), "checkbox")
    if f.kind == "choice":
        return _read_choice(image, where, f)
    fi = FieldImage(image, where, f)
    if f.comb:
        chars, confidence = _read_comb(fi, tessdata_dir)
        return _checked(f, chars, confidence)
    lines = []
    confidences = []
    for box in f.line_boxes():
        inside, kept = despeckled(fi.inside(box, LINE_INSET), lone=LONE)
        if not kept:
            continue
        text = ocr.field_text(_padded(inside), whitelist=WHITELISTS["lines"], psm=ocr.LINE,
                              tessdata_dir=tessdata_dir)
        if text.text:
            lines.append(text.text)
            confidences.append(text.confidence)
    # Punctuation at the end says nothing in these fields (and is most often a speck).
    value = " ".join(" ".join(lines).upper().split()).rstrip(".,;:'")
    if f.name == "clinical.conditions":
        value = ", ".join(_code_or_text(item.strip()) for item in value.split(","))
    return Read(value, min(confidences) if value else 1.0, "ocr")


def _box_inside(image: Image.Image, where: Affine, box: Box) -> Image.Image:
    inner = Box(box.x + CHECK_INSET, box.y + CHECK_INSET, box.width - 2 * CHECK_INSET,
                box.height - 2 * CHECK_INSET)
    return crop(image, where, inner)


def _mark_confidence(share: float) -> float:
    """How sure a checkbox reading is: sure far from the threshold, unsure near it."""
    distance = abs(share - MARKED) / MARKED
    return round(min(0.99, 0.5 + distance / 2), 3)


def _read_choice(image: Image.Image, where: Affine, f: FormField) -> Read:
    shares = [(ink(_box_inside(image, where, c.box)), c.value) for c in f.choices]
    marked = [value for share, value in shares if share > MARKED]
    confidence = min(_mark_confidence(share) for share, _ in shares)
    if len(marked) > 1 and not f.multiple:
        # Two boxes marked where one is meant: the darker one, and say we are unsure.
        best = max(shares)[1]
        return Read(best, min(confidence, 0.3), "checkbox")
    return Read(",".join(marked), confidence, "checkbox")


def _padded(image: Image.Image, points: float = 3.0) -> Image.Image:
    """White space around a crop: Tesseract reads ink touching the edge badly."""
    pad = round(points * SCALE)
    out = ImageOps.expand(image, border=pad, fill=255)
    out.info["dpi"] = (round(SCALE * 72), round(SCALE * 72))
    return out


# The small marks each kind of comb may hold, the likeliest first; a small
# mark is told by its shape and place, not by Tesseract (which reads a lone
# full stop in a cell as nothing as often as not).
SMALL_MARKS = {"text": "-'.", "email": ".-_", "icd10": "."}
MARK_CONFIDENCE = 0.8


def _read_comb(fi: FieldImage, tessdata_dir: str | None) -> tuple[str, float]:
    """The comb's characters, one per cell (" " for an empty cell), and the
    least sure character's confidence (1.0 when all cells are empty)."""
    f = fi.field
    speck = DIGIT_SPECK if f.kind in DIGIT_KINDS else SPECK
    written: list[Image.Image | None] = []  # the ink of a cell with a letter or digit
    marks: dict[int, str] = {}  # cell -> a small mark in it
    for index, cell in enumerate(f.cells):
        clean, kept = despeckled(fi.inside(cell, CELL_INSET), speck)
        if kept and max(b.area for b in kept) >= DIGIT_SPECK * SCALE * SCALE:
            left, right = min(b.left for b in kept), max(b.right for b in kept)
            written.append(clean.crop((left, 0, right, clean.height)))
            continue
        written.append(None)
        if kept and f.kind in SMALL_MARKS:
            marks[index] = _small_mark(kept, clean.height, SMALL_MARKS[f.kind])
    # A small mark is writing only between letters: a name, an address or a
    # code neither starts nor ends with one.
    letters = [i for i, w in enumerate(written) if w is not None]
    marks = {i: m for i, m in marks.items() if letters and letters[0] < i < letters[-1]}
    chars, confidences = _read_strip(written, WHITELISTS[f.kind], tessdata_dir, set(marks))
    for index, mark in marks.items():
        chars[index] = mark
        confidences.append(MARK_CONFIDENCE)
    return "".join(chars), min(confidences, default=1.0)


def _small_mark(blobs: list[Blob], height: int, allowed: str) -> str:
    """A small mark by its place in the cell and its shape: ' high, - across
    the middle, _ at the bottom, . on the line (as the kind allows it)."""
    top, bottom = min(b.top for b in blobs), max(b.bottom for b in blobs)
    width = max(b.right for b in blobs) - min(b.left for b in blobs)
    tall = bottom - top
    middle = (top + bottom) / 2 / height
    if width >= 1.8 * tall:
        mark = "_" if middle > 0.8 else "-"
    elif tall >= 1.6 * width:
        mark = "'" if middle < 0.6 else ","
    else:
        mark = "'" if middle < 0.45 else "."
    return mark if mark in allowed else allowed[0]


def _read_cell(inside: Image.Image, whitelist: str,
               tessdata_dir: str | None) -> ocr.Symbol | None:
    """One cell read on its own (as a word: Tesseract reads a lone character
    more reliably so than as a "single character")."""
    for psm in (ocr.WORD, ocr.CHARACTER):
        text = ocr.field_text(_padded(inside), whitelist=whitelist, psm=psm,
                              tessdata_dir=tessdata_dir)
        if text.symbols:
            return max(text.symbols, key=lambda s: s.confidence)
    return None


def _read_strip(written: list[Image.Image | None], whitelist: str, tessdata_dir: str | None,
                marks: set[int] = frozenset()) -> tuple[list[str], list[float]]:
    """The written cells' ink put side by side as one line of text (an empty
    cell between two written ones as a space; a cell with a small mark in
    ``marks`` as nothing: "O'NEILL" is read as one word), read as one line, each
    character given back to the cell it came from; a cell the line left out
    is read on its own. Returns each cell's character (" " for an empty
    cell, "?" for one nothing could be read in) and the written cells'
    confidences."""
    if not any(w is not None for w in written):
        return [" "] * len(written), []
    pad, gap, space = round(3 * SCALE), round(2.5 * SCALE), round(9 * SCALE)
    height = max(w.height for w in written if w is not None) + 2 * pad
    spans: list[tuple[int, int, int]] = []  # (cell, left, right) in the strip
    x = pad
    for index, ink_ in enumerate(written):
        if ink_ is None:
            if spans and spans[-1][2] + gap == x and index not in marks:
                x += space
            continue
        spans.append((index, x, x + ink_.width))
        x += ink_.width + gap
    strip = Image.new("L", (x + pad, height), 255)
    for index, left, _ in spans:
        strip.paste(written[index], (left, pad))
    strip.info["dpi"] = (round(SCALE * 72), round(SCALE * 72))
    text = ocr.field_text(strip, whitelist=whitelist, psm=ocr.LINE, tessdata_dir=tessdata_dir)
    per_cell: dict[int, list[ocr.Symbol]] = {}
    if len(text.symbols) == len(spans):
        # One character for each written cell: in order (Tesseract's boxes
        # of single characters are approximate, its order is not).
        for (index, _, _), symbol in zip(spans, text.symbols):
            per_cell[index] = [symbol]
    else:
        for symbol in text.symbols:
            middle = (symbol.left + symbol.right) / 2
            index, _, _ = min(spans, key=lambda s: 0 if s[1] <= middle < s[2]
                              else min(abs(s[1] - middle), abs(s[2] - middle)))
            per_cell.setdefault(index, []).append(symbol)
    chars, confidences = [], []
    for index, ink_ in enumerate(written):
        if ink_ is None:
            chars.append(" ")
            continue
        found = per_cell.get(index) or []
        if not found:
            alone = _read_cell(ink_, whitelist, tessdata_dir)
            found = [alone] if alone else []
        if not found:
            chars.append("?")
            confidences.append(0.0)
            continue
        best = max(found, key=lambda s: s.confidence)
        chars.append(best.text[:1])
        # two characters read in one cell: at most one of them is right
        confidences.append(best.confidence if len(found) == 1 else best.confidence / 2)
    return chars, confidences


# -- checking each kind -----------------------------------------------------------------
def _checked(f: FormField, chars: str, confidence: float) -> Read:
    """The comb's value as the referral wants it, and its confidence after the kind's check."""
    text = chars.strip()
    if not text:
        return Read("", confidence, "ocr")
    value, ok = CHECKS[f.kind](f, chars)
    return Read(value, round(confidence if ok else min(confidence, FAILED), 3), "ocr")


def _check_text(f: FormField, chars: str) -> tuple[str, bool]:
    value = " ".join(chars.split())
    return value, "?" not in value and bool(re.fullmatch(r"[A-Z][A-Z'. -]*", value))


def _check_date(f: FormField, chars: str) -> tuple[str, bool]:
    digits = chars.replace(" ", "")
    if len(digits) == 8 and digits.isdigit():
        try:
            day = dt.date(int(digits[4:]), int(digits[:2]), int(digits[2:4]))
        except ValueError:
            pass
        else:
            return day.isoformat(), 1890 <= day.year and day <= dt.date.today()
    return f"{chars[:2]}/{chars[2:4]}/{chars[4:]}".replace(" ", ""), False


def _check_phone(f: FormField, chars: str) -> tuple[str, bool]:
    digits = chars.replace(" ", "")
    if len(digits) == 10 and digits.isdigit():
        number = phonenumbers.parse("+1" + digits)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True
    return digits, False


def npi_ok(digits: str) -> bool:
    """The NPI's check digit: the Luhn check over "80840" and the ten digits."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _check_npi(f: FormField, chars: str) -> tuple[str, bool]:
    digits = chars.replace(" ", "")
    return digits, npi_ok(digits)


def _check_email(f: FormField, chars: str) -> tuple[str, bool]:
    value = chars.replace(" ", "").lower()
    try:
        return normalize_email(value), True
    except ValueError:
        return value, False


# Digits and letters Tesseract confuses, put right where an ICD-10-CM code
# must have a letter (its first character) or a digit (its second).
_AS_LETTER = str.maketrans("0125868", "OIZSBGB")
_AS_DIGIT = str.maketrans("OIZSBGDQ", "01258600")
_O_I_AS_DIGIT = str.maketrans("OIQ", "010")


def _check_icd10(f: FormField, chars: str) -> tuple[str, bool]:
    codes = []
    ok = True
    tokens: list[str] = []
    for token in chars.split():
        if tokens and len(token.replace(".", "")) < 3:  # no code is that short:
            tokens[-1] += token  # the rest of the one before (its full stop read as a gap)
        else:
            tokens.append(token)
    for token in tokens:
        bare = token.replace(".", "")
        if len(bare) >= 2:
            # a letter, a digit, then (but for a rare A) digits up to the extension
            bare = (bare[0].translate(_AS_LETTER) + bare[1].translate(_AS_DIGIT)
                    + bare[2:6].translate(_O_I_AS_DIGIT) + bare[6:])
        code = bare[:3] + ("." + bare[3:] if len(bare) > 3 else "")
        ok = ok and bool(ICD10_PATTERN.match(code))
        codes.append(code)
    return " ".join(codes), ok


def _code_or_text(item: str) -> str:
    """A condition is words or an ICD-10-CM code: "125.10" can only be I25.10
    (the letter I and the digit 1 look alike in print)."""
    if item[:1].isdigit():
        code = item[0].translate(_AS_LETTER) + item[1:]
        if ICD10_PATTERN.match(code):
            return code
    return item


def _check_number(f: FormField, chars: str) -> tuple[str, bool]:
    if f.point_after is not None:
        whole, fraction = chars[: f.point_after].strip(), chars[f.point_after:].strip()
        text = f"{whole or '0'}.{fraction or '0'}"
    else:
        text = chars.replace(" ", "")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return f.sign + text, False
    number = float(text) * (-1 if f.sign == "-" else 1)
    value = f"{number:.{len(f.cells) - f.point_after}f}" if f.point_after is not None \
        else str(int(number))
    in_range = (f.low is None or number >= f.low) and (f.high is None or number <= f.high)
    return value, in_range and " " not in chars.strip()


CHECKS = {
    "text": _check_text,
    "date": _check_date,
    "phone": _check_phone,
    "npi": _check_npi,
    "email": _check_email,
    "icd10": _check_icd10,
    "number": _check_number,
}
