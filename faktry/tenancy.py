"""Tenants, their users and their API keys.

A tenant is an account: it owns files, jobs, credits and keys. People are `User` rows
(an owner first; members later); their personal data lives only there, so jobs, files
and ledger rows carry pseudonymous ids. Operators are users with ``is_staff``.

API keys look like ``fk_live_<8 visible chars><32 secret chars>``. Only the visible prefix
and a bcrypt hash are stored; the key is shown once. Checking a key is `authenticate_key`:
one bcrypt per key per ``api_key_verified_seconds`` across all processes (see `KeyChecker`),
and one small read of the key row on every request, so a revoked key stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bcrypt
from redis import exceptions as redis_errors
from sqlalchemy import Boolean, Engine, ForeignKey, String, bindparam, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from faktry import clock
from faktry.config import Settings
from faktry.db import READ_ONLY, Base, TenantOwned, new_id
from faktry.errors import NotFound, Unauthorized, ValidationError

KEY_PREFIX = "fk_live_"
_ALPHABET = string.ascii_lowercase + string.digits
VISIBLE_CHARS = 8
SECRET_CHARS = 32
LAST_USED_RESOLUTION = timedelta(seconds=60)

log = logging.getLogger("faktry.tenancy")


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
    """Remembers, in this process and for ``ttl_seconds``, which key a presented key is.

    Maps HMAC digests of keys (`KeyChecker.digest`) to key ids, never keys."""

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
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (key_id, clock.monotonic() + self.ttl)

    def drop(self, digest: bytes) -> None:
        with self._lock:
            self._entries.pop(digest, None)


class VerifiedKeys:
    """Remembers for every process, in Redis and for ``ttl_seconds``, which key a presented
    key is: ``<namespace>:apikeys:verified:<digest>`` holds the key id, and the set
    ``<namespace>:apikeys:digests:<key id>`` its digests (one per secret key in use), so a
    key's entries can be removed.

    Never raises: while Redis is away every lookup answers "not known" (the caller falls back
    to bcrypt) and Redis is left alone for `AWAY_SECONDS`, so a dead or hanging server costs
    one timeout per process every few seconds, not one per request."""

    AWAY_SECONDS = 5.0

    def __init__(self, redis: Any, namespace: str, ttl_seconds: float) -> None:
        self.redis = redis
        self.namespace = namespace
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._away_until = 0.0

    def _by_digest(self, digest_hex: str) -> str:
        return f"{self.namespace}:apikeys:verified:{digest_hex}"

    def _by_key(self, key_id: str) -> str:
        return f"{self.namespace}:apikeys:digests:{key_id}"

    def get(self, digest: bytes) -> str | None:
        if clock.monotonic() < self._away_until:
            return None
        try:
            value = self.redis.get(self._by_digest(digest.hex()))
        except (redis_errors.RedisError, OSError):
            self._away()
            return None
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def put(self, digest: bytes, key_id: str) -> None:
        if clock.monotonic() < self._away_until:
            return
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self._by_digest(digest.hex()), key_id, px=self.ttl_ms)
                pipe.sadd(self._by_key(key_id), digest.hex())
                pipe.pexpire(self._by_key(key_id), self.ttl_ms)
                pipe.execute()
        except (redis_errors.RedisError, OSError):
            self._away()

    def forget(self, key_id: str) -> None:
        """Remove what Redis holds for ``key_id`` (the key row decides; this is tidiness)."""
        if clock.monotonic() < self._away_until:
            return
        try:
            digests = self.redis.smembers(self._by_key(key_id))
            names = [self._by_digest(d.decode() if isinstance(d, bytes) else d) for d in digests]
            self.redis.delete(self._by_key(key_id), *names)
        except (redis_errors.RedisError, OSError):
            self._away()

    def _away(self) -> None:
        if clock.monotonic() >= self._away_until:
            log.warning("Redis is away: API keys are checked with bcrypt for %.0f s", self.AWAY_SECONDS)
        self._away_until = clock.monotonic() + self.AWAY_SECONDS


#: The label under which the digest key is derived from the secret key: digests of API keys
#: cannot be made, or matched, by any other use of the secret key.
_DIGEST_LABEL = b"faktry:api-key-digest:v1"


class KeyChecker:
    """What a process needs to check API keys cheaply: a keyed HMAC of presented keys, an
    in-process `KeyCache` in front of the shared `VerifiedKeys` (None when
    ``api_key_verified_seconds`` is 0), and bcrypt behind both.

    Both memories hold one fact only: "the key whose HMAC is D is key K". That fact never
    changes (a key's hash is never replaced), so neither memory is ever invalidated for
    correctness. Whether key K may still be used is not remembered anywhere: every request
    reads it from the key row (`authenticate_key`), one indexed read on the connection the
    request uses anyway. That is why a revoked key, or a key of a deleted account, or one
    revoked by hand in SQL, is refused on the very next request in every process, with no
    message that could be lost or arrive late, and why losing Redis (flushed, away, restored
    from an old snapshot) can cost bcrypt checks but never accept a key the database refuses.
    A hot key costs no Redis call for ``api_key_cache_seconds`` and no bcrypt for
    ``api_key_verified_seconds``. Revoking removes the key's Redis entries (`forget`) and a
    refused key's entries are dropped where they are noticed, so they do not outlive the key.

    The digest is an HMAC-SHA256 under a key derived from the server's secret key, never a
    plain hash: Redis holds nothing that could be checked against a guessed key without the
    secret key.
    """

    def __init__(self, secret_key: str, local: KeyCache, shared: VerifiedKeys | None = None) -> None:
        if not secret_key:
            raise ValueError("API key digests need a secret key")
        self._hmac_key = hmac.new(secret_key.encode(), _DIGEST_LABEL, hashlib.sha256).digest()
        self.local = local
        self.shared = shared

    @classmethod
    def from_settings(cls, settings: Settings, local: KeyCache, redis: Any) -> KeyChecker:
        shared = None
        if settings.api_key_verified_seconds > 0:
            shared = VerifiedKeys(redis, settings.redis_namespace, settings.api_key_verified_seconds)
        return cls(settings.secret_key, local, shared)

    def digest(self, presented: str) -> bytes:
        return hmac.new(self._hmac_key, presented.encode(), hashlib.sha256).digest()

    def forget(self, key_id: str) -> None:
        """Drop what Redis remembers of a key (after its revocation has committed)."""
        if self.shared is not None:
            self.shared.forget(key_id)


_KEY_STATE = (
    select(ApiKey.tenant_id, ApiKey.user_id, ApiKey.revoked_at, ApiKey.last_used_at, User.is_staff)
    .outerjoin(User, User.id == ApiKey.user_id)
    .where(ApiKey.id == bindparam("key_id"))
)


def authenticate_key(
    session: Session,
    presented: str,
    keys: KeyChecker,
    *,
    before_hashing: Callable[[], None] | None = None,
) -> Principal:
    """Who the active key ``presented`` acts for, or `Unauthorized` (one message for every cause).

    Which key it is comes from this process's memory, else from Redis, else from bcrypt
    against the active keys with the same visible prefix (a revoked or deleted key never
    costs a bcrypt). Whether that key is active always comes from its row, read here on
    every request (see `KeyChecker`). ``last_used_at`` is written at most once a minute per
    key, in the request's transaction.

    ``before_hashing`` ends the caller's transaction before bcrypt runs: on SQLite an open
    transaction holds the database's write lock, and bcrypt takes a quarter of a second."""
    denied = Unauthorized("missing, malformed or revoked API key", code="invalid_api_key")
    if (
        not presented.startswith(KEY_PREFIX)
        or len(presented) != len(KEY_PREFIX) + VISIBLE_CHARS + SECRET_CHARS
    ):
        raise denied
    digest = keys.digest(presented)
    key_id = keys.local.get(digest)
    remembered = key_id is not None
    if key_id is None and keys.shared is not None:
        key_id = keys.shared.get(digest)
    from_redis = not remembered and key_id is not None
    if key_id is None:
        key_id = _match_with_bcrypt(session, presented, before_hashing)
        if key_id is None:
            raise denied
    state = session.connection().execute(_KEY_STATE, {"key_id": key_id}).first()
    if state is None or state.revoked_at is not None:
        if remembered or from_redis:
            keys.local.drop(digest)
            keys.forget(key_id)
        raise denied
    if not remembered:
        keys.local.put(digest, key_id)
        if not from_redis and keys.shared is not None:
            keys.shared.put(digest, key_id)
    now = clock.now()
    if state.last_used_at is None or now - state.last_used_at > LAST_USED_RESOLUTION:
        if session.info.get(READ_ONLY):
            # A read-only request writes its stamp in a short transaction of its own.
            bind = session.get_bind()
            engine = bind if isinstance(bind, Engine) else bind.engine
            with engine.connect().execution_options(**{READ_ONLY: False}) as own:
                own.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
                own.commit()
        else:
            key = session.get(ApiKey, key_id)
            if key is not None:
                key.last_used_at = now
                session.flush()  # written now, committed with the request
    return Principal(
        tenant_id=state.tenant_id,
        user_id=state.user_id,
        is_staff=bool(state.is_staff),
        via="api_key",
        api_key_id=key_id,
    )


def _match_with_bcrypt(
    session: Session, presented: str, before_hashing: Callable[[], None] | None
) -> str | None:
    """The id of the active key whose bcrypt hash matches ``presented``, or None."""
    prefix = presented[: len(KEY_PREFIX) + VISIBLE_CHARS]
    candidates = session.execute(
        select(ApiKey.id, ApiKey.key_hash).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    ).all()
    if not candidates:
        return None
    if before_hashing is not None:
        before_hashing()
    for key_id, key_hash in candidates:
        if check_secret(presented, key_hash):
            return str(key_id)
    return None


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
