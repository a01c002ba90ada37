"""``/v1/invitations``: invite someone by email to join the account (pipelines/invitations.py).

Inviting, listing and revoking need ``members:read``/``members:write``. Accepting
(``POST /v1/invitations/accept``) needs no credentials: the token from the mail is the proof;
it creates the person with a password of their own and logs them in (like a log-in: a
session cookie and a CSRF token). The invitation's link goes by mail
(`pipelines.mail.notices.invitation`); an account whose owner has not verified their address
cannot invite (``403 email_unverified``). The owners hear of each person who joins.
"""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from faktry.errors import ValidationError
from faktry.tenancy import User, check_password, hash_secret, refuse_if_unverified
from pipelines import invitations
from pipelines.audit import log as audit
from pipelines.mail import notices
from web import services
from web.api import blueprint
from web.auth import authenticated, begin_session, db, principal
from web.bodies import json_object


@blueprint.post("/invitations")
@authenticated
def invite() -> Any:
    who = principal()
    body = json_object(allowed={"email", "role"})
    sess = db()
    refuse_if_unverified(sess, who.tenant_id)  # an account proves it can be reached first
    row, token = invitations.invite(
        sess, who, body.get("email"), body.get("role"), days=services().settings.invitation_days
    )
    audit.record(sess, who.tenant_id, "member_invited", who=who, target=row.id, address=request.remote_addr,
                 data={"email": row.email, "role": row.role})  # fmt: skip
    inviter = sess.scalar(select(User.email).where(User.id == who.user_id)) or "An owner"
    notices.invitation(
        sess, notices.Links.from_settings(services().settings), to=row.email, tenant_id=who.tenant_id,
        inviter=inviter, role=row.role, token=token, expires=f"{row.expires_at:%Y-%m-%d %H:%M} UTC",
    )  # fmt: skip
    answer = invitations.to_dict(row)
    sess.commit()
    return answer, 201, {"Location": f"/v1/invitations/{row.id}"}


@blueprint.get("/invitations")
@authenticated
def list_invitations() -> Any:
    rows = invitations.listing(db(), principal().tenant_id)
    return {"object": "list", "data": [invitations.to_dict(r) for r in rows]}


@blueprint.delete("/invitations/<invitation_id>")
@authenticated
def revoke_invitation(invitation_id: str) -> Any:
    who = principal()
    sess = db()
    row = invitations.revoke(sess, who, invitation_id)
    audit.record(sess, who.tenant_id, "invitation_revoked", who=who, target=row.id,
                 address=request.remote_addr, data={"email": row.email})  # fmt: skip
    answer = invitations.to_dict(row)
    sess.commit()
    return answer


@blueprint.post("/invitations/accept")
def accept_invitation() -> Any:
    body = json_object(allowed={"token", "password", "confirm_age_16"})
    if body.get("confirm_age_16") is not True:
        raise ValidationError(
            "faktry accepts people aged 16 or older: confirm it with confirm_age_16",
            field="confirm_age_16",
            code="age_confirmation_required",
        )
    password = check_password(body.get("password"))
    sess = db()
    invitations.by_token(sess, body.get("token"), lock=False)  # refused before a bcrypt is spent
    sess.commit()
    password_hash = hash_secret(password, rounds=services().settings.bcrypt_rounds)
    user = invitations.accept(sess, body.get("token"), password_hash)
    answer = begin_session(sess, user)
    audit.record(sess, user.tenant_id, "member_joined", user=user, target=user.id,
                 address=request.remote_addr, data={"email": user.email, "role": user.role})  # fmt: skip
    notices.security_notice(
        sess, notices.Links.from_settings(services().settings), user.tenant_id,
        "a member joined", f"{user.email} accepted an invitation and joined as {user.role}.",
    )  # fmt: skip
    sess.commit()
    return answer, 201
