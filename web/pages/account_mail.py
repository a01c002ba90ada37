"""The pages the account mails link to: ``/verify-email?token=…`` (confirms the address),
``/password-reset`` (ask for a reset link) and ``/password-reset/confirm?token=…`` (choose
a new password). Each is a form over the same ``/v1`` API as every client
(web/api/email.py); the token stays in the page and is sent in a POST body, never in a
request the browser makes by itself (a mail scanner that fetches the link spends nothing).
"""

from __future__ import annotations

from typing import Any

from flask import request

from web.pages import blueprint, render


def _token() -> str:
    token = request.args.get("token", "")
    return token if len(token) <= 200 else ""


@blueprint.get("/verify-email")
def verify_email() -> Any:
    return render("verify_email.html", title="Confirm your email address", token=_token())


@blueprint.get("/password-reset")
def password_reset() -> Any:
    return render("password_reset.html", title="Reset your password")


@blueprint.get("/password-reset/confirm")
def password_reset_confirm() -> Any:
    return render("password_reset_confirm.html", title="Choose a new password", token=_token())
