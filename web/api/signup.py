"""``/v1/signup`` and ``/v1/profile``: accounts for people.

Signing up creates a tenant on the free tier with its owner, who must confirm being 16 or
older. It answers ``202`` with the same body whether or not the email had an account
already (nothing is created or changed then), and starts no session: the person logs in
next, as the sign-up page does at once. So a sign-up never tells whether an address is
registered, not even through a cookie; it also spends the same bcrypt either way. The mail
goes out after the answer, from the outbox: a new owner is sent a link that verifies the
address (needed before buying credits, see web/api/email.py); the owner of a taken address
is told that someone tried to sign up with it (at most once a minute), with links to log in
and to reset the password.

The profile holds the person's own details (first and last name, company, industry,
website, location, and a birthday: a ``YYYY-MM-DD`` date, not in the future, or null), all
optional: personal data lives only on the user, and goes with it when the account is deleted.
``POST /v1/profile/password`` changes the password and ends every other session of the person.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from flask import request

from faktry import clock
from faktry.errors import Forbidden, RateLimited, ValidationError
from faktry.tenancy import User, change_password, check_password, hash_secret, normalize_email, sign_up
from pipelines.audit import log as audit
from pipelines.mail import notices
from quotas import ledger
from quotas.models import MILLI
from quotas.ratelimit import retry_after_header
from web import services
from web.api import blueprint
from web.api.session import throttle_login
from web.auth import authenticated, begin_session, db, principal
from web.bodies import json_object

#: The profile's text fields and their longest length.
PROFILE_FIELDS = {
    "first_name": 100, "last_name": 100, "company": 200, "industry": 100, "website": 300, "location": 100,
}  # fmt: skip
#: The earliest birthday faktry takes (anything earlier is a typing slip).
EARLIEST_BIRTHDAY = date(1900, 1, 1)


@blueprint.post("/signup")
def signup() -> Any:
    body = json_object(allowed=("email", "password", "confirm_age_16"))
    if body.get("confirm_age_16") is not True:
        raise ValidationError(
            "faktry accepts people aged 16 or older: confirm it with confirm_age_16",
            field="confirm_age_16",
            code="age_confirmation_required",
        )
    password = check_password(body.get("password"))
    if not isinstance(body.get("email"), str):
        raise ValidationError("a valid email address is required", field="email")
    email = normalize_email(body["email"])
    # Never unthrottled: while Redis is away this raises and the sign-up answers 503.
    wait = services().ratelimiter.hit(f"signup-ip:{request.remote_addr}", per_minute=10)
    if wait is not None:
        raise RateLimited("too many sign-ups from this address", retry_after=retry_after_header(wait))
    settings = services().settings
    # Hashed first, whether or not the email is taken (the same bcrypt either way), and
    # before the transaction, which on SQLite holds the write lock.
    password_hash = hash_secret(password, rounds=settings.bcrypt_rounds)
    # At most one "someone tried to sign up with your address" mail a minute per address;
    # asked for whether or not the address is taken, so both answers take the same path.
    notice_allowed = services().ratelimiter.hit(f"signup-notice:{email}", per_minute=1) is None
    links = notices.Links.from_settings(settings)
    sess = db()
    user = sign_up(sess, email=email, password_hash=password_hash, tier="free")
    if user is None:
        if notice_allowed:
            notices.signup_attempt(sess, links, email)
    else:
        if settings.signup_credits > 0:
            ledger.add_credits(
                sess, user.tenant_id, settings.signup_credits * MILLI, source="starter",
                key=f"starter:{user.tenant_id}", memo="starter credits for a new account",
            )  # fmt: skip
        notices.send_verification(sess, links, user)
    sess.commit()
    return {"object": "signup", "email": email}, 202


def profile_to_dict(user: User) -> dict[str, Any]:
    return {
        "object": "profile",
        "email": user.email,
        **{name: getattr(user, name) for name in PROFILE_FIELDS},
        "birthday": user.birthday.isoformat() if user.birthday else None,
        "email_verified": user.email_verified_at is not None,
    }


def parse_birthday(value: Any) -> date | None:
    """A birthday as the profile takes it: ``YYYY-MM-DD``, from 1900 to today (today where it
    is latest on Earth, UTC+14, so nobody's own today is refused), or null or the empty string
    for none."""
    if value is None or value == "":
        return None
    problem = ValidationError(
        "birthday must be a date like 1990-04-30 (or null), not in the future", field="birthday"
    )
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise problem
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise problem from None
    if not EARLIEST_BIRTHDAY <= day <= (clock.now() + timedelta(hours=14)).date():
        raise problem
    return day


def _user() -> User:
    who = principal()
    user = db().get(User, who.user_id) if who.user_id else None
    if user is None:
        raise ValidationError("this API key acts for no person", field="Authorization", code="no_user")
    return user


@blueprint.get("/profile")
@authenticated
def get_profile() -> Any:
    return profile_to_dict(_user())


@blueprint.patch("/profile")
@authenticated
def update_profile() -> Any:
    body = json_object(allowed=[*PROFILE_FIELDS, "birthday"])
    user = _user()
    if "birthday" in body:
        user.birthday = parse_birthday(body.pop("birthday"))
    for name, value in body.items():
        if not isinstance(value, str) or len(value) > PROFILE_FIELDS[name] or not value.isprintable():
            raise ValidationError(
                f"{name} must be text of at most {PROFILE_FIELDS[name]} characters", field=name
            )
        if name == "website" and value and not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", value):
            raise ValidationError("website must be an http(s) URL", field=name)
        setattr(user, name, value.strip())
    db().commit()
    return profile_to_dict(user)


@blueprint.post("/profile/password")
@authenticated
def update_password() -> Any:
    """A new password, with the current one typed again; only from a web session. Every
    session of the person ends and this browser gets a new one (new cookie, new CSRF token),
    so a copy of any earlier cookie no longer works."""
    who = principal()
    if who.via != "session" or who.user_id is None:
        raise Forbidden("changing the password needs a web session, not an API key", code="session_required")
    body = json_object(allowed=("current_password", "new_password"))
    current = body.get("current_password")
    if not isinstance(current, str) or not current:
        raise ValidationError("type your current password", field="current_password")
    new = check_password(body.get("new_password"), field="new_password")
    user = _user()
    throttle_login(user.email)  # a guess at the current password is a guess at a password
    sess = db()
    user = change_password(
        sess, who.user_id, current, new, bcrypt_rounds=services().settings.bcrypt_rounds,
        before_hashing=sess.commit,
    )  # fmt: skip
    answer = begin_session(sess, user)
    audit.record(sess, user.tenant_id, "password_changed", who=who, address=request.remote_addr)
    sess.commit()
    return answer
