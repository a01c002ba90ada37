"""Tenants, their users and their API keys.

A tenant is an account: it owns files, jobs, credits and keys. People are `User` rows
(an owner first; members later); their personal data lives only there, so jobs, files
and ledger rows carry pseudonymous ids. Operators are users with ``is_staff``.

API keys look like ``fk_live_<8 visible chars><32 secret chars>``. Only the visible prefix
and a bcrypt hash are stored; the key is shown once. Checking a key costs one bcrypt the
first time a process sees it; after that a `KeyCache` trusts the (sha256 of the) key for
a few seconds, while every request still reads the key row, so a revoked key stops
working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bcrypt
from sqlalchemy import Boolean, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from faktry import clock
from faktry.db import Base, TenantOwned, new_id
from faktry.errors import NotFound, Unauthorized, ValidationError

KEY_PREFIX = "fk_live_"
_ALPHABET = string.ascii_lowercase + string.digits
VISIBLE_CHARS = 8
SECRET_CHARS = 32
LAST_USED_RESOLUTION = timedelta(seconds=60)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200), default="")
    tier: Mapped[str] = mapped_column(String(40), default="free")
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)


class User(Base, TenantOwned):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("usr"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(100), default=None)
    role: Mapped[str] = mapped_column(String(20), default="owner")
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    industry: Mapped[str] = mapped_column(String(100), default="")
    website: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiKey(Base, TenantOwned):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(20), index=True)
    key_hash: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, the user acting for it, and how they authenticated."""

    tenant_id: str
    user_id: str | None
    is_staff: bool
    via: str  # "api_key" or "session"
    api_key_id: str | None = None


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or email.startswith("@") or email.endswith("@") or len(email) > 320:
        raise ValidationError("a valid email address is required", field="email")
    return email


def hash_secret(secret: str, *, rounds: int) -> str:
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds)).decode()


def check_secret(secret: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(secret.encode(), hashed.encode())
    except ValueError:
        return False


def create_tenant(
    session: Session,
    *,
    email: str,
    tier: str = "free",
    name: str = "",
    is_staff: bool = False,
    password: str | None = None,
    bcrypt_rounds: int = 12,
) -> tuple[Tenant, User]:
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationError("an account with this email exists", field="email", code="email_taken")
    tenant = Tenant(name=name or email, tier=tier)
    session.add(tenant)
    session.flush()
    user = User(tenant_id=tenant.id, email=email, role="owner", is_staff=is_staff)
    if password is not None:
        user.password_hash = hash_secret(password, rounds=bcrypt_rounds)
    session.add(user)
    session.flush()
    return tenant, user


def create_api_key(
    session: Session, *, tenant_id: str, user_id: str | None, name: str = "", bcrypt_rounds: int = 12
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plain key, which is never stored or shown again."""
    visible = "".join(secrets.choice(_ALPHABET) for _ in range(VISIBLE_CHARS))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_CHARS))
    plain = f"{KEY_PREFIX}{visible}{secret}"
    key = ApiKey(
        tenant_id=tenant_id,
        user_id=user_id,
        name=name[:100],
        prefix=f"{KEY_PREFIX}{visible}",
        key_hash=hash_secret(plain, rounds=bcrypt_rounds),
    )
    session.add(key)
    session.flush()
    return key, plain


def revoke_api_key(session: Session, key_id: str) -> ApiKey:
    """Revoke a key of the session's tenant (another tenant's key is not found)."""
    key = session.scalars(select(ApiKey).where(ApiKey.id == key_id)).first()
    if key is None:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
    return key


class KeyCache:
    """Remembers, per process and for a few seconds, which presented key maps to which row.

    Holds sha256 digests of keys, never keys. Revocation is not cached: callers still read
    the row on every request.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> str | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            key_id, expires = entry
            if expires < clock.monotonic():
                del self._entries[digest]
                return None
            return key_id

    def put(self, digest: bytes, key_id: str) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (key_id, clock.monotonic() + self.ttl)


def authenticate_key(
    session: Session, presented: str, cache: KeyCache, *, before_hashing: Callable[[], None] | None = None
) -> tuple[ApiKey, User | None]:
    """The active key matching ``presented``, or `Unauthorized` (one message for every cause).

    ``before_hashing`` ends the caller's transaction before bcrypt runs: on SQLite an open
    transaction holds the database's write lock, and bcrypt takes a quarter of a second."""
    denied = Unauthorized("missing, malformed or revoked API key", code="invalid_api_key")
    if (
        not presented.startswith(KEY_PREFIX)
        or len(presented) != len(KEY_PREFIX) + VISIBLE_CHARS + SECRET_CHARS
    ):
        raise denied
    digest = hashlib.sha256(presented.encode()).digest()
    key: ApiKey | None = None
    cached_id = cache.get(digest)
    if cached_id is not None:
        key = session.get(ApiKey, cached_id)
    else:
        prefix = presented[: len(KEY_PREFIX) + VISIBLE_CHARS]
        candidates = [
            (k.id, k.key_hash) for k in session.scalars(select(ApiKey).where(ApiKey.prefix == prefix))
        ]
        if before_hashing is not None:
            before_hashing()
        for key_id, key_hash in candidates:
            if check_secret(presented, key_hash):
                key = session.get(ApiKey, key_id)  # read again: it may have been revoked meanwhile
                cache.put(digest, key_id)
                break
    if key is None or key.revoked_at is not None:
        raise denied
    now = clock.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    user = session.get(User, key.user_id) if key.user_id else None
    return key, user


def authenticate_password(
    session: Session, email: str, password: str, *, before_hashing: Callable[[], None] | None = None
) -> User:
    """The user with this email and password, or `Unauthorized` (one message for both)."""
    try:
        email = normalize_email(email)
    except ValidationError:
        raise Unauthorized("wrong email or password", code="invalid_credentials") from None
    user = session.scalars(select(User).where(User.email == email)).first()
    user_id = user.id if user is not None else None
    # Spend a bcrypt even for unknown emails so timing does not reveal which accounts exist.
    hashed = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    if before_hashing is not None:
        before_hashing()  # no transaction (and, on SQLite, no write lock) during bcrypt
    if not check_secret(password, hashed) or user_id is None or hashed is _DUMMY_HASH:
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    user = session.get(User, user_id)
    if user is None:
        raise Unauthorized("wrong email or password", code="invalid_credentials")
    user.last_login_at = clock.now()
    return user


MIN_PASSWORD = 10


def check_password(password: Any) -> str:
    """A password faktry accepts: 10 characters or more, at most 72 bytes (bcrypt's limit)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD} characters", field="password")
    if len(password.encode()) > 72:
        raise ValidationError("a password can be at most 72 bytes long", field="password")
    return password


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


_DUMMY_HASH = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(4)).decode()
