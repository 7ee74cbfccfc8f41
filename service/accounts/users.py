"""People who sign in: staff, admins and practice users (argon2 password hashes)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from refflow.accounts.practices import AccountError, find_practice
from refflow.db.models import User
from refflow.intake.contact import normalize_email

ROLES = ("staff", "admin", "practice")
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verifying against this keeps the time of a login for an unknown email the
# same as for a known one.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def create_user(session: Session, email: str, password: str, *, role: str,
                practice: str | None = None) -> User:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    try:
        email = normalize_email(email)
    except ValueError as exc:
        raise AccountError(f"email: {exc}") from None
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    if role == "practice" and not practice:
        raise AccountError("a practice user needs --practice NAME")
    if role != "practice" and practice:
        raise AccountError("--practice is only for practice users")
    if session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
        raise AccountError("a user with this email exists already")
    practice_id = find_practice(session, practice).id if practice else None
    user = User(email=email, password_hash=_hasher.hash(password), role=role,
                practice_id=practice_id)
    session.add(user)
    session.flush()
    return user


def verify_login(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None."""
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.active:
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def session_user(session: Session, cookie: dict) -> User | None:
    """The active user a signed session cookie belongs to, or None when the
    user is gone, deactivated, or signed out since the cookie was issued."""
    user_id = cookie.get("user_id")
    if not user_id:
        return None
    user = session.get(User, user_id)
    if user is None or not user.active or cookie.get("epoch", 0) != user.session_epoch:
        return None
    return user


def end_sessions(session: Session, user_id: str) -> None:
    """Sign the user out everywhere: cookies issued so far stop working."""
    user = session.get(User, user_id)
    if user is not None:
        user.session_epoch = (user.session_epoch or 0) + 1
