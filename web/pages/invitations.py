"""``/invitations/accept?token=…``: the page an invitation's mail links to (no log-in)."""

from __future__ import annotations

from typing import Any

from flask import request

from faktry.errors import FaktryError
from pipelines import invitations
from web.auth import db
from web.pages import blueprint, render


@blueprint.get("/invitations/accept")
def accept_invitation() -> Any:
    token = request.args.get("token", "")
    try:
        row = invitations.by_token(db(), token, lock=False)
    except FaktryError as err:
        return render("invitation_accept.html", title="Invitation", problem=err.message), err.status
    return render("invitation_accept.html", title="Invitation", token=token, email=row.email, role=row.role)
