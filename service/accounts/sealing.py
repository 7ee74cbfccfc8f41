"""Sealing: text kept encrypted with a key derived from the clinic's secret key
(``REFFLOW_SECRET_KEY``), with Fernet (AES-CBC with an HMAC; ``cryptography``).

Each use has its own purpose, so its own key: the dashboard's search text in the
session cookie (``"queue search"``), a webhook endpoint's signing secret in the
database (``"webhook secret"``). A new secret key opens nothing sealed with
the old one.
"""

from __future__ import annotations

import base64
import hashlib


class SealError(ValueError):
    """Sealed text that cannot be opened: tampered with, or sealed with another
    secret key or for another purpose."""


def _fernet(secret_key: str, purpose: str):
    from cryptography.fernet import Fernet

    digest = hashlib.sha256(f"refflow {purpose}\0".encode() + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, purpose: str, text: str) -> str:
    """``text`` encrypted and authenticated, as URL-safe ASCII."""
    return _fernet(secret_key, purpose).encrypt(text.encode()).decode()


def unseal(secret_key: str, purpose: str, sealed: str) -> str:
    """The text ``seal`` sealed; ``SealError`` if it cannot be opened."""
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(secret_key, purpose).decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        raise SealError("sealed with another key, or altered") from None
