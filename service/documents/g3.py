"""Group 3 (ITU-T T.4, 1-D) coding of a fax page, by Pillow's public API.

A page comes in as a mode "1" image whose *set* pixels are black ink and
goes out as the one coded strip of a TIFF Class F page, with the two coding
tags the container must repeat (FillOrder and T4Options).

Pillow's TIFF writer codes a mode "1" image through libtiff and labels it
min-is-black; libtiff's T.4 coder codes 0 bits as white runs and 1 bits as
black runs whatever the label says, so with set bits meaning ink the coded
strip is exactly a min-is-white fax page. We keep only that strip (the
container is written by ``fax``).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image

T4_FILL_BITS = 4  # T4Options bit 2: fill bits before EOL (byte-aligned EOLs)


@dataclass(frozen=True)
class G3Strip:
    width: int
    rows: int
    data: bytes
    fill_order: int
    t4_options: int


def encode_g3(page: Image.Image) -> G3Strip:
    """Group 3 code a mode "1" page (set pixels = black) into one strip."""
    if page.mode != "1":
        raise ValueError("a fax page is a mode '1' image")
    width, rows = page.size
    out = io.BytesIO()
    page.save(out, "TIFF", compression="group3", tiffinfo={278: rows, 292: T4_FILL_BITS})
    return _strip_of(out.getvalue(), width, rows)


# -- the strip inside the TIFF Pillow wrote --------------------------------------------
def _strip_of(tiff: bytes, width: int, rows: int) -> G3Strip:
    """The one coded strip of a single-page TIFF, with its coding tags."""
    tags = _read_first_ifd(tiff)
    offsets, counts = tags[273], tags[279]
    if len(offsets) != 1:
        raise RuntimeError("the G3 coder wrote more than one strip")
    if tags[256][0] != width or tags[257][0] != rows or tags[259][0] != 3:
        raise RuntimeError("the G3 coder wrote an unexpected page")
    data = tiff[offsets[0]: offsets[0] + counts[0]]
    return G3Strip(width, rows, data, tags.get(266, (1,))[0], tags.get(292, (0,))[0])


_TYPES = {1: ("B", 1), 2: ("s", 1), 3: ("H", 2), 4: ("I", 4), 5: ("II", 8), 16: ("Q", 8)}


def _read_first_ifd(tiff: bytes) -> dict[int, tuple]:
    """The first IFD of a little-endian TIFF as {tag: values} (small parser)."""
    if tiff[:4] != b"II*\x00":
        raise ValueError("expected a little-endian TIFF")
    (ifd,) = struct.unpack_from("<I", tiff, 4)
    (count,) = struct.unpack_from("<H", tiff, ifd)
    tags: dict[int, tuple] = {}
    for i in range(count):
        tag, typ, n, value = struct.unpack_from("<HHI4s", tiff, ifd + 2 + 12 * i)
        code, size = _TYPES.get(typ, ("B", 1))
        if typ == 2:
            continue
        total = size * n
        raw = value if total <= 4 else tiff[struct.unpack("<I", value)[0]:][:total]
        fmt = "<" + code * n if typ != 5 else "<" + "I" * (2 * n)
        tags[tag] = struct.unpack(fmt, raw[:total])
    return tags
