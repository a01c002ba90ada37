"""Tenants, their users, their web sessions and their API keys.

A tenant is an account: it owns files, jobs, credits and keys. People are `User` rows
(an owner first; members later); their personal data lives only there, so jobs, files
and ledger rows carry pseudonymous ids. Operators are users with ``is_staff``.

API keys look like ``fk_live_<8 visible chars><32 secret chars>``. Only the visible prefix
and a bcrypt hash are stored; the key is shown once. Checking a key is `authenticate_key`:
one bcrypt per key per ``api_key_verified_seconds`` across all processes (see `KeyChecker`),
and one small read of the key row on every request, so a revoked key stops working at once.
Failed checks are counted per key prefix and per client address (`KeyFailures`), and a
check beyond the limit is refused before any bcrypt runs.

A tenant may be restricted (``restricted_at``): the person asked faktry to stop processing
their data (the privacy policy's right to restriction). Nothing is deleted and everything
stays readable and exportable, but no new processing starts: every way of starting a job
or a run calls `refuse_if_restricted` first (409 ``account_restricted``, nothing held).
Jobs and runs accepted before the restriction finish; lifting it restores everything, as
nothing was changed but the mark.

A web session is a `UserSession` row; the cookie carries a random token whose SHA-256 is
the row's ``token_hash``. Every cookie request reads the row (`find_user_session`), so
logging out, logging out everywhere, a password change or an account deletion ends a
session at once, however many copies of the cookie exist.

Nothing here tells whether an email has an account: a log-in spends one bcrypt of the
configured cost whether or not the account exists (`dummy_hash`), and `sign_up` answers
the same way for a taken address as for a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import string
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import bcrypt
from redis import exceptions as redis_errors
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Engine,
    ForeignKey,
    String,
    bindparam,
    delete,
    exc,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from faktry import clock, permissions
from faktry.config import Settings
from faktry.db import READ_ONLY, Base, TenantOwned, memo, new_id
from faktry.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, ValidationError

KEY_PREFIX = "fk_live_"
_ALPHABET = string.ascii_lowercase + string.digits
VISIBLE_CHARS = 8
SECRET_CHARS = 32
LAST_USED_RESOLUTION = timedelta(seconds=60)
#: Random bytes in a session token (the cookie carries it; the database only its SHA-256).
SESSION_TOKEN_BYTES = 32

log = logging.getLogger("faktry.tenancy")


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ten"))
    name: Mapped[str] = mapped_column(String(200), default="")
    tier: Mapped[str] = mapped_column(String(40), default="free")
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    #: Since when processing is restricted at the person's request (None: it is not).
    restricted_at: Mapped[datetime | None] = mapped_column(default=None)


class User(Base, TenantOwned):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'admin', 'developer', 'billing', 'viewer')", name="role_known"),
    )

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
    #: Optional, as the person gave it (a date, never in the future).
    birthday: Mapped[date | None] = mapped_column(default=None)
    location: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    #: When the person followed the link of a verification mail (pipelines/mail). None: not
    #: yet; such an account may log in but not buy credits. Accounts an operator creates
    #: (`create_tenant`) and those from before mail count as verified.
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)


class UserSession(Base, TenantOwned):
    """A web session of a person. The cookie carries a random token; only its SHA-256 is
    kept, so nothing read from this table can be used as a cookie. Log-out deletes the row;
    so do "log out everywhere", a password change and the deletion of the person (the
    foreign key cascades). A row past its lifetime (`SessionLifetime`) is refused, and
    deleted when it is next presented or at the next log-in of anyone."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ses"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
    #: Written at most once a minute (`LAST_USED_RESOLUTION`): the idle lifetime counts from it.
    last_seen_at: Mapped[datetime] = mapped_column(default=clock.now, index=True)
    #: What logged in, and from where, as the request said (for the person's own export).
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    address: Mapped[str] = mapped_column(String(64), default="")


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
    #: What the key may do (`faktry.permissions`), within its maker's role; None: all of it
    #: (keys made before keys had scopes).
    scopes: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    #: After this the key is refused (None: never).
    expires_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > clock.now())


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, the user acting for it, and how they authenticated."""

    tenant_id: str
    user_id: str | None
    is_staff: bool
    via: str  # "api_key" or "session"
    api_key_id: str | None = None
    #: The person's role in the account, and what the request may do (`faktry.permissions`).
    role: str = "owner"
    scopes: frozenset[str] = permissions.ALL


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
    # An operator vouches for the address it creates an account for.
    user = User(
        tenant_id=tenant.id, email=email, role="owner", is_staff=is_staff, email_verified_at=clock.now()
    )
    if password is not None:
        user.password_hash = hash_secret(password, rounds=bcrypt_rounds)
    session.add(user)
    session.flush()
    return tenant, user


def create_api_key(
    session: Session,
    *,
    tenant_id: str,
    user_id: str | None,
    name: str = "",
    bcrypt_rounds: int = 12,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
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
        scopes=scopes,
        expires_at=expires_at,
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


# KEYS: the counts that apply; ARGV[1]: their window (ms); ARGV[i + 1]: the limit of KEYS[i].
# When a count is full, returns the ms until it empties and counts nothing; else counts one
# more check in every count (a new count lasts the window) and returns 0.
_RESERVE = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local left = redis.call('PTTL', key)
    if left < 1 then left = tonumber(ARGV[1]) end
    wait = math.max(wait, left)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 0, 'NX', 'PX', ARGV[1])
  redis.call('INCR', key)
end
return 0
"""

# KEYS: the counts a successful check gives its place back to (never below zero).
_RELEASE = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
"""


class KeyFailures:
    """Failed API-key checks per key prefix and per client address, counted for every process
    in Redis (``<namespace>:apikeys:failed:prefix:<prefix>`` and ``...:address:<address>``),
    so that a wrong secret cannot make faktry spend bcrypt at will.

    A check that needs bcrypt first takes a place (`reserve`) in both counts, atomically, and is
    refused with `RateLimited` (``429`` with ``Retry-After``) while either is full: no bcrypt
    runs for it. A check that succeeds gives its place back (`release`), so only failures
    (and checks under way) stay counted, for ``window_seconds`` from the first of them.
    Checks of a key that a process remembers never get here (see `KeyChecker`): a key in use
    keeps working while strangers guess at its prefix, and only a key no process has seen
    lately waits out a full count of its prefix.

    Never fails because of Redis: while it is away each process counts on its own, with the
    same limits, for `AWAY_SECONDS` at a time (bcrypt stays bounded; keys keep working)."""

    AWAY_SECONDS = 5.0

    def __init__(
        self, redis: Any, namespace: str, *, per_prefix: int, per_address: int, window_seconds: float
    ) -> None:
        self.namespace = namespace
        self.per_prefix = per_prefix
        self.per_address = per_address
        self.window_ms = max(1, int(window_seconds * 1000))
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)
        self._away_until = 0.0
        self._local: dict[str, tuple[int, float]] = {}  # name -> (count, monotonic end of window)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, redis: Any) -> KeyFailures | None:
        if settings.api_key_failures_per_prefix <= 0 and settings.api_key_failures_per_address <= 0:
            return None
        return cls(
            redis,
            settings.redis_namespace,
            per_prefix=settings.api_key_failures_per_prefix,
            per_address=settings.api_key_failures_per_address,
            window_seconds=settings.api_key_failure_window_seconds,
        )

    def counts(self, prefix: str, address: str | None) -> list[tuple[str, int]]:
        """The counts (Redis keys, with their limits) a check of ``prefix`` from ``address`` goes into."""
        found = []
        if self.per_prefix > 0:
            found.append((f"{self.namespace}:apikeys:failed:prefix:{prefix}", self.per_prefix))
        if self.per_address > 0 and address:
            found.append((f"{self.namespace}:apikeys:failed:address:{address}", self.per_address))
        return found

    def reserve(self, prefix: str, address: str | None) -> None:
        """Count one more check, or raise `RateLimited` (counting nothing) when a count is full."""
        counts = self.counts(prefix, address)
        if not counts:
            return
        wait_ms = None
        if clock.monotonic() >= self._away_until:
            try:
                wait_ms = int(
                    self._reserve(
                        keys=[n for n, _ in counts], args=[self.window_ms] + [lim for _, lim in counts]
                    )
                )
            except (redis_errors.RedisError, OSError):
                self._away()
        if wait_ms is None:
            wait_ms = self._reserve_here(counts)
        if wait_ms > 0:
            raise RateLimited(
                "too many failed API-key checks; wait a moment", retry_after=max(1, math.ceil(wait_ms / 1000))
            )

    def release(self, prefix: str, address: str | None) -> None:
        """Give back the place of a check that succeeded."""
        names = [name for name, _ in self.counts(prefix, address)]
        if not names:
            return
        if clock.monotonic() >= self._away_until:
            try:
                self._release(keys=names)
                return
            except (redis_errors.RedisError, OSError):
                self._away()
        with self._lock:
            for name in names:
                count, ends = self._local.get(name, (0, 0.0))
                if count > 0:
                    self._local[name] = (count - 1, ends)

    def _reserve_here(self, counts: Sequence[tuple[str, int]]) -> int:
        """`_RESERVE` in this process's memory: the ms to wait, or 0 once counted."""
        now = clock.monotonic()
        with self._lock:
            if len(self._local) > 10_000:
                self._local = {n: v for n, v in self._local.items() if v[1] > now}
            current = {}
            for name, _ in counts:
                count, ends = self._local.get(name, (0, 0.0))
                current[name] = (count, ends) if ends > now else (0, now + self.window_ms / 1000)
            wait = max(
                (current[name][1] - now for name, limit in counts if current[name][0] >= limit), default=0.0
            )
            if wait > 0:
                return max(1, math.ceil(wait * 1000))
            for name, (count, ends) in current.items():
                self._local[name] = (count + 1, ends)
            return 0

    def _away(self) -> None:
        if clock.monotonic() >= self._away_until:
            log.warning(
                "Redis is away: failed API-key checks are counted per process for %.0f s", self.AWAY_SECONDS
            )
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
    secret key. A check that neither memory answers is counted by ``failures`` (see
    `KeyFailures`) before bcrypt runs.
    """

    def __init__(
        self,
        secret_key: str,
        local: KeyCache,
        shared: VerifiedKeys | None = None,
        failures: KeyFailures | None = None,
    ) -> None:
        if not secret_key:
            raise ValueError("API key digests need a secret key")
        self._hmac_key = hmac.new(secret_key.encode(), _DIGEST_LABEL, hashlib.sha256).digest()
        self.local = local
        self.shared = shared
        self.failures = failures

    @classmethod
    def from_settings(cls, settings: Settings, local: KeyCache, redis: Any) -> KeyChecker:
        shared = None
        if settings.api_key_verified_seconds > 0:
            shared = VerifiedKeys(redis, settings.redis_namespace, settings.api_key_verified_seconds)
        return cls(settings.secret_key, local, shared, KeyFailures.from_settings(settings, redis))

    def digest(self, presented: str) -> bytes:
        return hmac.new(self._hmac_key, presented.encode(), hashlib.sha256).digest()

    def forget(self, key_id: str) -> None:
        """Drop what Redis remembers of a key (after its revocation has committed)."""
        if self.shared is not None:
            self.shared.forget(key_id)


_KEY_STATE = (
    select(
        ApiKey.tenant_id,
        ApiKey.user_id,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        ApiKey.scopes,
        ApiKey.expires_at,
        User.is_staff,
        User.role,
        Tenant.restricted_at,
    )
    .outerjoin(User, User.id == ApiKey.user_id)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.id == bindparam("key_id"))
)


def authenticate_key(
    session: Session,
    presented: str,
    keys: KeyChecker,
    *,
    address: str | None = None,
    before_hashing: Callable[[], None] | None = None,
) -> Principal:
    """Who the active key ``presented`` acts for, or `Unauthorized` (one message for every cause).

    Which key it is comes from this process's memory, else from Redis, else from bcrypt
    against the active keys with the same visible prefix (a revoked or deleted key never
    costs a bcrypt). A check that needs the database is counted against its prefix and the
    caller's ``address`` first, and refused with `RateLimited` beyond the limits, before any
    bcrypt (see `KeyFailures`). Whether the key is active always comes from its row, read
    here on every request (see `KeyChecker`). ``last_used_at`` is written at most once a
    minute per key, in the request's transaction.

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
        prefix = presented[: len(KEY_PREFIX) + VISIBLE_CHARS]
        if keys.failures is not None:
            keys.failures.reserve(prefix, address)
        key_id = _match_with_bcrypt(session, presented, before_hashing)
        if key_id is None:
            raise denied  # its place in the counts stays taken: one more failure
        if keys.failures is not None:
            keys.failures.release(prefix, address)
    state = session.connection().execute(_KEY_STATE, {"key_id": key_id}).first()
    if state is None or state.revoked_at is not None:
        if remembered or from_redis:
            keys.local.drop(digest)
            keys.forget(key_id)
        raise denied
    now = clock.now()
    if state.expires_at is not None and state.expires_at <= now:
        raise Unauthorized(
            f"this API key expired on {state.expires_at.isoformat()}: make a new one",
            code="api_key_expired",
        )
    if not remembered:
        keys.local.put(digest, key_id)
        if not from_redis and keys.shared is not None:
            keys.shared.put(digest, key_id)
    # Read with the key, whether the account is restricted spares a submit its own lookup.
    memo(session)[(RESTRICTED, state.tenant_id)] = state.restricted_at
    if state.last_used_at is None or now - state.last_used_at > LAST_USED_RESOLUTION:
        _write_now(session, update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    return Principal(
        tenant_id=state.tenant_id,
        user_id=state.user_id,
        is_staff=bool(state.is_staff),
        via="api_key",
        api_key_id=key_id,
        role=state.role or "owner",
        scopes=permissions.scopes_of(state.role or "owner", state.scopes),
    )


def _write_now(session: Session, statement: Any) -> None:
    """A small write made while authenticating (a last-used stamp): in the request's
    transaction, committed with it; in a read-only request, in a short transaction of its own."""
    if not session.info.get(READ_ONLY):
        session.execute(statement, execution_options={"synchronize_session": False})
        return
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect().execution_options(**{READ_ONLY: False}) as own:
        own.execute(statement)
        own.commit()


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


def dummy_hash(rounds: int) -> str:
    """A bcrypt hash at cost ``rounds`` of a random secret nobody knows, made once per process
    and cost: what a log-in with an unknown email (or for a person without a password) is
    checked against, so that it costs exactly what a wrong password of a real account costs."""
    with _dummy_lock:
        hashed = _dummy_hashes.get(rounds)
        if hashed is None:
            hashed = _dummy_hashes[rounds] = hash_secret(secrets.token_urlsafe(32), rounds=rounds)
        return hashed


_dummy_hashes: dict[int, str] = {}
_dummy_lock = threading.Lock()


def hash_cost(hashed: str) -> int | None:
    """The cost a bcrypt hash was made with (``$2b$12$...`` is 12), or None if it is not one."""
    parts = hashed.split("$")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def authenticate_password(
    session: Session,
    email: str,
    password: str,
    *,
    bcrypt_rounds: int,
    before_hashing: Callable[[], None] | None = None,
) -> User:
    """The user with this email and password, or `Unauthorized` (one message for both).

    Every attempt spends one bcrypt of cost ``bcrypt_rounds``, against `dummy_hash` when no
    account (or no password) matches the email: a wrong log-in takes as long for an address
    that has no account as for one that has. A password kept at another cost (the setting
    changed since) is hashed again at ``bcrypt_rounds`` when its owner logs in."""
    denied = Unauthorized("wrong email or password", code="invalid_credentials")
    try:
        email = normalize_email(email)
    except ValidationError:
        raise denied from None
    row = session.execute(select(User.id, User.password_hash).where(User.email == email)).first()
    hashed = row.password_hash if row is not None else None
    real = hashed is not None and hash_cost(hashed) is not None
    if before_hashing is not None:
        before_hashing()  # no transaction (and, on SQLite, no write lock) during bcrypt
    matched = check_secret(password, hashed if real and hashed else dummy_hash(bcrypt_rounds))
    if row is None or not real or not matched:
        raise denied
    rehashed = None
    if hashed is not None and hash_cost(hashed) != bcrypt_rounds:
        rehashed = hash_secret(password, rounds=bcrypt_rounds)  # still outside a transaction
    user = session.get(User, row.id)
    if user is None:
        raise denied
    if rehashed is not None:
        user.password_hash = rehashed
    user.last_login_at = clock.now()
    return user


def change_password(
    session: Session,
    user_id: str,
    current: str,
    new: str,
    *,
    bcrypt_rounds: int,
    before_hashing: Callable[[], None] | None = None,
) -> User:
    """Give the person a new password, once they typed the current one (else `Forbidden`
    ``password_required``), and end every session they have: whoever else held one (a
    copied cookie, a forgotten browser) is logged out. The caller starts a fresh session
    for the browser that asked. Both bcrypt runs happen after ``before_hashing``."""
    hashed = session.scalar(select(User.password_hash).where(User.id == user_id))
    if before_hashing is not None:
        before_hashing()
    real = hashed is not None and hash_cost(hashed) is not None
    matched = check_secret(current, hashed if real and hashed else dummy_hash(bcrypt_rounds))
    if not real or not matched:
        raise Forbidden("type your current password", code="password_required")
    new_hash = hash_secret(new, rounds=bcrypt_rounds)
    user = session.get(User, user_id)
    if user is None:
        raise Forbidden("type your current password", code="password_required")
    user.password_hash = new_hash
    end_user_sessions(session, user_id)
    session.flush()
    return user


def sign_up(session: Session, *, email: str, password_hash: str, tier: str = "free") -> User | None:
    """A new account on ``tier`` whose owner has ``email`` and the (already hashed) password;
    or None, creating and changing nothing, when the email has an account already (also when
    a concurrent sign-up took it first). The caller answers both the same way, so that a
    sign-up does not tell whether an address is registered.

    The new owner's address is not verified yet (``email_verified_at`` is None). For a taken
    address the caller tells the existing owner by mail (`pipelines.mail.notices`)."""
    email = normalize_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        return None
    try:
        with session.begin_nested():
            tenant = Tenant(name=email, tier=tier)
            session.add(tenant)
            session.flush()
            user = User(tenant_id=tenant.id, email=email, role="owner", password_hash=password_hash)
            session.add(user)
            session.flush()
    except exc.IntegrityError:
        return None  # the same email, signed up a moment ago by another request
    return user


# -- restriction of processing ------------------------------------------------------------


class AccountRestricted(Conflict):
    code = "account_restricted"


def set_restricted(session: Session, tenant_id: str, restricted: bool) -> Tenant:
    """Restrict processing for the tenant, or lift the restriction. Idempotent: restricting a
    restricted account keeps the time it was first restricted."""
    tenant = session.get(Tenant, tenant_id, with_for_update=True)
    if tenant is None:
        raise NotFound("no such account")
    if restricted and tenant.restricted_at is None:
        tenant.restricted_at = clock.now()
    elif not restricted:
        tenant.restricted_at = None
    session.flush()
    memo(session)[(RESTRICTED, tenant_id)] = tenant.restricted_at
    return tenant


#: The `faktry.db.memo` key of what a transaction read of ``tenants.restricted_at``.
RESTRICTED = "tenant.restricted_at"


def refuse_if_restricted(session: Session, tenant_id: str) -> None:
    """Raise `AccountRestricted` (409 ``account_restricted``) while the tenant's processing is
    restricted. Called before anything is checked, held or sent elsewhere (moderation)."""
    seen = memo(session)
    if (RESTRICTED, tenant_id) in seen:  # read with the caller's API key
        since = seen[(RESTRICTED, tenant_id)]
    else:
        since = seen[(RESTRICTED, tenant_id)] = session.scalar(
            select(Tenant.restricted_at).where(Tenant.id == tenant_id)
        )
    if since is not None:
        raise AccountRestricted(
            "processing is restricted for this account at your request: nothing new runs until "
            "you lift the restriction on your profile (PUT /v1/account/restriction)",
            details={"restricted_at": since.isoformat()},
        )


def refuse_if_unverified(session: Session, tenant_id: str) -> None:
    """Raise `Forbidden` ``email_unverified`` unless an owner of the tenant has verified their
    email address (pipelines/mail): an account must prove it can be reached before it pays."""
    verified = session.scalar(
        select(User.id)
        .where(User.tenant_id == tenant_id, User.role == "owner", User.email_verified_at.is_not(None))
        .limit(1)
    )
    if verified is None:
        raise Forbidden(
            "confirm your email address first: follow the link in the mail faktry sent you, "
            "or ask for a new one (POST /v1/email/verification)",
            code="email_unverified",
        )


# -- web sessions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionLifetime:
    """How long a web session lasts: ``idle`` without a request, ``absolute`` after log-in."""

    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLifetime:
        return cls(
            idle=timedelta(seconds=settings.session_idle_seconds),
            absolute=timedelta(seconds=settings.session_max_seconds),
        )

    def over(self, now: datetime, created_at: datetime, last_seen_at: datetime) -> bool:
        return now - last_seen_at >= self.idle or now - created_at >= self.absolute

    def over_in_sql(self, now: datetime) -> ColumnElement[bool]:
        return or_(UserSession.last_seen_at <= now - self.idle, UserSession.created_at <= now - self.absolute)


def _token_hash(token: str) -> str:
    # The token is 256 random bits: a plain SHA-256 of it cannot be reversed or guessed.
    return hashlib.sha256(token.encode()).hexdigest()


def start_user_session(
    session: Session, user: User, lifetime: SessionLifetime, *, user_agent: str = "", address: str = ""
) -> tuple[UserSession, str]:
    """A new web session for ``user``: the row, and the token for the cookie (never stored).

    Sessions of anyone that are past their lifetime are deleted here too: log-ins are rare
    and throttled, and no session outlives its lifetime by more than the time to the next."""
    now = clock.now()
    session.execute(
        delete(UserSession).where(lifetime.over_in_sql(now)),
        execution_options={"synchronize_session": False},
    )
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    row = UserSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        token_hash=_token_hash(token),
        created_at=now,
        last_seen_at=now,
        user_agent=user_agent[:300],
        address=address[:64],
    )
    session.add(row)
    session.flush()
    return row, token


def find_user_session(session: Session, token: str, lifetime: SessionLifetime) -> tuple[User, str] | None:
    """The person whose live session ``token`` names, and the session's id; None when no
    session has it (never had, ended, or past its lifetime: then the row is deleted).

    One indexed read (the session and its user together); ``last_seen_at`` is written at
    most once a minute, like an API key's ``last_used_at``."""
    if not token:
        return None
    found = session.execute(
        select(User, UserSession.id, UserSession.created_at, UserSession.last_seen_at)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == _token_hash(token))
    ).first()
    if found is None:
        return None
    user, session_id, created_at, last_seen_at = found
    now = clock.now()
    if lifetime.over(now, created_at, last_seen_at):
        _write_now(session, delete(UserSession).where(UserSession.id == session_id))
        return None
    if now - last_seen_at > LAST_USED_RESOLUTION:
        _write_now(session, update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now))
    return user, session_id


def end_user_session(session: Session, token: str) -> None:
    """Log out: the session ``token`` names ends, in every copy of its cookie."""
    session.execute(
        delete(UserSession).where(UserSession.token_hash == _token_hash(token)),
        execution_options={"synchronize_session": False},
    )


def end_user_sessions(session: Session, user_id: str) -> int:
    """Log the person out everywhere: every session they have ends. Returns how many did."""
    result = session.execute(
        delete(UserSession).where(UserSession.user_id == user_id),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0) or 0)


MIN_PASSWORD = 10


def check_password(password: Any, *, field: str = "password") -> str:
    """A password faktry accepts: 10 characters or more, at most 72 bytes (bcrypt's limit)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD} characters", field=field)
    if len(password.encode()) > 72:
        raise ValidationError("a password can be at most 72 bytes long", field=field)
    return password


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
