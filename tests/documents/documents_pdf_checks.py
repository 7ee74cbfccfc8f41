"""Helpers for the document tests: text, font sizes, embedded fonts and fills
of PDFs, and the system checkers (tiffcheck, tiffinfo)."""

from __future__ import annotations

import ctypes
import io
import re
import shutil

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from pypdf import PdfReader


def page_texts(pdf: bytes) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def plain(text: str) -> str:
    """Whitespace collapsed, so wrapped lines compare like one line."""
    return " ".join(text.split())


def font_sizes(pdf: bytes) -> set[float]:
    """The font size of every non-blank character on every page (points)."""
    sizes: set[float] = set()
    doc = pdfium.PdfDocument(pdf)
    try:
        for i in range(len(doc)):
            textpage = doc[i].get_textpage()
            for index in range(textpage.count_chars()):
                if chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index)).isspace():
                    continue
                sizes.add(round(pdfium_c.FPDFText_GetFontSize(textpage.raw, index), 2))
    finally:
        doc.close()
    return sizes


def fonts(pdf: bytes) -> dict[str, bool]:
    """{BaseFont: embedded?} for every font the pages use (forms included)."""
    reader = PdfReader(io.BytesIO(pdf))
    found: dict[str, bool] = {}

    def visit(resources) -> None:
        if not resources:
            return
        resources = resources.get_object()
        for font in (resources.get("/Font") or {}).values():
            font = font.get_object()
            descriptor = font.get("/FontDescriptor")
            embedded = bool(descriptor) and any(
                key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            found[str(font.get("/BaseFont"))] = embedded
        for xobject in (resources.get("/XObject") or {}).values():
            visit(xobject.get_object().get("/Resources"))

    for page in reader.pages:
        visit(page.get("/Resources"))
    return found


def metadata(pdf: bytes) -> dict:
    return dict(PdfReader(io.BytesIO(pdf)).metadata or {})


def fill_colours(pdf: bytes) -> set[str]:
    """Every grey/RGB colour operator in the page content (e.g. '0 g', '.85 g')."""
    reader = PdfReader(io.BytesIO(pdf))
    found: set[str] = set()
    pattern = re.compile(rb"(?:^|\s)((?:[\d.]+\s+){1}[gG]|(?:[\d.]+\s+){3}(?:rg|RG))(?=\s)")
    for page in reader.pages:
        data = page.get_contents().get_data()
        found.update(m.group(1).decode().strip() for m in pattern.finditer(data))
    return found


def find_tool(name: str) -> str:
    """A system tool from PATH or /usr/sbin (tiffcheck lives there), or fail clearly."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not path:
        pytest.fail(f"{name} is missing: apt-get install -y hylafax-server libtiff-tools "
                    "ghostscript poppler-utils")
    return path


def char_fonts(pdf: bytes) -> dict[str, set[str]]:
    """{character: names of the fonts it is drawn with} over every page."""
    found: dict[str, set[str]] = {}
    buffer = ctypes.create_string_buffer(256)
    doc = pdfium.PdfDocument(pdf)
    try:
        for i in range(len(doc)):
            textpage = doc[i].get_textpage()
            for index in range(textpage.count_chars()):
                char = chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, index))
                flags = ctypes.c_int()
                size = pdfium_c.FPDFText_GetFontInfo(textpage.raw, index, buffer, 256, flags)
                found.setdefault(char, set()).add(buffer.raw[:max(size - 1, 0)].decode())
    finally:
        doc.close()
    return found
