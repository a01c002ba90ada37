"""Every error leaves as ``{"error": {"code", "message", ...}}`` with a fitting status.

- A `FaktryError` leaves with its own stable code and status.
- A dependency that is away (PostgreSQL, Redis) leaves as ``503 service_unavailable`` with
  ``Retry-After``, and is counted in ``faktry_dependency_errors_total{process="web"}``. The
  request may be sent again after that time: nothing it did was kept (work that follows a
  commit never raises, see `best_effort`).
- Anything else that fails on the server leaves as ``500 internal_error``, werkzeug's own
  500 included, with the traceback in the log.

A person's browser asking for a page gets the error page with the same status instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from flask import Flask, jsonify, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from faktry import db
from faktry.errors import FaktryError
from web import headers, services

log = logging.getLogger("faktry.web")

#: What a 503 asks the client to wait: long enough for a pool to reconnect or a replica to
#: take over, short enough that a retrying client is not held up once it has.
RETRY_AFTER_SECONDS = 5

_REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError)
_DATABASE_MODULES = ("psycopg", "sqlalchemy", "sqlite3")


def dependency_of(err: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when ``err`` says that dependency cannot be reached
    (the request may succeed when sent again), else None."""
    # A pool with no connection free in time is a database that cannot take more just now.
    if db.is_unavailable(err) or isinstance(err, sa_exc.TimeoutError):
        return "database"
    if isinstance(err, _REDIS_AWAY):
        return "redis"
    if isinstance(err, (ConnectionError, TimeoutError)):
        # A socket error that leaked past its client's wrapping. The database drivers wrap
        # theirs, so this is almost always Redis; the traceback tells when it is not.
        tb = err.__traceback__
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
                return "database"
            tb = tb.tb_next
        return "redis"
    return None


def count_dependency_error(dependency: str) -> None:
    """Count one failed call to ``dependency``; never raises (Redis may be what failed)."""
    try:
        services().metrics.dependency_error("web", dependency)
    except Exception:
        log.debug("could not count a %s error", dependency, exc_info=True)


@contextmanager
def best_effort(what: str, *args: Any) -> Iterator[None]:
    """Run work the answer does not depend on; a failure is logged, never raised.

    For what follows a commit (counting, dispatching, deleting stored bytes): the request
    has succeeded and must say so, or a client would send it again. A dependency that is
    away is a warning and is counted; any other failure is logged with its traceback.
    ``what`` (with ``args``, in the logging style) says what was left undone."""
    try:
        yield
    except Exception as err:
        dependency = dependency_of(err)
        if dependency is None:
            log.exception(what, *args)
            return
        count_dependency_error(dependency)
        log.warning(what + " (%s is unavailable: %s)", *args, dependency, _summary(err))


@contextmanager
def without(dependency: str, what: str, *args: Any) -> Iterator[None]:
    """Go on without ``dependency`` when it is away: the block is skipped from the failing
    call on, with a warning (``what`` says what was skipped) and a count. Any other error
    propagates. For fast paths that have a fallback, such as Redis's queue positions."""
    try:
        yield
    except Exception as err:
        if dependency_of(err) != dependency:
            raise
        count_dependency_error(dependency)
        log.warning(what + " (%s is unavailable: %s)", *args, dependency, _summary(err))


def _summary(err: BaseException) -> str:
    # SQLAlchemy's messages run over several lines and end in a link; the first says it all.
    text = str(getattr(err, "orig", None) or err).strip()
    return f"{err.__class__.__name__}: {text.splitlines()[0] if text else ''}"


def error_response(status: int, code: str, message: str, **extra: Any) -> Any:
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def _wants_page() -> bool:
    """A person's browser asking for a page (not the API) gets an HTML error page."""
    path = request.path
    return (
        not path.startswith(("/v1/", "/metrics", "/healthz", "/static/"))
        and request.accept_mimetypes.accept_html
        and request.accept_mimetypes["text/html"] >= request.accept_mimetypes["application/json"]
    )


def _page(status: int, title: str, message: str) -> Any:
    from web.pages import render

    return render("error.html", title=title, message=message), status


def _unavailable() -> Any:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _wants_page():
        message = "faktry is briefly unavailable. Please try again in a few seconds."
        return (*_page(503, "Briefly unavailable", message), headers)
    response = error_response(
        503,
        "service_unavailable",
        f"faktry is briefly unavailable; send the request again in {RETRY_AFTER_SECONDS} seconds",
    )
    response.headers.update(headers)
    return response


def _server_error(err: BaseException) -> Any:
    dependency = dependency_of(err)
    if dependency is not None:
        count_dependency_error(dependency)
        log.warning(
            "%s %s answered 503: %s is unavailable (%s)",
            request.method, request.path, dependency, _summary(err),
        )  # fmt: skip
        return _unavailable()
    log.error("unhandled error", exc_info=err)
    if _wants_page():
        message = "Something went wrong on our side. Please try again in a moment."
        return _page(500, "Something went wrong", message)
    return error_response(500, "internal_error", "an unexpected error occurred")


def register(app: Flask) -> None:
    headers.register(app)  # errors are answers too: they carry the same headers

    @app.errorhandler(FaktryError)
    def _faktry(err: FaktryError) -> Any:
        response = error_response(err.status, **err.to_dict())
        response.headers.update(getattr(err, "headers", {}))
        if err.status == 503:
            response.headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
        return response

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        if err.code is not None and err.code >= 500:
            if isinstance(err, ServiceUnavailable):
                return _unavailable()
            # Flask wraps what fails outside a view (an after-request hook) in werkzeug's
            # InternalServerError; judge the error itself.
            return _server_error(getattr(err, "original_exception", None) or err)
        if _wants_page():
            return _page(err.code or 500, err.name, err.description or err.name)
        code = (err.name or "error").lower().replace(" ", "_")
        if err.code == 413:
            code = "payload_too_large"
        response = error_response(err.code or 500, code, err.description or err.name)
        if err.code == 405 and err.response is None:
            allowed = getattr(err, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Any:
        return _server_error(err)
