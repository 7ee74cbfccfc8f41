"""A small top-to-bottom page layout on a ReportLab canvas.

The handout, the summary and the fax cover are simple documents: headings,
wrapped paragraphs, bullet lists, boxes and grid tables flowing down the page.
``Flow`` does just that on ``reportlab.pdfgen.canvas`` directly, which is
several times faster than platypus and keeps a handout under 15 ms. It uses
ReportLab's public API only (``setFont``/``drawString``, forms for the page
count).

Everything is drawn in black on white (no grey fills) so that pages stay
readable after faxing; the only exception is the optional DRAFT watermark.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4, LETTER
from reportlab.pdfbase.pdfmetrics import getFont, stringWidth
from reportlab.pdfgen.canvas import Canvas

from refflow.documents.fonts import BOLD, REGULAR, ensure_fonts
from refflow.documents.translations import _

PAPER = {"letter": LETTER, "a4": A4}
PAGE_COUNT_FORM = "refflowPageCount"


def paper_size(paper: str) -> tuple[float, float]:
    try:
        return PAPER[paper]
    except KeyError:
        raise ValueError(f"paper must be one of {sorted(PAPER)}") from None


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap of ``text`` to ``width`` points; honours newlines."""
    text = str(text)
    measure = getFont(font).stringWidth
    if "\n" not in text and measure(text, size) <= width:  # the common case: one line
        return [" ".join(text.split())] if text.strip() else [""]
    lines: list[str] = []
    space = measure(" ", size)
    for raw in text.split("\n"):
        words = raw.split()
        if not words:
            lines.append("")
            continue
        line: list[str] = []
        used = 0.0
        for word in words:
            w = measure(word, size)
            if w > width:  # a word longer than the line: break after _ / - or anywhere
                if line:
                    lines.append(" ".join(line))
                    line, used = [], 0.0
                chunk = ""
                for piece in _pieces(word):
                    if chunk and stringWidth(chunk + piece, font, size) > width:
                        lines.append(chunk)
                        chunk = ""
                    if stringWidth(piece, font, size) > width:
                        for ch in piece:
                            if chunk and stringWidth(chunk + ch, font, size) > width:
                                lines.append(chunk)
                                chunk = ""
                            chunk += ch
                    else:
                        chunk += piece
                line, used = [chunk], stringWidth(chunk, font, size)
                continue
            if line and used + space + w > width:
                lines.append(" ".join(line))
                line, used = [word], w
            else:
                used = used + space + w if line else w
                line.append(word)
        if line:
            lines.append(" ".join(line))
    return lines


def _pieces(word: str) -> list[str]:
    """``word`` cut after each underscore, hyphen or slash (good places to break)."""
    pieces, start = [], 0
    for i, ch in enumerate(word):
        if ch in "_-/":
            pieces.append(word[start:i + 1])
            start = i + 1
    if start < len(word):
        pieces.append(word[start:])
    return pieces


@dataclass
class Style:
    font: str = REGULAR
    size: float = 13.0
    leading: float | None = None

    @property
    def lead(self) -> float:
        return self.leading or self.size * 1.3


class Flow:
    """Draws blocks top to bottom, starting new pages as needed.

    ``decorate(flow)`` draws the running header/footer on each page (the page
    number is ``flow.page``); it may call ``draw_page_count`` to print the
    total number of pages: a form XObject (``canvas.doForm``) drawn on every
    page and defined once, in ``finish``, when the total is known.
    """

    def __init__(
        self,
        *,
        paper: str = "letter",
        margin: float = 54.0,
        top: float = 72.0,
        bottom: float = 56.0,
        title: str = "",
        author: str = "",
        subject: str = "",
        decorate: Callable[[Flow], None] | None = None,
    ) -> None:
        ensure_fonts()
        self.buffer = io.BytesIO()
        self.pagesize = paper_size(paper)
        self.canvas = Canvas(self.buffer, pagesize=self.pagesize, pageCompression=1,
                             initialFontName=REGULAR, initialFontSize=12)
        self.canvas.setTitle(title)
        self.canvas.setAuthor(author)
        self.canvas.setSubject(subject)
        self.canvas.setCreator("refflow")
        self.canvas.setProducer("refflow (ReportLab)")
        self.width, self.height = self.pagesize
        self.left = margin
        self.right = self.width - margin
        self.top_y = self.height - top
        self.bottom_y = bottom
        self.decorate = decorate
        self.page = 0
        self.y = 0.0
        self._page_count_used = False
        self._wraps: dict[tuple, list[str]] = {}
        self._start_page()

    # -- pages ---------------------------------------------------------------
    @property
    def text_width(self) -> float:
        return self.right - self.left

    def _start_page(self) -> None:
        self.page += 1
        self.y = self.top_y
        if self.decorate:
            self.decorate(self)
        self.canvas.setFillGray(0)
        self.canvas.setStrokeGray(0)
        self._font = (REGULAR, 12.0)

    def font(self, name: str, size: float) -> None:
        """Select the font for the following ``text`` calls."""
        self._font = (name, size)

    def text(self, x: float, y: float, text: str) -> None:
        """Draw one line at (x, y) in the font chosen with ``font``."""
        if not text:  # an empty cell or line: nothing to draw
            return
        name, size = self._font
        self.canvas.setFont(name, size)
        self.canvas.drawString(x, y, text)

    def new_page(self) -> None:
        self.canvas.showPage()
        self._start_page()

    def need(self, height: float) -> None:
        """Start a new page unless ``height`` points still fit on this one."""
        if self.y - height < self.bottom_y and self.y < self.top_y:
            self.new_page()

    def keep(self, height: float, *, max_gap: float = 1 / 3) -> None:
        """Keep the next ``height`` points together: start a new page when they
        do not fit here, fit on a fresh page, and leave at most ``max_gap`` of
        this page's writing area empty. Otherwise the block flows on, split
        across the page break."""
        area = self.top_y - self.bottom_y
        if height <= area and self.y - height < self.bottom_y \
                and self.y - self.bottom_y <= max_gap * area:
            self.new_page()

    def space(self, points: float) -> None:
        self.y -= points

    def draw_page_count(self, x: float, y: float, font: str, size: float) -> None:
        """Draw the total page count at (x, y); the number is filled in at finish."""
        self._page_count_used = True
        c = self.canvas
        c.saveState()
        c.translate(x, y)
        c.doForm(PAGE_COUNT_FORM)
        c.restoreState()
        self._count_font = (font, size)

    def draw_page_of(self, y: float, font: str, size: float) -> None:
        """"Page N of M" at the right margin (room is kept for a two-digit M)."""
        c = self.canvas
        label = _("Page {n} of ").format(n=self.page)  # the document's language (translations)
        x = self.right - c.stringWidth(label + "00", font, size)
        c.setFont(font, size)
        c.drawString(x, y, label)
        self.draw_page_count(x + c.stringWidth(label, font, size), y, font, size)

    def finish(self) -> bytes:
        c = self.canvas
        c.showPage()
        if self._page_count_used:
            font, size = self._count_font
            c.beginForm(PAGE_COUNT_FORM)
            c.setFillGray(0)
            self.font(font, size)
            self.text(0, 0, str(self.page))
            c.endForm()
        c.save()
        return self.buffer.getvalue()

    # -- blocks --------------------------------------------------------------
    def wrap(self, text: str, font: str, size: float, width: float) -> list[str]:
        """``wrap`` remembered for this document (blocks are measured, then drawn)."""
        key = (text, font, size, width)
        lines = self._wraps.get(key)
        if lines is None:
            lines = self._wraps[key] = wrap(text, font, size, width)
        return lines

    def lines(
        self,
        lines: Sequence[str],
        style: Style,
        *,
        x: float | None = None,
        keep_together: bool = False,
    ) -> None:
        x = self.left if x is None else x
        lead = style.lead
        if keep_together:
            self.need(lead * len(lines))
        for line in lines:
            self.need(lead)
            self.y -= lead
            self.font(style.font, style.size)
            self.text(x, self.y + (lead - style.size) * 0.5 + style.size * 0.2, line)

    def paragraph(
        self, text: str, style: Style, *, indent: float = 0.0, after: float = 4.0,
        keep_together: bool = True,
    ) -> None:
        lines = self.wrap(text, style.font, style.size, self.text_width - indent)
        self.lines(lines, style, x=self.left + indent, keep_together=keep_together)
        self.y -= after

    def heading(self, text: str, style: Style, *, before: float = 10.0, after: float = 4.0,
                keep_with: float = 0.0, rule: bool = False) -> None:
        """A heading, kept on the same page as the next ``keep_with`` points."""
        lines = self.wrap(text, style.font, style.size, self.text_width)
        self.need(before + style.lead * len(lines) + keep_with)
        if self.y < self.top_y:
            self.y -= before
        self.lines(lines, style)
        if rule:
            self.canvas.setLineWidth(1.2)
            self.canvas.line(self.left, self.y - 2, self.right, self.y - 2)
            self.y -= 4
        self.y -= after

    def bullets(self, items: Sequence[str], style: Style, *, bullet: str = "•",
                indent: float = 18.0, after: float = 3.0, bullet_numbers: bool = False) -> None:
        """A list; ``bullet_numbers`` numbers the items [1], [2], … instead."""
        if bullet_numbers:
            indent = max(indent, stringWidth(f"[{len(items)}]", style.font, style.size) + 8)
        for number, item in enumerate(items, 1):
            if bullet_numbers:
                bullet = f"[{number}]"
            lines = self.wrap(item, style.font, style.size, self.text_width - indent)
            self.need(style.lead * min(len(lines), 3))
            top = self.y
            self.font(style.font, style.size)
            self.lines(lines[:1], style, x=self.left + indent)
            self.font(style.font, style.size)
            if self.y < top:  # drawn on this page
                self.text(self.left + (0 if bullet_numbers else 4),
                                       self.y + (style.lead - style.size) * 0.5
                                       + style.size * 0.2, bullet)
            self.lines(lines[1:], style, x=self.left + indent)
            self.y -= after

    def label_value(self, label: str, value: str, style: Style, bold: Style, *,
                    label_width: float = 130.0, after: float = 1.0) -> None:
        """A "label: value" row with the value wrapped in its own column."""
        lines = self.wrap(value, style.font, style.size, self.text_width - label_width)
        label_lines = self.wrap(label, bold.font, bold.size, label_width - 6)
        n = max(len(lines), len(label_lines))
        self.need(style.lead * n)
        for i in range(n):
            self.y -= style.lead
            base = self.y + (style.lead - style.size) * 0.5 + style.size * 0.2
            if i < len(label_lines):
                self.font(bold.font, bold.size)
                self.text(self.left, base, label_lines[i])
            if i < len(lines):
                self.font(style.font, style.size)
                self.text(self.left + label_width, base, lines[i])
        self.y -= after

    def box(self, title: str, items: Sequence[str], title_style: Style, style: Style, *,
            line_width: float = 2.5, padding: float = 10.0, bullet: str = "•",
            footer: str | None = None, footer_style: Style | None = None) -> None:
        """A bordered box with a bold title, bullet items and an optional footer line."""
        inner = self.text_width - 2 * padding
        title_lines = self.wrap(title, title_style.font, title_style.size, inner)
        item_lines = [self.wrap(item, style.font, style.size, inner - 18) for item in items]
        fstyle = footer_style or style
        footer_lines = self.wrap(footer, fstyle.font, fstyle.size, inner) if footer else []
        height = (
            2 * padding
            + title_style.lead * len(title_lines)
            + sum(style.lead * len(lines) + 2 for lines in item_lines)
            + (fstyle.lead * len(footer_lines) + 6 if footer_lines else 0)
        )
        self.need(height + 4)
        top = self.y
        c = self.canvas
        c.setLineWidth(line_width)
        c.rect(self.left, top - height, self.text_width, height, stroke=1, fill=0)
        self.y = top - padding
        x = self.left + padding
        self.lines(title_lines, title_style, x=x)
        for lines in item_lines:
            first = self.y
            self.lines(lines, style, x=x + 18)
            self.font(style.font, style.size)
            self.text(x + 4, first - style.lead + (style.lead - style.size) * 0.5
                         + style.size * 0.2, bullet)
            self.y -= 2
        if footer_lines:
            self.y -= 6
            self.lines(footer_lines, fstyle, x=x)
        self.y = top - height - 8

    def table(
        self,
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        style: Style,
        header_style: Style,
        *,
        header: bool = True,
        padding: float = 4.0,
        line_width: float = 0.8,
        min_row_height: float = 0.0,
    ) -> None:
        """A grid table; cells wrap; the header row repeats on each new page."""
        scale = self.text_width / sum(widths)
        widths = [w * scale for w in widths]
        c = self.canvas

        def layout(row, st):
            cells = [self.wrap(cell, st.font, st.size, w - 2 * padding) for cell, w in zip(row, widths)]
            h = max(len(cell) for cell in cells) * st.lead + 2 * padding
            return cells, max(h, min_row_height)

        def draw(cells, h, st):
            top = self.y
            x = self.left
            c.setLineWidth(line_width)
            for cell, w in zip(cells, widths):
                c.rect(x, top - h, w, h, stroke=1, fill=0)
                self.font(st.font, st.size)
                ty = top - padding
                for line in cell:
                    ty -= st.lead
                    self.text(x + padding, ty + (st.lead - st.size) * 0.5 + st.size * 0.2,
                                 line)
                x += w
            self.y = top - h

        head = layout(rows[0], header_style) if header else None
        body = rows[1:] if header else rows
        first = True
        for row in body:
            cells, h = layout(row, style)
            extra = head[1] if head and first else 0
            if self.y - h - extra < self.bottom_y:
                self.new_page()
                first = True
            if head and (first or self.y == self.top_y):
                draw(*head, header_style)
                first = False
            draw(cells, h, style)
        if head and first:  # header only, no rows
            self.need(head[1])
            draw(*head, header_style)
        self.y -= 6

    def rule(self, width: float = 1.0, after: float = 6.0) -> None:
        self.canvas.setLineWidth(width)
        self.canvas.line(self.left, self.y, self.right, self.y)
        self.y -= after


def draft_watermark(flow: Flow, text: str = "DRAFT") -> None:
    """A light diagonal watermark behind the page content (handouts only, never faxed)."""
    c = flow.canvas
    c.saveState()
    c.setFillGray(0.85)
    c.setFont(BOLD, 110)
    c.translate(flow.width / 2, flow.height / 2)
    c.rotate(45)
    c.drawCentredString(0, -40, text)
    c.restoreState()
