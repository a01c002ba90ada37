"""``/v1/keys``: create (the key is shown once), list and revoke API keys.

A key is created with the name it is given, without the spaces around it; without a name,
or with a blank one, it is named after the time it was made (``Key created 2026-01-15
09:30 UTC``), so that every key in a list says something about itself."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import select

from faktry import clock
from faktry.errors import ValidationError
from faktry.tenancy import ApiKey, create_api_key, revoke_api_key
from pipelines.mail import notices
from web import services
from web.api import blueprint
from web.auth import authenticated, db, key_checker, principal
from web.bodies import json_object


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    def stamp(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "created_at": stamp(key.created_at),
        "last_used_at": stamp(key.last_used_at),
        "revoked_at": stamp(key.revoked_at),
        "active": key.active,
    }


@blueprint.post("/keys")
@authenticated
def create_key() -> Any:
    name = json_object(allowed={"name"}, optional=True).get("name", "")
    if not isinstance(name, str) or len(name) > 100:
        raise ValidationError("name must be a string of at most 100 characters", field="name")
    name = name.strip() or default_key_name()
    sess = db()
    who = principal()
    key, plain = create_api_key(
        sess,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        name=name,
        bcrypt_rounds=services().settings.bcrypt_rounds,
    )
    notices.security_notice(
        sess, notices.Links.from_settings(services().settings), who.tenant_id,
        "an API key was created", f"Its name is {key.name!r} and it starts with {key.prefix}.",
    )  # fmt: skip
    sess.commit()
    return {**key_to_dict(key), "key": plain}, 201


def default_key_name() -> str:
    return f"Key created {clock.now().astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@blueprint.get("/keys")
@authenticated
def list_keys() -> Any:
    keys = db().scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc()))
    return {"object": "list", "data": [key_to_dict(k) for k in keys]}


@blueprint.delete("/keys/<key_id>")
@authenticated
def revoke_key(key_id: str) -> Any:
    sess = db()
    key = revoke_api_key(sess, key_id)
    sess.commit()
    # The row refuses the key from now on, in every process; this removes what Redis
    # remembers of it (and never fails: Redis may be away).
    key_checker().forget(key.id)
    return key_to_dict(key)
