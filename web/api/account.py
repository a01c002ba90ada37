"""``/v1/account``: the caller's tenant, tier and storage used."""

from __future__ import annotations

from typing import Any

from faktry.tenancy import Tenant, User
from pipelines import files
from web.api import blueprint
from web.auth import authenticated, db, principal


@blueprint.get("/account")
@authenticated
def account() -> Any:
    sess = db()
    who = principal()
    tenant = sess.get(Tenant, who.tenant_id)
    assert tenant is not None
    user = sess.get(User, who.user_id) if who.user_id else None
    return {
        "object": "account",
        "tenant": {
            "id": tenant.id,
            "name": tenant.name,
            "tier": tenant.tier,
            "created_at": tenant.created_at.isoformat(),
        },
        "user": {"id": user.id, "email": user.email, "is_staff": user.is_staff} if user else None,
        "storage": {"used_bytes": files.storage_used(sess, tenant.id)},
        "auth": who.via,
    }
