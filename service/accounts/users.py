"""People who sign in: staff, admins and practice users (argon2 password hashes).

``admin`` manages users, practices, API keys, webhooks and settings; ``staff``
works the queue; a ``practice`` user sees its own practice's referrals. The
account operations here (disable, enable, reset a password, change a role,
record an unlock) are the one implementation behind ``refflow user ...`` and
the staff Users page. Each writes the audit trail (ids, never an email) and
keeps at least one active admin.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from refflow.accounts.practices import AccountError, find_practice
from refflow.db.models import AuditEntry, User
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
                practice: str | None = None, actor: str | None = None) -> User:
    """A new user; with ``actor`` (who asked, e.g. ``"cli"``) it is audited."""
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
    if actor:
        _audit(session, actor, "user.add", user, None, f"role {role}")
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


# -- managing accounts ------------------------------------------------------------

def _audit(session: Session, actor: str, action: str, user: User, ip: str | None,
           detail: str = "") -> None:
    session.add(AuditEntry(actor=actor, action=action, ip=ip,
                           detail=f"user {user.id}" + (f"; {detail}" if detail else "")))


def list_users(session: Session) -> list[User]:
    """Everyone who can sign in, by email."""
    return list(session.scalars(select(User).order_by(func.lower(User.email))))


def find_user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise AccountError(f"no user with the email {email.strip()!r}")
    return user


def _keep_an_admin(session: Session, user: User, doing: str) -> None:
    """Refuse to take the last active admin away. The active admins' rows are
    locked (PostgreSQL) so two admins cannot each remove the other at once."""
    if user.role != "admin" or not user.active:
        return
    admins = session.scalars(select(User.id).where(User.role == "admin", User.active.is_(True))
                             .with_for_update()).all()
    if set(admins) <= {user.id}:
        raise AccountError(f"cannot {doing} the last active admin: make another user an "
                           "admin first")


def disable_user(session: Session, user: User, *, actor: str, ip: str | None = None) -> User:
    """The user can no longer sign in, and their open sessions end at once."""
    if user.active:
        _keep_an_admin(session, user, "disable")
        user.active = False
        user.session_epoch = (user.session_epoch or 0) + 1
        _audit(session, actor, "user.disable", user, ip)
    return user


def enable_user(session: Session, user: User, *, actor: str, ip: str | None = None) -> User:
    if not user.active:
        user.active = True
        _audit(session, actor, "user.enable", user, ip)
    return user


def reset_password(session: Session, user: User, *, actor: str, ip: str | None = None,
                   password: str | None = None) -> str:
    """Give the user a new password (``password``, or a generated one, which
    is returned to be shown once); their open sessions end."""
    password = password if password is not None else generate_password()
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    user.password_hash = _hasher.hash(password)
    user.session_epoch = (user.session_epoch or 0) + 1
    _audit(session, actor, "user.password_reset", user, ip)
    return password


def set_role(session: Session, user: User, role: str, *, actor: str, ip: str | None = None,
             practice: str | None = None) -> User:
    """Change what the user may do; a practice user needs its practice. It
    takes effect on the user's next request (the role is read every time)."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if role == "practice" and not practice:
        raise AccountError("a practice user needs --practice NAME")
    if role != "practice" and practice:
        raise AccountError("--practice is only for practice users")
    practice_id = find_practice(session, practice).id if practice else None
    if (role, practice_id) == (user.role, user.practice_id):
        return user
    if role != "admin":
        _keep_an_admin(session, user, "demote")
    old = user.role
    user.role, user.practice_id = role, practice_id
    _audit(session, actor, "user.role", user, ip, f"{old} -> {role}")
    return user


class SigninCounters(Protocol):
    """Where failed sign-ins are counted (``refflow.web.signin_throttle``)."""

    def clear_account(self, email: str) -> None: ...


def unlock_user(session: Session, user: User, counters: SigninCounters, *, actor: str,
                ip: str | None = None) -> None:
    """Forget the user's failed sign-ins: the growing delay ends now."""
    counters.clear_account(user.email)
    _audit(session, actor, "user.unlock", user, ip)
