"""Which refflow user an OpenID Connect sign-in is (single sign-on for staff).

No account is made here: an administrator creates the staff user first
(``refflow user add``), with the email the provider knows them by. The first
sign-in through the provider links that user to the provider's account
(``User.oidc_subject`` = ``"<issuer> <subject>"``); from then on the link
decides, whatever the email at the provider becomes. An email is only believed
when the provider says it is verified (``email_verified``).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from refflow.db.models import User

STAFF_ROLES = ("staff", "admin")


class SignOnRefused(Exception):
    """This sign-in opens no refflow session; ``code`` goes on the audit trail
    (no email or name), ``str(exc)`` is shown to the person signing in."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def signed_on_user(session: Session, issuer: str, subject: str, email: str | None,
                   email_verified: bool) -> User:
    """The active staff user this provider account signs in as, linked on first
    use; ``SignOnRefused`` when there is none."""
    if not issuer or not subject:
        raise SignOnRefused("no_subject", "The sign-in provider did not say who you are.")
    link = f"{issuer} {subject}"
    user = session.scalar(select(User).where(User.oidc_subject == link))
    if user is None:
        if not email or email_verified is not True:
            raise SignOnRefused("email_unverified",
                                "The sign-in provider did not give a verified email "
                                "address for you, so refflow cannot tell which user you are.")
        user = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is None:
            raise SignOnRefused("unknown_email",
                                f"There is no refflow user with the email {email}. "
                                "Ask a refflow administrator to add you.")
        if user.oidc_subject is not None:
            raise SignOnRefused("linked_elsewhere",
                                "This refflow user signs in with another account of the "
                                "sign-in provider. Ask a refflow administrator.")
    if not user.active:
        raise SignOnRefused("disabled", "This refflow user is disabled. Ask a refflow "
                                        "administrator.")
    if user.role not in STAFF_ROLES:
        raise SignOnRefused("not_staff", "Single sign-on is for clinic staff. Referring "
                                         "offices sign in with their email and password.")
    user.oidc_subject = link
    return user
