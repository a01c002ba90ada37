"""``/v1/members``: the account's people and their roles (pipelines/members.py)."""

from __future__ import annotations

from typing import Any

from pipelines import members
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
    user = members.set_role(sess, who, user_id, body.get("role"))
    answer = members.to_dict(user, you=who.user_id)
    sess.commit()
    return answer


@blueprint.delete("/members/<user_id>")
@authenticated
def remove_member(user_id: str) -> Any:
    """Remove a person from the account, or leave it (your own id)."""
    who = principal()
    sess = db()
    keys = [k for k in members.key_ids(sess, who.tenant_id, user_id)]
    members.remove(sess, who, user_id)
    sess.commit()
    for key_id in keys:
        key_checker().forget(key_id)
    return "", 204
