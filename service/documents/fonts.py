"""The fonts every document uses, shipped with the package and embedded in each PDF.

DejaVu Sans (see fonts/LICENSE-DejaVu.txt) is registered with ReportLab once
per process (``pdfmetrics.registerFont(TTFont(...))``); parsing a TTF costs
~10 ms, so it never happens per document. ReportLab embeds a subset of each
font (only the glyphs used) in every PDF.

DejaVu Sans has no Chinese, Japanese or Korean glyphs, so a patient named
李小龍, 田中 花子 or 김민준 is drawn with WenQuanYi Micro Hei (Debian's
``fonts-wqy-microhei``; a TrueType collection, face 0) instead. ReportLab does
not fall back from one font to another by itself, so each document font is a
``FallbackFont``: a DejaVu Sans ``TTFont`` that splits a string into runs by
glyph coverage and hands the characters DejaVu cannot draw to the CJK font,
both when measuring (``stringWidth``) and when drawing (``splitString`` and
``getSubsetInternalName``, ReportLab's documented interface of a dynamic
font: see ``reportlab.pdfbase.ttfonts``). Every ``canvas.drawString`` and
``stringWidth`` with ``REGULAR`` or ``BOLD`` therefore prints CJK names with no
change to the callers. The CJK font (5 MB) is only read the first time a
document needs it. Without it, documents still render, those characters print
as empty boxes, and a warning says so once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from reportlab import rl_config
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

FONT_DIR = Path(__file__).with_name("fonts")
CJK_FILE = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # fonts-wqy-microhei

REGULAR = "RefflowSans"
BOLD = "RefflowSans-Bold"
CJK = "RefflowCJK"

_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
# Subset numbers of the CJK font's runs, told apart from DejaVu's own (0, 1, …).
_CJK_SUBSETS = 1 << 16
_lock = threading.Lock()
_registered = False
_cjk: TTFont | None = None
_cjk_tried = False
log = logging.getLogger(__name__)


def cjk_font() -> TTFont | None:
    """The CJK fallback font, read on first use; ``None`` (and one warning) if missing."""
    global _cjk, _cjk_tried
    if _cjk_tried:
        return _cjk
    with _lock:
        if not _cjk_tried:
            try:
                _cjk = TTFont(CJK, str(CJK_FILE), subfontIndex=0, shapable=False)
            except (OSError, TTFError) as exc:  # missing or unreadable: say so, once
                log.warning("the CJK font %s cannot be read (%s): Chinese, Japanese and "
                            "Korean characters print as empty boxes; install the Debian "
                            "package fonts-wqy-microhei", CJK_FILE, type(exc).__name__)
            _cjk_tried = True
    return _cjk


class FallbackFont(TTFont):
    """A TrueType font whose missing characters are drawn with the CJK font."""

    def runs(self, text: str) -> list[tuple[TTFont, str]]:
        """``text`` cut into (font, run) pieces: this font wherever it has a
        glyph (or neither font has one), the CJK font elsewhere."""
        if text.isascii():
            return [(self, text)]
        own = self.face.charToGlyph
        missing = [ch for ch in text if ord(ch) not in own and ch != "\xa0"]
        cjk = cjk_font() if missing else None
        if cjk is None:
            return [(self, text)]
        out: list[tuple[TTFont, str]] = []
        for ch in text:
            code = ord(ch)
            font = cjk if code not in own and ch != "\xa0" and code in cjk.face.charToGlyph \
                else self
            if out and out[-1][0] is font:
                out[-1] = (font, out[-1][1] + ch)
            else:
                out.append((font, ch))
        return out

    def stringWidth(self, text, size, encoding="utf8"):  # noqa: N802 - ReportLab's name
        if isinstance(text, bytes):
            text = text.decode(encoding)
        if text.isascii():  # the common case, at C speed
            return super().stringWidth(text, size, encoding)
        return sum(TTFont.stringWidth(font, run, size) for font, run in self.runs(text))

    def splitString(self, text, doc, encoding="utf-8"):  # noqa: N802
        if isinstance(text, bytes):
            text = text.decode(encoding)
        out = []
        for font, run in self.runs(text):
            offset = 0 if font is self else _CJK_SUBSETS
            out += [(subset + offset, chunk)
                    for subset, chunk in TTFont.splitString(font, run, doc)]
        return out

    def getSubsetInternalName(self, subset, doc):  # noqa: N802
        if subset >= _CJK_SUBSETS:
            return cjk_font().getSubsetInternalName(subset - _CJK_SUBSETS, doc)
        return super().getSubsetInternalName(subset, doc)


def ensure_fonts() -> None:
    """Register the document fonts with ReportLab (idempotent, thread-safe)."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        for name, filename in _FILES.items():
            pdfmetrics.registerFont(FallbackFont(name, str(FONT_DIR / filename), shapable=False))
        pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD)
        # ReportLab ASCII85-encodes streams by default (7-bit-clean PDFs, a relic):
        # 25% bigger files and a pure-Python encoder that costs ~2.5 ms a handout.
        rl_config.useA85 = 0
        _registered = True
