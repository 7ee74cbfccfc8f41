"""The fonts every document uses, shipped with the package and embedded in each PDF.

DejaVu Sans (see fonts/LICENSE-DejaVu.txt) is registered with ReportLab once
per process; parsing a TTF costs ~10 ms, so it never happens per document.
ReportLab embeds a subset of each font (only the glyphs used) in every PDF.

Building and compressing that subset (a ~35 KB TrueType file per font) cost
about 1.5 ms a font a document, and nearly every document uses the same
glyphs, so the compressed subset is cached per glyph list: a PDF is byte for
byte what ReportLab would have written, only faster.
"""

from __future__ import annotations

import threading
import zlib
from functools import lru_cache
from pathlib import Path

from reportlab import rl_config
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, TTFont

FONT_DIR = Path(__file__).with_name("fonts")

REGULAR = "RefflowSans"
BOLD = "RefflowSans-Bold"

_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
_lock = threading.Lock()
_registered = False


class _Precompressed:
    """A FlateDecode stream filter for content that is already compressed."""

    pdfname = "FlateDecode"

    @staticmethod
    def encode(data: bytes) -> bytes:
        return data


class SubsetCachingTTFont(TTFont):
    """A TrueType font whose embedded subsets are built and compressed once per glyph list."""

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(name, filename)
        # TTFont.addObjects asks its face for each subset's font file and descriptor.
        self._face_add_subset_objects = self.face.addSubsetObjects
        self.face.addSubsetObjects = self._add_subset_objects

    def _add_subset_objects(self, doc, fontname, subset):
        if not doc.compression:
            return self._face_add_subset_objects(doc, fontname, subset)
        raw_length, compressed = self._font_file(tuple(subset))
        font_file = pdfdoc.PDFStream()
        font_file.content = compressed
        font_file.dictionary["Length1"] = raw_length
        font_file.filters = [_Precompressed]
        font_file_ref = doc.Reference(font_file, f"fontFile:{self.face.filename}({fontname})")
        # The font descriptor exactly as ReportLab's TTFontFace.addSubsetObjects writes it.
        flags = (self.face.flags & ~FF_NONSYMBOLIC) | FF_SYMBOLIC
        descriptor = pdfdoc.PDFDictionary({
            "Type": "/FontDescriptor",
            "Ascent": self.face.ascent,
            "CapHeight": self.face.capHeight,
            "Descent": self.face.descent,
            "Flags": flags,
            "FontBBox": pdfdoc.PDFArray(self.face.bbox),
            "FontName": pdfdoc.PDFName(fontname),
            "ItalicAngle": self.face.italicAngle,
            "StemV": self.face.stemV,
            "FontFile2": font_file_ref,
            "MissingWidth": self.face.defaultWidth,
        })
        return doc.Reference(descriptor, "fontDescriptor:" + fontname)

    @lru_cache(maxsize=64)  # noqa: B019 - two font objects for the life of the process
    def _font_file(self, subset: tuple[int, ...]) -> tuple[int, bytes]:
        data = self.face.makeSubset(list(subset))
        return len(data), zlib.compress(data)


def ensure_fonts() -> None:
    """Register the document fonts with ReportLab (idempotent, thread-safe)."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        for name, filename in _FILES.items():
            pdfmetrics.registerFont(SubsetCachingTTFont(name, str(FONT_DIR / filename)))
        pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD)
        # ReportLab ASCII85-encodes streams by default (7-bit-clean PDFs, a relic):
        # 25% bigger files and a pure-Python encoder that costs ~2.5 ms a handout.
        rl_config.useA85 = 0
        _registered = True
