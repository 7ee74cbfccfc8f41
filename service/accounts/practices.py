"""Referring practices and their API keys.

A key is ``rf_<prefix>_<secret>``: 256 random bits, shown once, stored as a
SHA-256 hash (a slow password hash buys nothing for random keys and would cost
every request). A practice may hold several keys; each can be revoked.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from refflow.db.models import ApiKey, Practice, utcnow
from refflow.intake.contact import normalize_email, normalize_fax
from refflow.intake.text import one_line


class AccountError(ValueError):
    """A practice or user cannot be created or found; the message says why."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_practice(session: Session, name: str, *, fax: str | None = None,
                    email: str | None = None) -> Practice:
    name = name.strip()
    if not name:
        raise AccountError("practice name is empty")
    try:
        one_line(name)
    except ValueError as exc:
        raise AccountError(f"practice name {exc}") from None
    if session.scalar(select(Practice.id).where(Practice.name == name)):
        raise AccountError(f"a practice named {name!r} exists already")
    try:
        fax = normalize_fax(fax) if fax else None
    except ValueError as exc:
        raise AccountError(f"--fax: {exc}") from None
    try:
        email = normalize_email(email) if email else None
    except ValueError as exc:
        raise AccountError(f"--email: {exc}") from None
    practice = Practice(name=name, fax=fax, email=email)
    session.add(practice)
    session.flush()
    return practice


def find_practice(session: Session, name_or_id: str) -> Practice:
    practice = session.scalar(
        select(Practice).where((Practice.name == name_or_id) | (Practice.id == name_or_id)))
    if practice is None:
        raise AccountError(f"no practice named {name_or_id!r}")
    return practice


def issue_key(session: Session, practice: Practice) -> tuple[ApiKey, str]:
    """Create a new API key; returns the row and the key itself (shown once)."""
    prefix = secrets.token_hex(4)
    key = f"rf_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(practice_id=practice.id, prefix=prefix, key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def revoke_key(session: Session, prefix: str) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise AccountError(f"no API key with prefix {prefix!r}")
    row.revoked_at = row.revoked_at or utcnow()
    return row
