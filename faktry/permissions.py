"""Who may do what: the one table of roles and scopes, and the one check, for the API and
the pages alike (docs/api.md, "Roles and scopes").

Every route under ``/v1`` that needs credentials, and every page that needs a log-in, is
named by `RESOURCES`: the first entry whose prefix its path starts with gives the resource,
and the method gives the action, ``read`` (GET, HEAD) or ``write`` (anything else), unless
`EXCEPTIONS` says otherwise for that very route. A resource is either a scope family
(``files`` → ``files:read`` and ``files:write``), or ``self`` (a person's own session and
profile: anyone logged in), or ``staff`` (the operators' console: checked by its views).

A person's scopes are their role's (`ROLE_SCOPES`). An API key carries scopes chosen when
it was made, never more than its maker's role had; a request with a key may do what both
the key and its maker's role allow today, so demoting a person narrows their keys at once.
A request outside them answers ``403 insufficient_scope`` naming the scope it lacks.
"""

from __future__ import annotations

from collections.abc import Iterable

from faktry.errors import Forbidden

#: Scope families: each has ``:read`` and ``:write``.
FAMILIES = (
    "files", "jobs", "workflows", "brands", "projects", "gallery", "webhooks", "keys", "members",
    "billing", "account",
)  # fmt: skip
#: Every scope: ``<family>:read``, ``<family>:write``, deleting the account, and reading
#: its audit log.
SCOPES: tuple[str, ...] = (
    *(f"{family}:{action}" for family in FAMILIES for action in ("read", "write")),
    "account:delete",
    "audit:read",
)
ALL = frozenset(SCOPES)
READS = frozenset(s for s in SCOPES if s.endswith(":read"))

ROLES = ("owner", "admin", "developer", "billing", "viewer")
#: What each role may do. The owner may do everything; an admin everything but delete the
#: account (and only an owner makes or unmakes owners: `pipelines.members`).
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": ALL,
    "admin": ALL - {"account:delete"},
    "developer": frozenset(
        f"{family}:{action}"
        for family in ("files", "jobs", "workflows", "brands", "projects", "gallery", "webhooks", "keys")
        for action in ("read", "write")
    )
    | {"account:read", "members:read"},
    "billing": frozenset(
        {"billing:read", "billing:write", "account:read", "members:read", "jobs:read", "files:read"}
    ),
    "viewer": READS - {"keys:read", "webhooks:read", "audit:read"},
}

SELF = "self"
STAFF = "staff"

#: Path prefixes (API paths without ``/v1``, and pages) and the resource each names; the
#: first match wins, so longer prefixes come first where they overlap.
RESOURCES: tuple[tuple[str, str], ...] = (
    ("/files", "files"),
    ("/uploads", "files"),
    ("/library", "files"),
    ("/jobs", "jobs"),
    ("/events", "jobs"),
    ("/models", "jobs"),
    ("/workflow-runs", "workflows"),
    ("/workflow-templates", "workflows"),
    ("/workflows", "workflows"),
    ("/brands", "brands"),
    ("/projects", "projects"),
    ("/gallery", "gallery"),
    ("/webhook-endpoints", "webhooks"),
    ("/webhook-messages", "webhooks"),
    ("/webhook-signing-key", "webhooks"),
    ("/webhooks", "webhooks"),
    ("/keys", "keys"),
    ("/members", "members"),
    ("/invitations", "members"),
    ("/billing", "billing"),
    ("/credits", "billing"),
    ("/account/transactions", "billing"),
    ("/account", "account"),
    ("/profile", SELF),
    ("/email", SELF),
    ("/session", SELF),
    ("/sessions", SELF),
    ("/audit-log", "audit"),
    ("/admin", STAFF),
)

#: Routes whose scope is not their resource's and method's: reads that reveal a secret,
#: writes that change nothing (quotes), the export (everything of everyone in the account),
#: deleting the account, and leaving it.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("GET", "/webhook-endpoints/<endpoint_id>/secret"): "webhooks:write",
    ("GET", "/webhook-signing-key"): "webhooks:write",
    ("POST", "/jobs/quote"): "jobs:read",
    ("POST", "/workflows/quote"): "workflows:read",
    ("POST", "/projects/<project_id>/quote"): "projects:read",
    ("GET", "/account/export"): "account:write",
    ("GET", "/account/exports"): "account:write",
    ("GET", "/account/exports/<archive_id>"): "account:write",
    ("GET", "/account/exports/<archive_id>/download"): "account:write",
    ("DELETE", "/account"): "account:delete",
    # Anyone may leave; removing someone else needs members:write (checked by the view).
    ("DELETE", "/members/<user_id>"): SELF,
}

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required(method: str, rule: str) -> str | None:
    """The scope a route needs (``/v1`` taken off its rule), ``self``, ``staff``, or None
    when the table names no resource for it (a route the test of every route refuses)."""
    path = rule.removeprefix("/v1")
    exception = EXCEPTIONS.get((method, path))
    if exception is not None:
        return exception
    for prefix, resource in RESOURCES:
        if path == prefix or path.startswith(prefix + "/"):
            if resource in (SELF, STAFF):
                return resource
            return f"{resource}:{'read' if method in READ_METHODS else 'write'}"
    return None


def scopes_of(role: str, key_scopes: Iterable[str] | None = None) -> frozenset[str]:
    """What a request may do: its person's role's scopes, narrowed by its key's."""
    allowed = ROLE_SCOPES.get(role, frozenset())
    return allowed if key_scopes is None else allowed & frozenset(key_scopes)


def check(scopes: frozenset[str], needed: str | None, *, what: str) -> None:
    """Refuse with ``403 insufficient_scope`` unless ``scopes`` hold ``needed``. ``what`` says
    who is asking (``your role (viewer)``, ``this API key``) in the message."""
    if needed is None or needed in (SELF, STAFF) or needed in scopes:
        return
    raise Forbidden(
        f"{what} does not allow this: it needs the scope {needed}",
        code="insufficient_scope",
        details={"scope": needed},
    )


def parse_scopes(raw: object, *, allowed: frozenset[str], field: str = "scopes") -> list[str]:
    """A key's scopes from a request: a list of known scopes, each within ``allowed`` (what
    its maker may do), in the table's order; at least one."""
    from faktry.errors import ValidationError

    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise ValidationError("scopes must be a non-empty list of scope names", field=field)
    unknown = sorted(set(raw) - ALL)
    if unknown:
        raise ValidationError(f"unknown scope: {unknown[0]} (see docs/api.md, Roles and scopes)", field=field)
    beyond = sorted(set(raw) - allowed)
    if beyond:
        raise Forbidden(
            f"you cannot give a key the scope {beyond[0]}: your role does not have it",
            code="insufficient_scope",
            details={"scope": beyond[0], "field": field},
        )
    return [s for s in SCOPES if s in set(raw)]
