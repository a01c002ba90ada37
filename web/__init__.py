"""The web front door: the composition root of web processes.

`create_app` builds everything a request needs after fork (engine, storage, broker
sender, key cache) and registers the blueprints. Views are thin: parse, call one
service, translate errors.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from typing import IO, Any

from flask import Flask, Request, g, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.orm import Session, sessionmaker

from faktry.config import Settings
from faktry.db import make_engine, make_sessionmaker
from faktry.errors import NotFound, ValidationError
from faktry.redisconn import Embedded, resolve_url
from faktry.redisconn import client as redis_client
from faktry.tenancy import KeyCache
from pipelines.admission import Admission, AdmittingSender
from pipelines.catalog import default_catalog
from pipelines.generation import configured_providers
from pipelines.metrics import Metrics
from pipelines.moderation import Moderator
from pipelines.routing import RoutingLimits
from pipelines.services import Policy, Sender
from quotas.billing import packs_from_json, price_tiers_from_json
from quotas.limits import TierCache
from quotas.pricing import PriceList
from quotas.ratelimit import RateLimiter
from storage import from_settings as storage_from_settings
from storage.interface import Storage
from web.guard import UploadSlots

#: How long a request waits on Redis before treating it as away.
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    sender: Sender
    key_cache: KeyCache
    policy: Policy
    ratelimiter: RateLimiter
    moderator: Moderator
    metrics: Metrics
    #: Redis, for what the web reads of the platform's shared state (queues, breakers).
    redis: Any
    #: Uploads under way in this process (web/guard.py).
    uploads: UploadSlots

    @property
    def admission(self) -> Admission | None:
        return self.sender.admission if isinstance(self.sender, AdmittingSender) else None

    embedded_redis: Embedded | None = None


class StrictJSON(DefaultJSONProvider):
    """Request bodies must be plain JSON: no NaN or Infinity, no NUL characters (PostgreSQL
    cannot store them), no nesting deep enough to exhaust the parser. Anything else is a
    ``ValueError``, which the views answer with a 422."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = json.loads(s, parse_constant=_no_constants, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        _refuse_nul(value)
        return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _refuse_nul(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("NUL characters are not allowed")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class UploadRequest(Request):
    """Multipart file parts go straight to a temp file on disk under var/tmp, never to memory.
    Each is removed when the request ends, whether the upload was stored, refused, or cut
    off halfway (`staged`, closed by `create_app`'s teardown)."""

    staged: list[IO[bytes]] | None = None

    def _get_file_stream(
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:  # fmt: skip
        from flask import current_app

        tmp_dir = current_app.extensions["faktry"].settings.tmp_dir
        staged = tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="upload-")  # noqa: SIM115
        self.staged = [*(self.staged or []), staged]
        return staged


def create_app(settings: Settings | None = None, *, sender: Sender | None = None) -> Flask:
    from web import errors, guard
    from web.api import blueprint as api

    settings = (settings or Settings.from_env()).ensure_secret_key()
    # Fail at start, not on the first purchase, when the billing settings do not parse.
    packs_from_json(settings.credit_packs)
    price_tiers_from_json(settings.stripe_price_tiers)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__)
    app.request_class = UploadRequest
    app.json = StrictJSON(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure everywhere but plain http on loopback (see Settings.cookies_secure).
        SESSION_COOKIE_SECURE=settings.cookies_secure,
        SESSION_COOKIE_NAME="faktry_session",
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    redis_url, embedded = resolve_url(settings)
    engine = make_engine(settings.resolved_database_url, app_role=settings.database_app_role)
    sessions = make_sessionmaker(engine)
    # The web's own Redis calls take a millisecond: one that hangs becomes a 503 in seconds
    # (see web/errors.py) instead of holding the request, and its worker thread, for good.
    web_redis = redis_client(
        redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    tiers = TierCache()  # one per process: submits and admission see a tier change together
    if sender is None:
        from workers.broker import make_broker, make_sender

        sender = make_sender(settings, make_broker(settings, redis_url), redis_url, sessions, tiers)
    elif isinstance(sender, AdmittingSender):
        sender.tiers = tiers
    _kick_webhooks(sessions, sender)
    app.extensions["faktry"] = Services(
        settings=settings,
        sessions=sessions,
        storage=storage_from_settings(settings),
        sender=sender,
        key_cache=KeyCache(settings.api_key_cache_seconds),
        ratelimiter=RateLimiter(web_redis, settings.redis_namespace),
        metrics=Metrics(web_redis, settings.redis_namespace),
        redis=web_redis,
        policy=Policy(
            routing=RoutingLimits(settings.large_input_bytes, settings.large_input_seconds),
            prices=PriceList.from_json(settings.prices),
            catalog=default_catalog(),
            configured=configured_providers(settings),
            tiers=tiers,
        ),
        moderator=_moderator(settings),
        embedded_redis=embedded,
        uploads=UploadSlots.from_settings(settings),
    )
    errors.register(app)
    # First of all: a body's size, and its pace, are checked before any other work.
    guard.install(app, settings)
    # An event stream's connection leaves gunicorn for the streams' hub (web/streams.py).
    from web.streams import HandOff

    app.wsgi_app = HandOff(app.wsgi_app)  # type: ignore[method-assign]
    from web import ratelimits, submits

    ratelimits.install(app)
    app.register_blueprint(api)
    from web import pages
    from web.pages import docs

    docs.install(app)  # before page_headers, whose page policy it amends
    app.register_blueprint(pages.blueprint)
    app.after_request(pages.page_headers)
    # The pages' settings are checked at start, like the billing settings above.
    pages.consent.parse(settings.analytics_snippets)
    from web import metrics as metrics_view

    app.register_blueprint(metrics_view.blueprint)

    @app.before_request
    def _refuse_nul_characters() -> None:
        # No id or parameter contains NUL; PostgreSQL cannot even compare with one.
        if "\x00" in request.path:
            raise NotFound("not found", code="not_found")
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise ValidationError("NUL characters are not allowed", field=name)
        for header in ("Idempotency-Key", "X-CSRF-Token", "Authorization"):
            if "\x00" in request.headers.get(header, ""):
                raise ValidationError("NUL characters are not allowed", field=header)

    @app.after_request
    def _commit(response: Any) -> Any:
        # Writes a view left uncommitted (a key's last-used stamp) commit with the request.
        sess = g.get("db")
        if sess is not None and response.status_code < 400:
            sess.commit()
        return response

    @app.teardown_request
    def _remove_staged_uploads(exc: BaseException | None) -> None:
        for staged in getattr(request, "staged", None) or []:
            with contextlib.suppress(OSError):
                staged.close()  # a NamedTemporaryFile: closing removes it

    @app.teardown_appcontext
    def _close(exc: BaseException | None) -> None:
        sess = g.pop("db", None)
        try:
            if sess is not None:
                if exc is not None:
                    sess.rollback()
                sess.close()
        finally:  # even when the connection is gone: a request's turn to write alone ends here
            submits.release()

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    return app


def _kick_webhooks(sessions: sessionmaker[Session], sender: Sender) -> None:
    """Webhook messages and mails a request wrote start going out once it commits
    (pipelines/webhooks, pipelines/mail); without a broker to send them on, the scheduler's
    sweep sends them."""
    from pipelines.mail import outbox as mail_outbox
    from pipelines.webhooks import outbox

    broker_sender = getattr(sender, "broker_sender", sender)
    broker = getattr(broker_sender, "broker", None)
    if broker is not None:
        from workers.actors import mail
        from workers.actors.webhooks import kicker

        outbox.install(sessions, kicker(broker))
        mail_outbox.install(sessions, mail.kicker(broker))


def _moderator(settings: Settings) -> Moderator:
    remote = None
    if settings.openai_api_key:
        from pipelines.providers.openai import OpenAIProvider

        openai_ = OpenAIProvider(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.moderation_timeout,
            max_retries=0,
        )
        remote = openai_.moderate
    return Moderator(
        borderline=settings.moderation_borderline, block=settings.moderation_block, remote=remote
    )


def services() -> Services:
    from flask import current_app

    return current_app.extensions["faktry"]
