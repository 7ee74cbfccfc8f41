"""Benchmark: reading faxed referral forms, refflow's form reader beside plain Tesseract.

    python bench/fax_intake.py [--dir bench/fax_forms] [--runs 1]

On the sample set (``bench/faxed_forms.py --write``: 24 faxes, typed and
handwriting-style, normal and fine resolution, straight, skewed, specked and
upside down, each with its truth) it prints one JSON object:

- ``refflow``: ``faxin.reading.read_fax`` on each fax, as the worker runs it
  (every page's text, the barcode, registration, the fields, the draft);
- ``baseline``: what plain Tesseract gives without the form-aware reader —
  the page's text (``tesserocr``, the same engine and language data), each
  field found by its printed label in that text (the rest of the label's
  line, else the next line; a choice is marked when an X-like mark precedes
  its label), then the same checks by kind as refflow's (so dates, phones and
  numbers get the same chance to match).

For each: field accuracy (a field is right when its value equals the truth
after normalisation: capitals, single spaces, no space before a comma;
an empty truth must read empty) and the same over the fields the office
filled in (``filled_field_accuracy``: an empty field found empty is easy),
per variant (style and resolution), per
condition and overall; seconds a page (median, wall); for refflow the
barcode read rate and how well the confidence tells right from wrong.
``engine_reuse`` measures why each thread keeps one Tesseract engine: making
one costs about as much as reading a dozen fields.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import faxed_forms  # noqa: E402

from refflow.documents.referral_form import FIELDS, FormField  # noqa: E402
from refflow.faxin import form_reader, ocr  # noqa: E402
from refflow.faxin.pages import page_images  # noqa: E402
from refflow.faxin.reading import read_fax  # noqa: E402


def normal(value: str) -> str:
    return re.sub(r"\s+,", ",", " ".join(str(value).upper().split()))


def condition_of(sample: dict) -> str:
    if sample["upside_down"]:
        return "upside_down_skewed_specked"
    if sample["noise"]:
        return "skewed_specked"
    return "skewed" if sample["skew"] else "straight_clean"


# -- the baseline: the page's text, each field found by its label ------------------------
MARKS = re.compile(r"[XxK%&¥]\W{0,3}$")


def baseline_fields(text: str) -> dict[str, str]:
    """Each field's value as found after its label in the page's OCR text."""
    lines = text.splitlines()
    labels = [f.label for f in FIELDS if f.kind not in ("choice", "checkbox")]
    out = {}
    for f in FIELDS:
        if f.kind == "choice":
            out[f.name] = _baseline_choice(f, text)
        elif f.kind == "checkbox":
            at = text.find(f.label)
            out[f.name] = "x" if at >= 0 and MARKS.search(text[max(0, at - 4):at]) else ""
        else:
            out[f.name] = _after_label(f, lines, labels)
    return out


def _after_label(f: FormField, lines: list[str], labels: list[str]) -> str:
    label = f.label.split(",")[0]
    for i, line in enumerate(lines):
        at = line.lower().find(label.lower())
        if at < 0:
            continue
        rest = line[at + len(label):]
        for other in labels:  # up to the next label on the same line
            cut = rest.lower().find(other.split(",")[0].lower())
            if cut > 0:
                rest = rest[:cut]
        rest = rest.strip(" :")
        if not rest and i + 1 < len(lines):
            rest = lines[i + 1].strip()
        raw = rest
        if f.kind in form_reader.DIGIT_KINDS:
            raw = "".join(ch for ch in rest if ch.isdigit())[: len(f.cells)].ljust(len(f.cells))
        elif f.comb:
            raw = re.sub(r"[^A-Z0-9@.'\- ]", "", rest.upper())[: len(f.cells)]
        else:
            return " ".join(rest.upper().split())
        if not raw.strip():
            return ""
        value, _ = form_reader.CHECKS[f.kind](f, raw)
        return value
    return ""


def _baseline_choice(f: FormField, text: str) -> str:
    marked = []
    for choice in f.choices:
        at = text.find(choice.label)
        if at >= 0 and MARKS.search(text[max(0, at - 4):at]):
            marked.append(choice.value)
    return ",".join(marked if f.multiple else marked[:1])


# -- scoring ----------------------------------------------------------------------------
class Score:
    def __init__(self) -> None:
        self.right = defaultdict(int)
        self.total = defaultdict(int)
        self.filled_right = defaultdict(int)  # fields the office filled in (truth not empty)
        self.filled = defaultdict(int)
        self.seconds = defaultdict(list)

    def add(self, keys: list[str], truth: dict, read: dict[str, str], seconds: float) -> list:
        outcomes = []
        for name, expected in truth.items():
            ok = normal(read.get(name, "")) == normal(expected)
            outcomes.append((name, ok))
            for key in keys:
                self.total[key] += 1
                self.right[key] += ok
                if str(expected).strip():
                    self.filled[key] += 1
                    self.filled_right[key] += ok
        for key in keys:
            self.seconds[key].append(seconds)
        return outcomes

    def table(self, key: str) -> dict:
        return {"field_accuracy": round(self.right[key] / self.total[key], 3),
                "filled_field_accuracy": round(self.filled_right[key] / self.filled[key], 3),
                "fields": self.total[key], "filled_fields": self.filled[key],
                "seconds_per_page": round(statistics.median(self.seconds[key]), 3)}


def engine_reuse(image) -> dict:
    """Reading one comb cell with this thread's engine vs making an engine for it."""
    from tesserocr import OEM, PyTessBaseAPI

    cell = image.crop((0, 0, 60, 80))
    ocr.field_text(cell, whitelist="0123456789", psm=ocr.WORD)  # warm
    runs = 20
    start = time.perf_counter()
    for _ in range(runs):
        ocr.field_text(cell, whitelist="0123456789", psm=ocr.WORD)
    reused = (time.perf_counter() - start) / runs
    path = ocr.tessdata_path()
    start = time.perf_counter()
    for _ in range(5):
        api = PyTessBaseAPI(path=path + os.sep, lang="eng", oem=OEM.LSTM_ONLY)
        api.End()
    made = (time.perf_counter() - start) / 5
    return {"read_one_field_ms": round(reused * 1000, 2),
            "make_one_engine_ms": round(made * 1000, 1),
            "fields_a_form": len([f for f in FIELDS if f.kind not in ("choice", "checkbox")])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=faxed_forms.SET_DIR)
    args = parser.parse_args()
    load_before = os.getloadavg()
    truth = json.loads((args.dir / "truth.json").read_text())
    ours, base = Score(), Score()
    barcodes = 0
    confidences = {"right": [], "wrong": []}
    pages = {}
    for name, sample in sorted(truth.items()):
        pages[name] = page_images((args.dir / f"{name}.tif").read_bytes())
    read_fax(pages[next(iter(pages))])  # warm up: the engine, fonts, imports
    for name, sample in sorted(truth.items()):
        images = pages[name]
        style = "typed" if sample["style"] in ("mono", "sans") else "handwriting"
        keys = ["overall", f"{sample['style']}-{sample['resolution']}",
                f"{style}-{sample['resolution']}", style, sample["resolution"],
                condition_of(sample)]
        start = time.perf_counter()
        reading = read_fax(images)
        seconds = time.perf_counter() - start
        read = {k: v.value for k, v in reading.fields.items()}
        for field_name, ok in ours.add(keys, sample["values"], read, seconds / len(images)):
            confidences["right" if ok else "wrong"].append(reading.fields[field_name].confidence
                                                           if field_name in reading.fields
                                                           else 0.0)
        form = reading.form
        barcodes += bool(form and form.form == "referral"
                         and form.practice_id == sample["practice_id"])

        start = time.perf_counter()
        text = ocr.page_text(images[0])
        found = baseline_fields(text.text)
        base.add(keys, sample["values"], found, time.perf_counter() - start)

    def tables(score: Score) -> dict:
        return {key: score.table(key) for key in sorted(score.total, key=_order)}

    right, wrong = confidences["right"], confidences["wrong"]
    result = {
        "bench": "fax_intake",
        "python": platform.python_version(),
        "tesseract": ocr.engine().Version(),
        "cpus": os.cpu_count(),
        "load_average": {"before": round(load_before[0], 2),
                         "after": round(os.getloadavg()[0], 2)},
        "faxes": len(truth),
        "fields_a_form": len(FIELDS),
        "refflow": tables(ours),
        "baseline": tables(base),
        "barcode_read_rate": round(barcodes / len(truth), 3),
        "confidence": {
            "mean_when_right": round(statistics.mean(right), 3) if right else None,
            "mean_when_wrong": round(statistics.mean(wrong), 3) if wrong else None,
            "wrong_below_0_5": round(sum(c < 0.5 for c in wrong) / len(wrong), 3)
            if wrong else None,
            "right_below_0_5": round(sum(c < 0.5 for c in right) / len(right), 3)
            if right else None,
        },
        "engine_reuse": engine_reuse(pages[next(iter(pages))][0]),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


ORDER = ["overall", "typed", "handwriting", "normal", "fine", "typed-normal", "typed-fine",
         "handwriting-normal", "handwriting-fine"]


def _order(key: str) -> tuple[int, str]:
    return (ORDER.index(key) if key in ORDER else len(ORDER), key)


if __name__ == "__main__":
    main()
