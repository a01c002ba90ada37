"""Who is calling. A request authenticates with an API key (``Authorization: Bearer``)
or with the web session cookie; cookie-authenticated writes must carry the session's
CSRF token in ``X-CSRF-Token``. The request's database session is scoped to the
caller's tenant here, in one place, so views cannot forget to."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request, session

from faktry.db import read_only
from faktry.errors import Forbidden, Unauthorized
from faktry.tenancy import KeyChecker, Principal, User, authenticate_key, constant_time_equal

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def db() -> Any:
    """The request's session (scoped to the caller's tenant once authenticated)."""
    if "db" not in g:
        sessions = current_app.extensions["faktry"].sessions
        # A request that only reads takes no write lock on SQLite.
        g.db = read_only(sessions) if request.method in SAFE_METHODS else sessions()
    return g.db


def key_checker() -> KeyChecker:
    """This app's API key checker: its in-process key cache, its Redis, its secret key.
    Made on first use from what `create_app` built, then kept with the app."""
    extensions = current_app.extensions
    checker = extensions.get("faktry.key_checker")
    if checker is None:
        services = extensions["faktry"]
        made = KeyChecker.from_settings(services.settings, services.key_cache, services.redis)
        checker = extensions.setdefault("faktry.key_checker", made)
    return cast(KeyChecker, checker)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return str(token)


def session_user(sess: Any) -> User | None:
    """The person the session cookie names, or None (a stale session is cleared)."""
    user_id = session.get("user_id")
    if not user_id:
        return None
    user = sess.get(User, user_id)
    if user is None or user.tenant_id != session.get("tenant_id"):
        session.clear()
        return None
    return cast(User, user)


def _resolve() -> Principal:
    header = request.headers.get("Authorization")
    sess = db()
    if header is not None:
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("use 'Authorization: Bearer <API key>'", code="invalid_api_key")
        return authenticate_key(sess, presented.strip(), key_checker(), before_hashing=sess.commit)
    if session.get("user_id"):
        user = session_user(sess)
        if user is None:
            raise Unauthorized("your session has ended; log in again", code="session_expired")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent or not constant_time_equal(sent, str(session.get("csrf", ""))):
                raise Forbidden("missing or wrong X-CSRF-Token header", code="csrf_failed")
        return Principal(tenant_id=user.tenant_id, user_id=user.id, is_staff=user.is_staff, via="session")
    raise Unauthorized("authentication required: an API key or a session", code="unauthenticated")


def authenticated(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = _resolve()
        sess = db()
        # Last-used stamps and the like from authentication commit with the request.
        sess.info["tenant_id"] = principal.tenant_id
        g.principal = principal
        return view(*args, **kwargs)

    return cast(F, wrapper)


def principal() -> Principal:
    return cast(Principal, g.principal)
