"""Every error leaves as ``{"error": {"code", "message", ...}}`` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from faktry.errors import FaktryError

log = logging.getLogger("faktry.web")


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


def register(app: Flask) -> None:
    @app.errorhandler(FaktryError)
    def _faktry(err: FaktryError) -> Any:
        response = error_response(err.status, **err.to_dict())
        response.headers.update(getattr(err, "headers", {}))
        return response

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        if _wants_page():
            from web.pages import render

            return render("error.html", title=err.name, message=err.description or err.name), err.code
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
        log.exception("unhandled error")
        if _wants_page():
            from web.pages import render

            message = "Something went wrong on our side. Please try again in a moment."
            return render("error.html", title="Something went wrong", message=message), 500
        return error_response(500, "internal_error", "an unexpected error occurred")
