"""A received fax as page images.

Fax images come as TIFF (Class F from a fax server: 204 x 98 dpi "normal" or
204 x 196 dpi "fine", bilevel) or as PDF from a provider. Readers and people
want square pixels, so every page is returned at 200 dpi-ish square pixels:
a normal-resolution page is stretched to twice its height, a PDF page is
rendered at 200 dpi.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

PDF = "application/pdf"
TIFF = "image/tiff"
RENDER_DPI = 200


class NotAFax(ValueError):
    """The bytes are neither a readable TIFF nor a PDF (the message names no content)."""


def content_type_of(data: bytes) -> str:
    """``image/tiff`` or ``application/pdf`` from the file's magic bytes, else :class:`NotAFax`."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if data[:5] == b"%PDF-":
        return PDF
    raise NotAFax("a received fax must be a TIFF or a PDF file")


def page_images(data: bytes, content_type: str | None = None) -> list[Image.Image]:
    """Every page as an 8-bit greyscale image with square pixels."""
    kind = content_type or content_type_of(data)
    if kind == PDF:
        return _pdf_pages(data)
    try:
        with Image.open(io.BytesIO(data)) as tiff:
            pages = []
            for index in range(getattr(tiff, "n_frames", 1)):
                tiff.seek(index)
                pages.append(_square(tiff))
            return pages
    except (UnidentifiedImageError, OSError, ValueError, EOFError):
        raise NotAFax("the fax image could not be read as a TIFF") from None


def page_count(data: bytes, content_type: str | None = None) -> int:
    kind = content_type or content_type_of(data)
    if kind == PDF:
        import pypdfium2

        try:
            pdf = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError:
            raise NotAFax("the fax document could not be read as a PDF") from None
        try:
            return len(pdf)
        finally:
            pdf.close()
    try:
        with Image.open(io.BytesIO(data)) as tiff:
            return getattr(tiff, "n_frames", 1)
    except (UnidentifiedImageError, OSError, ValueError):
        raise NotAFax("the fax image could not be read as a TIFF") from None


def png(image: Image.Image, *, width: int | None = None) -> bytes:
    """The page as PNG (optionally scaled to ``width`` pixels, keeping its shape)."""
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)),
                             Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _square(frame: Image.Image) -> Image.Image:
    """One TIFF page in greyscale with square pixels (its dpi as the file says)."""
    xdpi, ydpi = _dpi(frame)
    page = ImageOps.grayscale(frame.convert("L"))
    if xdpi and ydpi and abs(xdpi - ydpi) / xdpi > 0.2:
        page = page.resize((page.width, round(page.height * xdpi / ydpi)),
                           Image.Resampling.NEAREST)
    page.info["dpi"] = (xdpi or RENDER_DPI, xdpi or RENDER_DPI)
    return page


def _dpi(frame: Image.Image) -> tuple[float, float]:
    dpi = frame.info.get("dpi")
    if dpi and dpi[0] and dpi[1]:
        return float(dpi[0]), float(dpi[1])
    return 0.0, 0.0


def _pdf_pages(data: bytes) -> list[Image.Image]:
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        raise NotAFax("the fax document could not be read as a PDF") from None
    try:
        pages = []
        for page in pdf:
            image = page.render(scale=RENDER_DPI / 72, grayscale=True).to_pil().convert("L")
            image.info["dpi"] = (RENDER_DPI, RENDER_DPI)
            pages.append(image)
        return pages
    finally:
        pdf.close()
