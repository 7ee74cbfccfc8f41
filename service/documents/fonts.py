"""The fonts every document uses, shipped with the package and embedded in each PDF.

DejaVu Sans (see fonts/LICENSE-DejaVu.txt) is registered with ReportLab once
per process (``pdfmetrics.registerFont(TTFont(...))``); parsing a TTF costs
~10 ms, so it never happens per document. ReportLab embeds a subset of each
font (only the glyphs used) in every PDF.
"""

from __future__ import annotations

import threading
from pathlib import Path

from reportlab import rl_config
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FONT_DIR = Path(__file__).with_name("fonts")

REGULAR = "RefflowSans"
BOLD = "RefflowSans-Bold"

_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
_lock = threading.Lock()
_registered = False


def ensure_fonts() -> None:
    """Register the document fonts with ReportLab (idempotent, thread-safe)."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        for name, filename in _FILES.items():
            pdfmetrics.registerFont(TTFont(name, str(FONT_DIR / filename)))
        pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD)
        # ReportLab ASCII85-encodes streams by default (7-bit-clean PDFs, a relic):
        # 25% bigger files and a pure-Python encoder that costs ~2.5 ms a handout.
        rl_config.useA85 = 0
        _registered = True
