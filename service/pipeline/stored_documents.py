"""A referral's rendered documents in the database (bytes and what staff and
channels need to know of them: type, hash, size, fax pages)."""

from __future__ import annotations

import hashlib
import io

from sqlalchemy import select

from refflow.db.models import Document
from refflow.documents.names import CONTENT_TYPES


def store_documents(session, referral_id: str, documents: dict[str, bytes]) -> None:
    """Add the documents, or replace the stored ones of the same name."""
    existing = {d.name: d for d in session.scalars(
        select(Document).where(Document.referral_id == referral_id))}
    for name, content in documents.items():
        doc = existing.get(name)
        if doc is None:
            doc = Document(referral_id=referral_id, name=name)
            session.add(doc)
        doc.content = content
        doc.content_type = CONTENT_TYPES.get(name, "application/octet-stream")
        doc.sha256 = hashlib.sha256(content).hexdigest()
        doc.size = len(content)
        doc.pages = tiff_pages(content) if name.endswith(".tiff") else None


def tiff_pages(content: bytes) -> int | None:
    """The pages of a TIFF file (``None`` if it is not one); no pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            return getattr(image, "n_frames", 1)
    except (UnidentifiedImageError, OSError):
        return None
