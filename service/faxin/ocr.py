"""Tesseract through tesserocr: a page's text, and the text of one field.

Tesseract's engine (``PyTessBaseAPI``) loads its language model when it is
made, about 60 ms, so each thread keeps one engine per language-data folder
and reuses it for every page and field it reads (a field costs a few
milliseconds; a new engine for each would cost more than the reading).
tesserocr releases the GIL while Tesseract works, and one engine must not be
used by two threads at once: hence one per thread.

The language data is Debian's (``tesseract-ocr-eng``), found by
``/usr/share/tesseract-ocr/*/tessdata`` unless a folder is given (the
``tessdata_dir`` setting).
"""

from __future__ import annotations

import glob
import os
import threading
from dataclasses import dataclass

from PIL import Image
from tesserocr import OEM, PSM, RIL, PyTessBaseAPI, iterate_level

TESSDATA_GLOB = "/usr/share/tesseract-ocr/*/tessdata"
LANGUAGE = "eng"

# Page segmentation modes by what an image holds.
PAGE = PSM.AUTO  # a whole page: blocks, columns, lines
LINE = PSM.SINGLE_LINE  # one line of a field
WORD = PSM.SINGLE_WORD  # one word (or one character on its own)
CHARACTER = PSM.SINGLE_CHAR  # one comb cell

_local = threading.local()


class OcrUnavailable(RuntimeError):
    """Tesseract's language data cannot be found or loaded."""


def tessdata_path(tessdata_dir: str | None = None) -> str:
    """The folder holding ``eng.traineddata``: ``tessdata_dir`` if given, else Debian's."""
    if tessdata_dir:
        candidates = [tessdata_dir]
    else:
        candidates = sorted(glob.glob(TESSDATA_GLOB), reverse=True)  # the newest version first
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, f"{LANGUAGE}.traineddata")):
            return folder
    raise OcrUnavailable("Tesseract's English language data was not found (install the "
                         "Debian package tesseract-ocr-eng or set tessdata_dir)")


def engine(tessdata_dir: str | None = None) -> PyTessBaseAPI:
    """This thread's Tesseract engine for that language data (made on first use)."""
    path = tessdata_path(tessdata_dir)
    engines = getattr(_local, "engines", None)
    if engines is None:
        engines = _local.engines = {}
    api = engines.get(path)
    if api is None:
        try:
            api = PyTessBaseAPI(path=path + os.sep, lang=LANGUAGE, psm=PAGE, oem=OEM.LSTM_ONLY)
        except RuntimeError as exc:
            raise OcrUnavailable(f"Tesseract could not load its language data ({exc})") from None
        engines[path] = api
    return api


@dataclass(frozen=True)
class Symbol:
    text: str
    confidence: float  # 0..1
    left: int  # pixels in the image read
    right: int


@dataclass(frozen=True)
class Text:
    text: str
    confidence: float  # mean word confidence 0..1 (0 when nothing was found)
    symbols: tuple[Symbol, ...] = ()

    @property
    def lowest(self) -> float:
        """The least sure character's confidence (0 when nothing was found)."""
        return min((s.confidence for s in self.symbols), default=0.0)


def page_text(image: Image.Image, *, tessdata_dir: str | None = None) -> Text:
    """A page's text and its mean word confidence."""
    api = engine(tessdata_dir)
    _prepare(api, image, PAGE, "")
    text = api.GetUTF8Text()
    words = [c for c in api.AllWordConfidences() if c >= 0]
    api.Clear()
    return Text(_tidy(text), round(sum(words) / len(words) / 100, 3) if words else 0.0)


def field_text(image: Image.Image, *, whitelist: str = "", psm: int = LINE,
               tessdata_dir: str | None = None) -> Text:
    """The text of one field's image (a line, or one character with ``CHARACTER``),
    only ever characters of ``whitelist`` (all when empty), with each character's
    confidence and place."""
    api = engine(tessdata_dir)
    _prepare(api, image, psm, whitelist)
    api.Recognize()
    symbols = []
    iterator = api.GetIterator()
    for item in iterate_level(iterator, RIL.SYMBOL) if iterator is not None else ():
        if item.Empty(RIL.SYMBOL):
            continue
        char = item.GetUTF8Text(RIL.SYMBOL)
        box = item.BoundingBox(RIL.SYMBOL)
        if not char or box is None:
            continue
        symbols.append(Symbol(char, max(0.0, item.Confidence(RIL.SYMBOL)) / 100, box[0], box[2]))
    text = api.GetUTF8Text()
    words = [c for c in api.AllWordConfidences() if c >= 0]
    api.Clear()
    return Text(" ".join(text.split()), round(sum(words) / len(words) / 100, 3) if words else 0.0,
                tuple(symbols))


def _prepare(api: PyTessBaseAPI, image: Image.Image, psm: int, whitelist: str) -> None:
    api.SetPageSegMode(psm)
    api.SetVariable("tessedit_char_whitelist", whitelist)
    api.SetImage(image)
    dpi = image.info.get("dpi")
    api.SetSourceResolution(int(dpi[0]) if dpi and dpi[0] else 300)


def _tidy(text: str) -> str:
    """Tesseract's text with trailing spaces and runs of empty lines removed."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
