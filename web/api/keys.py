"""``/v1/keys``: create (the key is shown once), list and revoke API keys.

A key is created with the name it is given, without the spaces around it; without a name,
or with a blank one, it is named after the time it was made (``Key created 2026-01-15
09:30 UTC``), so that every key in a list says something about itself.

A key carries ``scopes`` (`faktry.permissions.SCOPES`): those asked for, each one its maker's
role has (else ``403 insufficient_scope``), or, when none are asked for, every scope of the
maker's role. A key made with a key has at most that key's scopes. It may carry
``expires_at``, a time in the future (at most ten years ahead), after which it is refused
with ``401 api_key_expired``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import request
from sqlalchemy import select

from faktry import clock, permissions
from faktry.errors import ValidationError
from faktry.tenancy import ApiKey, create_api_key, revoke_api_key
from pipelines.audit import log as audit
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
        "expires_at": stamp(key.expires_at),
        "scopes": list(key.scopes) if key.scopes is not None else list(permissions.SCOPES),
        "active": key.active,
    }


@blueprint.post("/keys")
@authenticated
def create_key() -> Any:
    body = json_object(allowed={"name", "scopes", "expires_at"}, optional=True)
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > 100:
        raise ValidationError("name must be a string of at most 100 characters", field="name")
    name = name.strip() or default_key_name()
    sess = db()
    who = principal()
    raw = body.get("scopes")
    scopes = sorted(who.scopes, key=permissions.SCOPES.index) if raw is None else None
    if raw is not None:
        scopes = permissions.parse_scopes(raw, allowed=who.scopes)
    key, plain = create_api_key(
        sess,
        tenant_id=who.tenant_id,
        user_id=who.user_id,
        name=name,
        bcrypt_rounds=services().settings.bcrypt_rounds,
        scopes=scopes,
        expires_at=_expiry(body.get("expires_at")),
    )
    expires = key.expires_at.isoformat() if key.expires_at else None
    audit.record(
        sess, who.tenant_id, "key_created", who=who, target=key.id, address=request.remote_addr,
        data={"name": key.name, "scopes": key.scopes, "expires_at": expires},
    )  # fmt: skip
    notices.security_notice(
        sess, notices.Links.from_settings(services().settings), who.tenant_id,
        "an API key was created", f"Its name is {key.name!r} and it starts with {key.prefix}.",
    )  # fmt: skip
    sess.commit()
    return {**key_to_dict(key), "key": plain}, 201


#: The furthest ahead a key's expiry may be.
MAX_LIFETIME = timedelta(days=3653)


def _expiry(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValidationError("expires_at must be a date and time (ISO 8601) or null", field="expires_at")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("expires_at must be a date and time (ISO 8601)", field="expires_at") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = clock.now()
    if when <= now:
        raise ValidationError("expires_at must be in the future", field="expires_at")
    if when > now + MAX_LIFETIME:
        raise ValidationError("expires_at must be at most ten years ahead", field="expires_at")
    return when


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
    who = principal()
    audit.record(sess, who.tenant_id, "key_revoked", who=who, target=key.id, address=request.remote_addr,
                 data={"name": key.name})  # fmt: skip
    sess.commit()
    # The row refuses the key from now on, in every process; this removes what Redis
    # remembers of it (and never fails: Redis may be away).
    key_checker().forget(key.id)
    return key_to_dict(key)
