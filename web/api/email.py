"""``/v1/email`` and ``/v1/password-reset``: what the account mails' links lead to.

- ``POST /v1/email/verify {token}``: the link of the verification mail sent at sign-up;
  the person's address is verified (no session needed: the link may be opened anywhere).
- ``POST /v1/email/verification`` (logged in): send the verification mail again, at most
  once a minute per person.
- ``POST /v1/password-reset {email}``: always ``202`` with the same body, whether or not
  the address has an account (it is mailed a link only if it has); throttled per address
  and per client like sign-up.
- ``POST /v1/password-reset/confirm {token, new_password}``: the link's token works once;
  the password is set and every session of the person ends (they log in next).

A bad, used or expired token answers ``400 invalid_token``. The services are in
`pipelines.mail.notices`.
"""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.errors import RateLimited, ValidationError
from faktry.tenancy import User, check_password, hash_secret, normalize_email
from pipelines.mail import notices
from quotas.ratelimit import retry_after_header
from web import services
from web.api import blueprint
from web.auth import authenticated, db, principal
from web.bodies import json_object


def _throttle(*limits: tuple[str, int], what: str) -> None:
    """429 past any of ``(key, per minute)``; never fails open (Redis away: 503)."""
    limiter = services().ratelimiter
    for key, per_minute in limits:
        wait = limiter.hit(key, per_minute=per_minute)
        if wait is not None:
            raise RateLimited(f"too many {what}; wait a moment", retry_after=retry_after_header(wait))


def _links() -> notices.Links:
    return notices.Links.from_settings(services().settings)


def verification_to_dict(user: User) -> dict[str, Any]:
    return {
        "object": "email_verification",
        "email": user.email,
        "email_verified": user.email_verified_at is not None,
    }


@blueprint.post("/email/verify")
def verify_email() -> Any:
    token = json_object(allowed=("token",)).get("token")
    _throttle((f"verify-ip:{request.remote_addr}", 30), what="verification attempts")
    sess = db()
    user = notices.verify_email(sess, token)
    sess.commit()
    return verification_to_dict(user)


@blueprint.post("/email/verification")
@authenticated
def resend_verification() -> Any:
    who = principal()
    sess = db()
    user = sess.get(User, who.user_id) if who.user_id else None
    if user is None:
        raise ValidationError("this API key acts for no person", field="Authorization", code="no_user")
    if user.email_verified_at is not None:
        return verification_to_dict(user)
    _throttle((f"verify-mail:{user.id}", 1), what="verification mails")
    notices.send_verification(sess, _links(), user)
    sess.commit()
    return verification_to_dict(user), 202


@blueprint.post("/password-reset")
def request_password_reset() -> Any:
    email = json_object(allowed=("email",)).get("email")
    if not isinstance(email, str):
        raise ValidationError("a valid email address is required", field="email")
    email = normalize_email(email)
    # Per address and per client; the same for an address with or without an account.
    _throttle((f"reset:{email}", 3), (f"reset-ip:{request.remote_addr}", 10), what="password reset requests")
    sess = db()
    notices.request_password_reset(sess, _links(), email)
    sess.commit()
    return {"object": "password_reset", "email": email}, 202


@blueprint.post("/password-reset/confirm")
def confirm_password_reset() -> Any:
    body = json_object(allowed=("token", "new_password"))
    password = check_password(body.get("new_password"), field="new_password")
    _throttle((f"reset-confirm-ip:{request.remote_addr}", 10), what="password reset attempts")
    # Hashed before the transaction, which on SQLite holds the write lock.
    password_hash = hash_secret(password, rounds=services().settings.bcrypt_rounds)
    sess = db()
    links = _links()
    user = notices.reset_password(sess, body.get("token"), password_hash)
    notices.security_notice(sess, links, user.tenant_id, "the password was reset by an emailed link")
    sess.commit()
    return {"object": "password_reset", "email": user.email, "sessions_ended": True}
