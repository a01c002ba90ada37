"""``/v1/session`` and ``/v1/sessions``: log in with email and password for a session
cookie; log out this browser, or every browser the person is logged in on.

The login answer carries the CSRF token that cookie-authenticated writes must send back
in ``X-CSRF-Token``. The web pages use this same API. Sessions are kept in the database
(see `web.auth`): logging out ends a session in every copy of its cookie.
"""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from faktry.db import transaction
from faktry.errors import RateLimited, Unauthorized, ValidationError
from faktry.tenancy import User, authenticate_password, dummy_hash, end_user_sessions
from pipelines.audit import log as audit
from quotas.ratelimit import retry_after_header
from web import services
from web.api import blueprint
from web.auth import authenticated, begin_session, csrf_token, db, end_session, principal
from web.bodies import json_object


@blueprint.record_once
def _make_the_dummy_hash(state: Any) -> None:
    # Made at start, so that not even the first log-in of a process with an unknown email
    # takes longer than one with a known one (see `faktry.tenancy.authenticate_password`).
    dummy_hash(state.app.extensions["faktry"].settings.bcrypt_rounds)


@blueprint.post("/session")
def login() -> Any:
    body = json_object(allowed=("email", "password"))
    if not isinstance(body.get("email"), str) or not isinstance(body.get("password"), str):
        raise ValidationError("send email and password", field="email")
    throttle_login(body["email"])
    sess = db()
    try:
        user = authenticate_password(
            sess,
            body["email"],
            body["password"],
            bcrypt_rounds=services().settings.bcrypt_rounds,
            before_hashing=sess.commit,
        )
    except Unauthorized:
        _failed_login(body["email"])
        raise
    answer = begin_session(sess, user)
    audit.record(sess, user.tenant_id, "login", user=user, address=request.remote_addr)
    sess.commit()
    return answer, 201


def _failed_login(email: str) -> None:
    """A failed log-in with an account's address goes to that account's audit log (in a
    transaction of its own: the request's is rolled back). An unknown address leaves none."""
    with transaction(services().sessions) as own:
        user = own.scalars(select(User).where(User.email == email.strip().lower())).first()
        if user is not None:
            audit.record(own, user.tenant_id, "login_failed", address=request.remote_addr,
                         data={"email": user.email})  # fmt: skip


def throttle_login(email: str) -> None:
    """At most 10 password attempts a minute per account and 30 per address: 429 beyond.
    Log-ins and password changes count alike.

    The throttle protects passwords, so it never fails open: while Redis is away the
    limiter's error propagates and the request answers 503 (see `web.errors`)."""
    limiter = services().ratelimiter
    for key, per_minute in ((f"login:{email.strip().lower()}", 10), (f"login-ip:{request.remote_addr}", 30)):
        wait = limiter.hit(key, per_minute=per_minute)
        if wait is not None:
            raise RateLimited("too many log-in attempts; wait a moment", retry_after=retry_after_header(wait))


@blueprint.get("/session")
@authenticated
def current_session() -> Any:
    who = principal()
    user = db().get(User, who.user_id) if who.user_id else None
    return {
        "object": "session",
        "user_id": who.user_id,
        "tenant_id": who.tenant_id,
        # Null for an API key without a person; false until the verification mail's link is followed.
        "email_verified": None if user is None else user.email_verified_at is not None,
        # An API key has no session and needs no CSRF token: do not start a session for it.
        "csrf_token": csrf_token() if who.via == "session" else None,
    }


@blueprint.delete("/session")
@authenticated
def logout() -> Any:
    """End this session: the cookie stops working, in this browser and wherever it was copied."""
    sess = db()
    end_session(sess)
    sess.commit()
    return "", 204


@blueprint.delete("/sessions")
@authenticated
def logout_everywhere() -> Any:
    """End every session of the person, this one included (with an API key: every session of
    the key's person; the key itself keeps working)."""
    who = principal()
    sess = db()
    if who.user_id is not None:
        end_user_sessions(sess, who.user_id)
        audit.record(sess, who.tenant_id, "sessions_ended", who=who, address=request.remote_addr)
    if who.via == "session":
        end_session(sess)
    sess.commit()
    return "", 204
