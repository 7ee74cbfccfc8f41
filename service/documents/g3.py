"""Group 3 (ITU-T T.4, 1-D) coding of fax pages, by libtiff.

A page comes in as packed rows — ``rows × width/8`` bytes, eight pixels a
byte, most significant bit first, a set bit black — and goes out as the one
coded strip of a TIFF Class F page, with the two coding tags the container
must repeat (FillOrder and T4Options).

libtiff is called directly through ctypes: ``TIFFWriteEncodedStrip`` codes the
whole page in one call, and ctypes releases the GIL for it, so pages are coded
on several cores at once (Pillow's libtiff encoder holds the GIL while it
codes). The library is the system's libtiff or, failing that, the copy that
Pillow's wheels ship. Where neither can be used, ``encode_g3_public`` —
Pillow's public API, about twice as slow and holding the GIL — does the same
job, and the tests check the two give the same strip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import io
import logging
import os
import struct
import sys
import tempfile
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

T4_FILL_BITS = 4  # T4Options bit 2: fill bits before EOL (byte-aligned EOLs)


@dataclass(frozen=True)
class G3Strip:
    width: int
    rows: int
    data: bytes
    fill_order: int
    t4_options: int


def encode_g3(packed: np.ndarray, width: int) -> G3Strip:
    """Group 3 code packed rows (set bits = black) into one strip.

    libtiff's T.4 coder codes 0 bits as white runs and 1 bits as black runs,
    so the strip is exactly a min-is-white fax page.
    """
    coder = _libtiff_coder()
    if coder is not None:
        return coder.encode(packed, width)
    return encode_g3_public(packed, width)


def encode_g3_public(packed: np.ndarray, width: int) -> G3Strip:
    """``encode_g3`` through Pillow's public API: a mode "1" image saved as TIFF.

    Pillow labels such an image min-is-black and passes the bits to libtiff
    untouched; we keep only the coded strip.
    """
    rows = packed.shape[0]
    bits = Image.frombytes("1", (width, rows), np.ascontiguousarray(packed).tobytes())
    out = io.BytesIO()
    bits.save(out, "TIFF", compression="group3", tiffinfo={278: rows, 292: T4_FILL_BITS})
    return _strip_of(out.getvalue(), width, rows)


# -- libtiff through ctypes ---------------------------------------------------------
# The tags libtiff needs to code one page, in the order libtiff wants them, with
# the C type each is passed as through TIFFSetField's variable arguments
# (uint16 values travel as int, uint32 values as uint32).
_U32, _INT = ctypes.c_uint32, ctypes.c_int


def _coder_tags(width: int, rows: int) -> list[tuple[int, object]]:
    return [(256, _U32(width)), (257, _U32(rows)), (258, _INT(1)), (259, _INT(3)),
            (262, _INT(0)), (266, _INT(1)), (277, _INT(1)), (278, _U32(rows)), (284, _INT(1)),
            (292, _U32(T4_FILL_BITS))]


class _LibTiffCoder:
    def __init__(self, lib: ctypes.CDLL):
        self.open = lib.TIFFFdOpen
        self.open.restype, self.open.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_char_p,
                                                                 ctypes.c_char_p]
        self.set_field = lib.TIFFSetField  # variadic: argument types given per call
        self.set_field.restype = ctypes.c_int
        self.write_strip = lib.TIFFWriteEncodedStrip
        self.write_strip.restype = ctypes.c_ssize_t
        self.write_strip.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p,
                                     ctypes.c_ssize_t]
        self.close = lib.TIFFClose
        self.close.restype, self.close.argtypes = None, [ctypes.c_void_p]

    def encode(self, packed: np.ndarray, width: int) -> G3Strip:
        rows, row_bytes = packed.shape
        if row_bytes * 8 != width:
            raise ValueError("packed rows do not match the width")
        packed = np.ascontiguousarray(packed)
        # libtiff writes a small single-page TIFF into an anonymous in-memory file.
        fd = _anonymous_file()
        try:
            tif = self.open(os.dup(fd), b"g3", b"wl")  # little-endian; TIFFClose closes the dup
            if not tif:
                raise OSError("libtiff could not open its output")
            try:
                for tag, value in _coder_tags(width, rows):
                    if self.set_field(ctypes.c_void_p(tif), _U32(tag), value) != 1:
                        raise OSError(f"libtiff refused tag {tag}")
                if self.write_strip(tif, 0, packed.ctypes.data, packed.nbytes) < 0:
                    raise OSError("libtiff could not code the page")
            finally:
                self.close(tif)
            tiff = os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
        return _strip_of(tiff, width, rows)


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("refflow-g3", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as handle:
        return os.dup(handle.fileno())


def _libtiff_paths() -> list[str]:
    paths = []
    system = ctypes.util.find_library("tiff")
    if system:
        paths.append(system)
    import PIL  # the libtiff Pillow's wheels bundle (manylinux, macOS)

    here = os.path.dirname(PIL.__file__)
    paths += sorted(glob.glob(os.path.join(here, os.pardir, "pillow.libs", "libtiff*.so*")))
    paths += sorted(glob.glob(os.path.join(here, ".dylibs", "libtiff*.dylib")))
    return paths


_coder: _LibTiffCoder | None = None
_coder_checked = False
_coder_lock = threading.Lock()


def _libtiff_coder() -> _LibTiffCoder | None:
    """The ctypes coder, once it has coded a test page exactly as Pillow does; else None."""
    global _coder, _coder_checked
    if _coder_checked:
        return _coder
    with _coder_lock:
        if not _coder_checked:
            _coder = _find_libtiff_coder()
            _coder_checked = True
    return _coder


def _find_libtiff_coder() -> _LibTiffCoder | None:
    if sys.platform != "linux":  # variadic calls through ctypes are only safe on this ABI
        return None
    probe = np.zeros((16, 216), np.uint8)
    probe[4:12, 10:40] = 0xFF
    probe[6, 100:101] = 0x5A
    expected = encode_g3_public(probe, 1728)
    for path in _libtiff_paths():
        try:
            coder = _LibTiffCoder(ctypes.CDLL(path))
            if coder.encode(probe, 1728) == expected:
                return coder
            log.warning("fax: libtiff at %s codes differently from Pillow; not used", path)
        except (OSError, AttributeError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("fax: libtiff at %s not usable (%s)", path, type(exc).__name__)
    log.warning("fax: no usable libtiff; coding pages through Pillow (slower)")
    return None


# -- the strip inside a TIFF libtiff wrote ---------------------------------------------
def _strip_of(tiff: bytes, width: int, rows: int) -> G3Strip:
    """The one coded strip of a single-page TIFF libtiff wrote, with its coding tags."""
    tags = _read_first_ifd(tiff)
    offsets, counts = tags[273], tags[279]
    if len(offsets) != 1:
        raise RuntimeError("libtiff wrote more than one strip")
    if tags[256][0] != width or tags[257][0] != rows or tags[259][0] != 3:
        raise RuntimeError("libtiff wrote an unexpected page")
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
