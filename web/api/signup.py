"""``/v1/signup`` and ``/v1/profile``: accounts for people.

Signing up creates a tenant on the free tier with its owner, who must confirm being 16 or
older, and starts a web session. The profile holds the person's own details (first and last
name, company, industry, website): personal data lives only on the user.
"""

from __future__ import annotations

import re
from typing import Any

from flask import request

from faktry.errors import RateLimited, ValidationError
from faktry.tenancy import User, check_password, create_tenant
from quotas import ledger
from quotas.models import MILLI
from quotas.ratelimit import retry_after_header
from web import services
from web.api import blueprint
from web.api.session import start_session
from web.auth import authenticated, db, principal

PROFILE_FIELDS = {"first_name": 100, "last_name": 100, "company": 200, "industry": 100, "website": 300}


@blueprint.post("/signup")
def signup() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("send email, password and confirm_age_16", field="body")
    if body.get("confirm_age_16") is not True:
        raise ValidationError(
            "faktry accepts people aged 16 or older: confirm it with confirm_age_16",
            field="confirm_age_16",
            code="age_confirmation_required",
        )
    password = check_password(body.get("password"))
    if not isinstance(body.get("email"), str):
        raise ValidationError("a valid email address is required", field="email")
    # Never unthrottled: while Redis is away this raises and the sign-up answers 503.
    wait = services().ratelimiter.hit(f"signup-ip:{request.remote_addr}", per_minute=10)
    if wait is not None:
        raise RateLimited("too many sign-ups from this address", retry_after=retry_after_header(wait))
    sess = db()
    _, user = create_tenant(
        sess,
        email=body["email"],
        tier="free",
        password=password,
        bcrypt_rounds=services().settings.bcrypt_rounds,
    )
    starter = services().settings.signup_credits
    if starter > 0:
        ledger.add_credits(
            sess, user.tenant_id, starter * MILLI, source="starter", key=f"starter:{user.tenant_id}",
            memo="starter credits for a new account",
        )  # fmt: skip
    sess.commit()
    return start_session(user), 201


def profile_to_dict(user: User) -> dict[str, Any]:
    return {
        "object": "profile",
        "email": user.email,
        **{name: getattr(user, name) for name in PROFILE_FIELDS},
    }


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
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("send the fields to change as a JSON object", field="body")
    unknown = sorted(set(body) - set(PROFILE_FIELDS))
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    user = _user()
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
