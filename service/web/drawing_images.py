"""An exercise's drawing (start -> end, ``documents.drawings``) as a PNG data
URI for a page: the patient's page and the staff editor's catalogue search.
The page's CSP allows data: images, so there is no second request and no URL.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from functools import lru_cache

from refflow.web import downloads

log = logging.getLogger("refflow.web")


def picture(drawing: object) -> str | None:
    """The drawing as a data URI, or ``None`` (no drawing, or one that cannot
    be drawn: the page shows the words alone)."""
    if not isinstance(drawing, Mapping):
        return None
    try:
        return _picture_of(json.dumps(dict(drawing), sort_keys=True))
    except Exception as exc:  # noqa: BLE001 - a drawing that fails leaves the words
        log.warning("an exercise drawing failed (%s)", type(exc).__name__)
        return None


@lru_cache(maxsize=256)
def _picture_of(drawing_json: str) -> str:
    from refflow.documents.drawings import drawing_pdf

    png = downloads.page_png(drawing_pdf(json.loads(drawing_json), caption=False), 1)
    return "data:image/png;base64," + base64.b64encode(png).decode()
