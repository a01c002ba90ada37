"""``/v1/members``: the account's people and their roles (pipelines/members.py)."""

from __future__ import annotations

from typing import Any

from flask import request

from faktry import permissions
from pipelines import members
from pipelines.audit import log as audit
from web.api import blueprint
from web.auth import authenticated, db, key_checker, principal
from web.bodies import json_object


@blueprint.get("/members")
@authenticated
def list_members() -> Any:
    who = principal()
    rows = members.list_members(db(), who.tenant_id)
    return {"object": "list", "data": [members.to_dict(u, you=who.user_id) for u in rows]}


@blueprint.patch("/members/<user_id>")
@authenticated
def change_role(user_id: str) -> Any:
    who = principal()
    body = json_object(allowed={"role"})
    sess = db()
    before = members.get(sess, who.tenant_id, user_id).role
    user = members.set_role(sess, who, user_id, body.get("role"))
    answer = members.to_dict(user, you=who.user_id)
    if user.role != before:
        change = {"email": user.email, "from": before, "to": user.role}
        audit.record(sess, who.tenant_id, "member_role_changed", who=who, target=user.id,
                     address=request.remote_addr, data=change)  # fmt: skip
    sess.commit()
    return answer


@blueprint.delete("/members/<user_id>")
@authenticated
def remove_member(user_id: str) -> Any:
    """Remove a person from the account, or leave it (your own id)."""
    who = principal()
    sess = db()
    if user_id != who.user_id:  # leaving needs no scope; removing someone else does
        permissions.check(who.scopes, "members:write", what=f"your role ({who.role})")
    keys = members.key_ids(sess, who.tenant_id, user_id)
    leaving = members.get(sess, who.tenant_id, user_id)
    action = "member_left" if user_id == who.user_id else "member_removed"
    # Written first (the actor may be the one leaving); a refused removal rolls it back.
    audit.record(sess, who.tenant_id, action, who=who, target=user_id, address=request.remote_addr,
                 data={"email": leaving.email, "role": leaving.role})  # fmt: skip
    members.remove(sess, who, user_id)
    sess.commit()
    for key_id in keys:
        key_checker().forget(key_id)
    return "", 204
