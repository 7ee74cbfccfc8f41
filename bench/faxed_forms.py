"""Filled-in referral forms as a fax machine delivers them, each with its truth.

    python bench/faxed_forms.py --write [--dir bench/fax_forms]

writes the benchmark's set (``SAMPLES``: 24 faxes and ``truth.json``) again,
byte for byte the same every time: every random choice comes from a seeded
``random.Random``.

A sample is refflow's referral form (``documents.referral_form``) with values
written in its boxes in one of three styles:

- ``mono``: typed, Courier (a typewriter; thin strokes);
- ``sans``: typed, DejaVu Sans (a printer);
- ``hand``: a handwriting-style font, Humor Sans (Debian ``fonts-humor-sans``),
  each letter moved, turned and sized a little at random, as people print
  capitals in boxes.

The page is then put on the fax line the way a fax machine would: optionally
turned a few degrees (a sheet fed askew), upside down (fed the wrong way
round), with specks of dirt and dropped-out pixels, and rasterised by
refflow's own PDF → TIFF Class F converter (``documents.fax``: bilevel,
Group 3, 204 x 98 dpi "normal" or 204 x 196 "fine"). The truth is the values
as ``faxin.reading.read_fax`` should give them back (dates ISO, phones E.164,
choices by their referral value, "x" for a marked checkbox).

Tests import this module (tests/faxin/conftest.py puts bench/ on sys.path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from reportlab.pdfgen.canvas import Canvas

from refflow.documents.clinic import ClinicInfo
from refflow.documents.fax import pdf_to_fax_tiff
from refflow.documents.fonts import REGULAR, ensure_fonts
from refflow.documents.referral_form import (
    FIELDS,
    HEIGHT,
    WIDTH,
    draw_form,
    draw_values,
    register_values_font,
)

HERE = Path(__file__).resolve().parent
SET_DIR = HERE / "fax_forms"
CLINIC = ClinicInfo("Lakeside Physical Therapy", "+1 763 555 0100", "+1 763 555 0101")
PRACTICE_ID = "0b5c1e2a-6a7e-4a35-9a0e-5d2f0c1b9e77"
HANDWRITING_FONT = "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"  # fonts-humor-sans
STYLES = ("mono", "sans", "hand")
AS_OF = dt.date(2026, 11, 25)


@dataclass(frozen=True)
class Sample:
    name: str
    values: dict[str, str]
    style: str = "mono"
    resolution: str = "fine"
    skew: float = 0.0  # degrees, counter-clockwise
    noise: float = 0.0  # specks per square inch
    upside_down: bool = False
    practice_id: str | None = PRACTICE_ID
    seed: int = 0

    @property
    def variant(self) -> str:
        return f"{self.style}-{self.resolution}"


# -- values --------------------------------------------------------------------------------
GIVEN = ["ANN", "MARGARET", "ROSA", "JUDITH", "HELEN", "DOROTHY", "LINDA", "CAROL", "FATIMA",
         "JOAN", "SUSAN", "MARIA", "GRACE", "ELEANOR", "KAREN", "BARBARA", "PETER", "JAMES",
         "WALTER", "GEORGE", "NANCY", "MEI", "IRENE", "SYLVIA"]
FAMILY = ["LEE", "O'NEILL", "HERNANDEZ", "KOWALSKI", "NGUYEN", "JOHNSON", "SMITH-JONES",
          "ANDERSEN", "OKAFOR", "BAKER", "LINDQVIST", "PATEL", "MOORE", "FISCHER", "DAVIS",
          "RAMIREZ", "OLSON", "WRIGHT", "MCALLISTER", "HUANG", "GARCIA", "BERG", "COLLINS",
          "SULLIVAN"]
DOCTORS = ["DR R PATEL", "DR ANNA SCHMIDT", "DR K OKONJO", "DR MARY CHEN", "DR JOHN DOYLE",
           "DR LUIS ORTEGA", "DR S LARSEN", "DR PRIYA RAO"]
AREAS = ["763", "612", "952", "651", "320", "218"]
DOMAINS = ["EXAMPLE.ORG", "MAIL.COM", "EXAMPLE.NET"]
CODES = [("M81.0", "POSTMENOPAUSAL OSTEOPOROSIS"), ("M81.0", "OSTEOPOROSIS"),
         ("M85.80", "OSTEOPENIA"), ("M81.0 M54.5", "OSTEOPOROSIS, LOW BACK PAIN"),
         ("M80.08", "OSTEOPOROSIS WITH FRACTURE"), ("M81.8", "STEROID OSTEOPOROSIS")]
CONDITIONS = ["HYPERTENSION", "TYPE 2 DIABETES", "ATRIAL FIBRILLATION", "ASTHMA", "COPD",
              "OSTEOARTHRITIS OF KNEES", "HYPOTHYROIDISM", "GLAUCOMA", "DEPRESSION"]
MEDICATIONS = ["ALENDRONATE 70 MG WEEKLY", "VITAMIN D", "CALCIUM", "LISINOPRIL 10 MG",
               "METFORMIN", "PREDNISONE 5 MG", "LEVOTHYROXINE", "DENOSUMAB", "AMLODIPINE"]
GOALS = ["WALK TO THE STORE", "GARDEN", "PLAY WITH GRANDCHILDREN", "CLIMB STAIRS",
         "WALK THE DOG", "TRAVEL", "DANCE AGAIN"]
RESTRICTIONS = ["NO LIFTING OVER 10 LB", "NO HEAVY LIFTING FOR 6 WEEKS",
                "AVOID BENDING FORWARD", "NONE"]
NOTES = ["LIVES ALONE", "PREFERS MORNING SESSIONS", "HARD OF HEARING, CALL DAUGHTER",
         "SPANISH SPEAKING", "WANTS TO START SOON", "USES CANE OUTDOORS ONLY"]


def npi(rng: random.Random) -> str:
    """A ten-digit NPI with a valid check digit (Luhn over 80840 + the first nine)."""
    body = "1" + "".join(str(rng.randrange(10)) for _ in range(8))
    for check in range(10):
        total = 0
        for i, ch in enumerate(reversed("80840" + body + str(check))):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return body + str(check)
    raise AssertionError("unreachable")


def phone(rng: random.Random) -> str:
    return f"+1{rng.choice(AREAS)}5550{rng.randrange(100, 200)}"


def day(rng: random.Random, first: dt.date, last: dt.date) -> str:
    return (first + dt.timedelta(days=rng.randrange((last - first).days))).isoformat()


def sample_values(seed: int, *, full: bool = False) -> dict[str, str]:
    """A referral as an office fills the form in: every field for ``full``,
    otherwise a realistic mix with some fields left empty."""
    rng = random.Random(seed)
    given, family = GIVEN[seed % len(GIVEN)], FAMILY[(seed * 7) % len(FAMILY)]
    codes, words = rng.choice(CODES)
    values = {
        "patient.family_name": family,
        "patient.given_name": given,
        "patient.birth_date": day(rng, dt.date(1936, 1, 1), dt.date(1972, 12, 31)),
        "patient.sex": rng.choice(["female"] * 4 + ["male"]),
        "patient.phone": phone(rng),
        "patient.email": f"{given}.{family.replace(chr(39), '')[:8]}@{rng.choice(DOMAINS)}",
        "referrer.name": rng.choice(DOCTORS),
        "referrer.npi": npi(rng),
        "referrer.phone": phone(rng),
        "referrer.fax": phone(rng),
        "urgency": rng.choice(["", "", "", "x"]),
        "diagnosis.codes": codes,
        "diagnosis.text": words,
        "clinical.t_score": f"-{rng.randrange(10, 40) / 10:.1f}",
        "clinical.frax.major_osteoporotic": f"{rng.randrange(50, 350) / 10:.1f}",
        "clinical.frax.hip": f"{rng.randrange(5, 90) / 10:.1f}",
        "clinical.blood_pressure.systolic": str(rng.randrange(110, 170)),
        "clinical.blood_pressure.diastolic": str(rng.randrange(62, 98)),
        "clinical.pain.score": str(rng.randrange(0, 8)),
        "clinical.fractures": rng.choice(["none", "none", "vertebral", "wrist", "hip",
                                          "vertebral,wrist", "rib", "humerus,ankle"]),
        "clinical.falls_last_12_months": str(rng.choice([0, 0, 1, 1, 2, 3, 12])),
        "clinical.injurious_fall": rng.choice(["yes", "no"]),
        "clinical.can_rise_from_floor": rng.choice(["yes", "yes", "no"]),
        "clinical.mobility_aid": rng.choice(["none", "none", "cane", "walker", "rollator"]),
        "clinical.activity_level": rng.choice(["sedentary", "light", "active"]),
        "clinical.conditions": ", ".join(rng.sample(CONDITIONS, rng.randrange(1, 3))),
        "clinical.medications": ", ".join(rng.sample(MEDICATIONS, rng.randrange(1, 4))),
        "clinical.contraindications_text": rng.choice(RESTRICTIONS),
        "goals": ", ".join(rng.sample(GOALS, 2)),
        "notes": rng.choice(NOTES),
        "deliver.email_to_patient": rng.choice(["yes", "yes", "no"]),
        "deliver.fax_to_referrer": "yes",
    }
    if values["clinical.fractures"] != "none":
        values["clinical.fractures.date"] = day(rng, dt.date(2023, 1, 1), AS_OF)
    if values["clinical.falls_last_12_months"] == "0":
        values["clinical.injurious_fall"] = ""
    if not full:
        for name in rng.sample(OPTIONAL, 5):
            values[name] = ""
    return {f.name: values.get(f.name, "") for f in FIELDS}


# The design example (DESIGN.md "The referral") as an office writes it on the form.
DESIGN_EXAMPLE = {
    "patient.family_name": "LEE", "patient.given_name": "ANN",
    "patient.birth_date": "1951-03-02", "patient.sex": "female",
    "patient.phone": "+17635550100", "patient.email": "ANN.LEE@EXAMPLE.ORG",
    "referrer.name": "DR R PATEL", "referrer.npi": "1234567893",
    "referrer.phone": "+17635550199", "referrer.fax": "+17635550198", "urgency": "",
    "diagnosis.codes": "M81.0", "diagnosis.text": "POSTMENOPAUSAL OSTEOPOROSIS",
    "clinical.t_score": "-2.8", "clinical.frax.major_osteoporotic": "22.0",
    "clinical.frax.hip": "3.1", "clinical.blood_pressure.systolic": "138",
    "clinical.blood_pressure.diastolic": "84", "clinical.pain.score": "3",
    "clinical.fractures": "vertebral", "clinical.fractures.date": "2026-05-01",
    "clinical.falls_last_12_months": "1", "clinical.injurious_fall": "no",
    "clinical.can_rise_from_floor": "yes", "clinical.mobility_aid": "none",
    "clinical.activity_level": "sedentary", "clinical.conditions": "HYPERTENSION, I25.10",
    "clinical.medications": "ALENDRONATE, PREDNISONE 10 MG",
    "clinical.contraindications_text": "NO LIFTING OVER 10 LB FOR 6 WEEKS",
    "goals": "WALK TO THE STORE, GARDEN", "notes": "WALKS TWICE A WEEK",
    "deliver.email_to_patient": "yes", "deliver.fax_to_referrer": "yes",
}

# Fields an office often leaves empty (a sample leaves five of them out).
OPTIONAL = ["patient.phone", "patient.email", "referrer.phone", "clinical.frax.major_osteoporotic",
            "clinical.frax.hip", "clinical.pain.score", "clinical.blood_pressure.systolic",
            "clinical.activity_level", "clinical.contraindications_text", "notes", "goals",
            "deliver.email_to_patient"]


# -- the fax -------------------------------------------------------------------------------
def values_font(style: str) -> tuple[str, float]:
    """(ReportLab font name, size) of a style."""
    ensure_fonts()
    if style == "hand":
        return register_values_font(HANDWRITING_FONT, "Handwriting"), 14.0
    if style == "mono":
        return "Courier", 13.0
    return REGULAR, 12.0


def filled_pdf(values: dict[str, str], *, style: str = "mono", skew: float = 0.0,
               noise: float = 0.0, upside_down: bool = False,
               practice_id: str | None = PRACTICE_ID, seed: int = 0,
               clinic: ClinicInfo = CLINIC) -> bytes:
    """The form with ``values`` written in, turned and specked as on the fax line."""
    font, size = values_font(style)
    out = io.BytesIO()
    c = Canvas(out, pagesize=(WIDTH, HEIGHT), pageCompression=1, invariant=1)
    c.translate(WIDTH / 2, HEIGHT / 2)
    c.rotate(skew + (180 if upside_down else 0))
    c.translate(-WIDTH / 2, -HEIGHT / 2)
    draw_form(c, clinic, practice_id=practice_id)
    rng = random.Random(seed)
    draw_values(c, values, font=font, size=size,
                jitter=random.Random(seed + 1) if style == "hand" else None)
    if noise:
        _speckle(c, rng, noise)
    c.showPage()
    c.save()
    return out.getvalue()


def _speckle(c: Canvas, rng: random.Random, per_square_inch: float) -> None:
    """Specks of dirt (black) and dropped-out pixels (white), one to three fax
    pixels across, over the whole sheet."""
    count = int(per_square_inch * (WIDTH / 72) * (HEIGHT / 72))
    for grey in (0, 1):
        c.setFillGray(grey)
        path = c.beginPath()
        for _ in range(count if grey == 0 else count * 2):
            size = rng.choice((0.5, 0.7, 1.0))
            path.rect(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), size, size * 1.4)
        c.drawPath(path, stroke=0, fill=1)


def faxed_form(values: dict[str, str], *, resolution: str = "fine", **options) -> bytes:
    """The filled form as a received fax: a TIFF Class F (bilevel, Group 3)."""
    return pdf_to_fax_tiff(filled_pdf(values, **options), resolution=resolution)


def sample_fax(sample: Sample) -> bytes:
    return faxed_form(sample.values, resolution=sample.resolution, style=sample.style,
                      skew=sample.skew, noise=sample.noise, upside_down=sample.upside_down,
                      practice_id=sample.practice_id, seed=sample.seed)


# -- the benchmark's set -------------------------------------------------------------------
def samples() -> list[Sample]:
    """24 faxes: 3 styles x 2 resolutions x 4 conditions (straight and clean;
    skewed; skewed and specked; upside down, skewed and specked), each with
    other values."""
    out = []
    conditions = [(0.0, 0.0, False), (1.2, 0.0, False), (-2.0, 6.0, False), (0.8, 6.0, True)]
    n = 0
    for style in STYLES:
        for resolution in ("normal", "fine"):
            for skew, noise, upside_down in conditions:
                n += 1
                rng = random.Random(1000 + n)
                skew = round(math.copysign(abs(skew) * rng.uniform(0.7, 1.0), skew), 2) \
                    if skew else 0.0
                tag = "".join(["-skew" if skew else "", "-noise" if noise else "",
                               "-flip" if upside_down else ""]) or "-clean"
                out.append(Sample(f"{n:02d}-{style}-{resolution}{tag}", sample_values(n),
                                  style, resolution, skew, noise, upside_down,
                                  practice_id=None if n % 6 == 0 else PRACTICE_ID, seed=n))
    return out


def write(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for sample in samples():
        (folder / f"{sample.name}.tif").write_bytes(sample_fax(sample))
        meta = asdict(sample)
        meta.pop("name")
        truth[sample.name] = meta
    (folder / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the benchmark's set")
    parser.add_argument("--dir", type=Path, default=SET_DIR)
    args = parser.parse_args()
    if not args.write:
        parser.error("nothing to do: --write writes the set")
    truth = write(args.dir)
    sizes = [(args.dir / f"{name}.tif").stat().st_size for name in truth]
    print(json.dumps({"faxes": len(truth), "dir": str(args.dir), "bytes": sum(sizes),
                      "largest": max(sizes)}))


if __name__ == "__main__":
    main()
