"""``/v1/session``: log in with email and password for a session cookie, log out.

The login answer carries the CSRF token that cookie-authenticated writes must send back
in ``X-CSRF-Token``. The web pages use this same API.
"""

from __future__ import annotations

from typing import Any

from flask import request, session

from faktry.errors import RateLimited, ValidationError
from faktry.tenancy import User, authenticate_password
from quotas.ratelimit import retry_after_header
from web import services
from web.api import blueprint
from web.auth import authenticated, csrf_token, db, principal


@blueprint.post("/session")
def login() -> Any:
    body = request.get_json(silent=True)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("email"), str)
        or not isinstance(body.get("password"), str)
    ):
        raise ValidationError("send email and password", field="email")
    throttle_login(body["email"])
    sess = db()
    user = authenticate_password(sess, body["email"], body["password"], before_hashing=sess.commit)
    sess.commit()
    return start_session(user), 201


def throttle_login(email: str) -> None:
    """At most 10 log-in attempts a minute per account and 30 per address: 429 beyond.

    The throttle protects passwords, so it never fails open: while Redis is away the
    limiter's error propagates and the request answers 503 (see `web.errors`)."""
    limiter = services().ratelimiter
    for key, per_minute in ((f"login:{email.strip().lower()}", 10), (f"login-ip:{request.remote_addr}", 30)):
        wait = limiter.hit(key, per_minute=per_minute)
        if wait is not None:
            raise RateLimited("too many log-in attempts; wait a moment", retry_after=retry_after_header(wait))


def start_session(user: User) -> dict[str, Any]:
    session.clear()
    session["user_id"] = user.id
    session["tenant_id"] = user.tenant_id
    return {"object": "session", "user_id": user.id, "tenant_id": user.tenant_id, "csrf_token": csrf_token()}


@blueprint.get("/session")
@authenticated
def current_session() -> Any:
    who = principal()
    return {
        "object": "session",
        "user_id": who.user_id,
        "tenant_id": who.tenant_id,
        # An API key has no session and needs no CSRF token: do not start a session for it.
        "csrf_token": csrf_token() if who.via == "session" else None,
    }


@blueprint.delete("/session")
@authenticated
def logout() -> Any:
    session.clear()
    return "", 204
