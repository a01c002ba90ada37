"""The ``faktry`` command line: run the platform, migrate, manage tenants and keys.

faktry up [--host H] [--port P]  zero-setup: migrate, start web + workers + scheduler
faktry db upgrade             apply migrations
faktry tenants create --email E [--tier T] [--admin]
faktry keys create|list|revoke
faktry mail list|show ID|policy-change --effective YYYY-MM-DD --summary TEXT
faktry web | worker | scheduler
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import click
from sqlalchemy import select

from faktry import clock, migrate
from faktry.config import PREFIX, Settings
from faktry.db import make_engine, make_sessionmaker, transaction
from faktry.logs import configure as configure_logging
from faktry.tenancy import ApiKey, User, create_api_key, create_tenant, normalize_email, revoke_api_key

DEMO_EMAIL = "demo@faktry.local"
log = logging.getLogger("faktry.scheduler")


def _settings() -> Settings:
    clock.configure_from_env()
    settings = Settings.from_env()
    configure_logging(settings)
    return settings


def _sessions(settings: Settings) -> Any:
    engine = make_engine(settings.resolved_database_url, app_role=settings.database_app_role)
    return make_sessionmaker(engine)


def _prepare_var(settings: Settings) -> None:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)


@click.group()
def main() -> None:
    """faktry: media jobs on queues, for many tenants."""


# -- database ------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    settings = _settings()
    _prepare_var(settings)
    migrate.upgrade(settings.resolved_database_url, revision, app_role=settings.database_app_role)
    click.echo(f"database at {revision}")


# -- tenants and keys ------------------------------------------------------------------------


@main.group()
def tenants() -> None:
    """Accounts."""


@tenants.command("create")
@click.option("--email", required=True)
@click.option("--tier", default="free", show_default=True)
@click.option("--admin", is_flag=True, help="Make the owner an operator (staff).")
@click.option("--password", default=None, help="Set a password for web log-in.")
def tenants_create(email: str, tier: str, admin: bool, password: str | None) -> None:
    """Create a tenant and its owner; prints the tenant's first API key, once."""
    settings = _settings()
    with transaction(_sessions(settings)) as session:
        tenant, user = create_tenant(
            session,
            email=email,
            tier=tier,
            is_staff=admin,
            password=password,
            bcrypt_rounds=settings.bcrypt_rounds,
        )
        _, plain = create_api_key(
            session,
            tenant_id=tenant.id,
            user_id=user.id,
            name="default",
            bcrypt_rounds=settings.bcrypt_rounds,
        )
    click.echo(f"tenant {tenant.id} ({tier}{', admin' if admin else ''}) for {user.email}")
    click.echo(f"API key (shown once): {plain}")


@main.group()
def keys() -> None:
    """API keys."""


def _owner(session: Any, email: str) -> User:
    user = session.scalars(select(User).where(User.email == normalize_email(email))).first()
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user


@keys.command("create")
@click.option("--email", required=True, help="The user the key acts for.")
@click.option("--name", default="")
def keys_create(email: str, name: str) -> None:
    settings = _settings()
    with transaction(_sessions(settings)) as session:
        user = _owner(session, email)
        key, plain = create_api_key(
            session,
            tenant_id=user.tenant_id,
            user_id=user.id,
            name=name,
            bcrypt_rounds=settings.bcrypt_rounds,
        )
    click.echo(f"{key.id} {key.prefix}…")
    click.echo(f"API key (shown once): {plain}")


@keys.command("list")
@click.option("--email", required=True)
def keys_list(email: str) -> None:
    settings = _settings()
    with transaction(_sessions(settings)) as session:
        user = _owner(session, email)
        rows = session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == user.tenant_id).order_by(ApiKey.created_at)
        ).all()
        for k in rows:
            state = "revoked" if k.revoked_at else "active"
            used = k.last_used_at.isoformat() if k.last_used_at else "never"
            click.echo(f"{k.id}  {k.prefix}…  {state:8}  last used {used}  {k.name}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    settings = _settings()
    with transaction(_sessions(settings)) as session:
        key = revoke_api_key(session, key_id)
    click.echo(f"revoked {key.id} ({key.prefix}…)")


# -- credits and checks ------------------------------------------------------------------------


@main.group()
def credits() -> None:
    """Prepaid credits."""


@credits.command("grant")
@click.option("--email", required=True, help="A user of the tenant to credit.")
@click.option(
    "--credits", "amount", required=True, type=float, help="Credits (1 credit = 1000 millicredits)."
)
@click.option("--reason", default="operator grant", show_default=True)
@click.option("--key", default=None, help="Idempotency key: the same key grants once (default: a new one).")
def credits_grant(email: str, amount: float, reason: str, key: str | None) -> None:
    """Grant credits as a new lot (expires in a year), recorded in the ledger."""
    from faktry.errors import FaktryError
    from quotas import ledger

    settings = _settings()
    try:
        with transaction(_sessions(settings)) as session:
            user = _owner(session, email)
            lot = ledger.grant(session, user.tenant_id, amount, reason, key=key)
    except FaktryError as err:
        raise click.ClickException(err.message) from None
    if lot is None:
        click.echo("already granted (same --key); nothing changed")
    else:
        click.echo(
            f"granted {lot.amount} millicredits to {email} as {lot.id}, expiring {lot.expires_at:%Y-%m-%d}"
        )


@main.group()
def ledger() -> None:
    """The credit ledger."""


@ledger.command("check")
@click.option("--email", default=None, help="Check one tenant only.")
def ledger_check(email: str | None) -> None:
    """Prove every balance equals what the ledger says; exits 1 on any discrepancy."""
    from quotas import ledger as quota_ledger

    settings = _settings()
    with transaction(_sessions(settings)) as session:
        tenant_id = _owner(session, email).tenant_id if email else None
        problems = quota_ledger.check(session, tenant_id)
    for p in problems:
        click.echo(f"{p.tenant_id}: {p.what}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("ledger clean")


@main.group()
def storage() -> None:
    """Stored files."""


@storage.command("check")
@click.option("--email", default=None, help="Check one tenant only.")
def storage_check(email: str | None) -> None:
    """Recompute each tenant's storage use from its files and from storage; exits 1 on any discrepancy."""
    from pipelines.checks import storage_usage

    settings = _settings()
    with transaction(_sessions(settings)) as session:
        tenant_id = _owner(session, email).tenant_id if email else None
        problems = storage_usage(session, _storage(settings), tenant_id=tenant_id)
    for p in problems:
        click.echo(f"{p.tenant_id}: {p.what}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo("storage usage exact")


@main.group()
def mail() -> None:
    """The mail outbox: read what was sent or kept, send a policy-change notice."""


@mail.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--to", "to", default=None, help="Only mails to this address.")
def mail_list(limit: int, to: str | None) -> None:
    """The latest mails, newest first: id, status, how they left, address, subject."""
    from pipelines.mail.models import MailMessage

    settings = _settings()
    stmt = select(MailMessage).order_by(MailMessage.created_at.desc(), MailMessage.id.desc()).limit(limit)
    if to:
        stmt = stmt.where(MailMessage.to_address == normalize_email(to))
    with transaction(_sessions(settings)) as session:
        for m in session.scalars(stmt):
            click.echo(
                f"{m.id}  {m.created_at:%Y-%m-%d %H:%M}  {m.status:<7}  {m.transport or '-':<4}  "
                f"{m.to_address}  {m.subject}"
            )


@mail.command("show")
@click.argument("message_id")
@click.option("--html", is_flag=True, help="Print the HTML body instead of the text.")
def mail_show(message_id: str, html: bool) -> None:
    """One mail in full: its headers, status and text (links included)."""
    from pipelines.mail.models import MailMessage

    settings = _settings()
    with transaction(_sessions(settings)) as session:
        m = session.get(MailMessage, message_id)
        if m is None:
            raise click.ClickException(f"no mail {message_id}")
        click.echo(f"To: {m.to_address}\nSubject: {m.subject}\nKind: {m.kind}")
        click.echo(f"Status: {m.status} ({m.transport or 'not sent'}), attempts: {m.attempts}")
        if m.last_error:
            click.echo(f"Last error: {m.last_error}")
        click.echo("")
        click.echo(m.html_body if html else m.text_body)


@mail.command("policy-change")
@click.option("--effective", required=True, help="YYYY-MM-DD, at least 30 days from today.")
@click.option("--summary", required=True, help="What changes, in a sentence or two.")
def mail_policy_change(effective: str, summary: str) -> None:
    """Tell every person of every active account that the privacy policy changes on
    EFFECTIVE. Refuses a date less than 30 days ahead; running it again for the same date
    queues nothing new. The scheduler sends the mails."""
    from datetime import date

    from pipelines.mail import notices

    settings = _settings()
    try:
        day = date.fromisoformat(effective)
    except ValueError:
        raise click.BadParameter("a date like 2027-03-01", param_hint="--effective") from None
    try:
        with transaction(_sessions(settings)) as session:
            queued = notices.policy_change(session, notices.Links.from_settings(settings), day, summary)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{queued} policy-change mails queued for {day.isoformat()}")


def _storage(settings: Settings) -> Any:
    from storage import from_settings

    return from_settings(settings)


# -- processes ----------------------------------------------------------------------------------


def _child_env(settings: Settings, redis_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.to_env())
    if redis_url:
        env["FAKTRY_REDIS_URL"] = redis_url
    # Dramatiq reads its idle poll interval from the environment when it is imported.
    env["dramatiq_worker_timeout"] = str(settings.worker_timeout_ms)
    return env


def worker_command(
    settings: Settings,
    queues: tuple[str, ...] = (),
    processes: int = 0,
    threads: int = 0,
    *,
    kind: str = "all",
) -> list[str]:
    """``faktry worker`` as a child command, its shape resolved now (what `faktry up` runs)."""
    _, queues, processes, threads = _worker_shape(settings, kind, queues, processes, threads)
    cmd = [
        sys.executable, "-m", "faktry.cli", "worker", "--kind", kind,
        "--processes", str(processes), "--threads", str(threads),
    ]  # fmt: skip
    if kind == "all" or queues != KINDS[kind][0]:
        for queue in queues:
            cmd += ["--queues", queue]
    return cmd


def worker_process_command(queues: tuple[str, ...], threads: int) -> list[str]:
    """One worker process (`workers.process`); `faktry worker` keeps N of them running."""
    cmd = [sys.executable, "-m", "workers.process", "--threads", str(threads)]
    if queues:
        cmd += ["--queues", *queues]
    return cmd


def web_command(settings: Settings) -> list[str]:
    """gunicorn's threaded workers, safe to face clients with no proxy in front: request
    headers have a deadline (web/server.py), bodies are read against the clock and uploads
    take at most half a process's threads (web/guard.py), so there are at least two;
    kept-alive connections wait in gunicorn's poller, not in a thread. docs/operations.md
    shows the proxy to put in front anyway."""
    return [
        sys.executable, "-m", "gunicorn", "web.wsgi:app",
        "--bind", f"{settings.host}:{settings.port}",
        "--workers", str(settings.web_workers),
        "--worker-class", "web.server.ThreadWorker",
        "--threads", str(max(2, settings.web_threads)),
        "--timeout", "120",
        "--graceful-timeout", "30",
        "--keep-alive", str(settings.web_keepalive_seconds),
        "--access-logfile", "-",
    ]  # fmt: skip


def scheduler_command() -> list[str]:
    return [sys.executable, "-m", "faktry.cli", "scheduler"]


@main.command()
def web() -> None:
    """Serve the HTTP API with gunicorn."""
    settings = _settings()
    os.execvpe(sys.executable, web_command(settings), _child_env(settings, None))


#: Worker kinds: media work is CPU-bound (a process per core, one thread each); AI work waits
#: on providers (few processes, many threads). The ai kind also delivers webhooks, builds
#: export archives and sends mail: all mostly wait on the network or on storage.
KINDS = {
    "media": (("local.small", "local.large"), 0, 1),
    "ai": (
        (
            "openai.small", "openai.large", "fal.small", "fal.large", "bfl.small", "bfl.large",
            "webhooks", "exports", "mail",
        ),
        2,
        16,
    ),
}  # fmt: skip


def _worker_shape(
    settings: Settings, kind: str, queues: tuple[str, ...], processes: int, threads: int
) -> tuple[str, tuple[str, ...], int, int]:
    """A worker's name, queues, processes and threads: what was asked, else its kind's, else
    the settings' (one process per core by default)."""
    name = "worker"
    if kind != "all":
        kind_queues, kind_processes, kind_threads = KINDS[kind]
        name = f"worker-{kind}"
        queues = queues or kind_queues
        processes = processes or kind_processes
        threads = threads or kind_threads
    processes = processes or settings.worker_processes or os.cpu_count() or 1
    return name, tuple(queues), processes, threads or settings.worker_threads


def _restart_counter(settings: Settings, redis_url: str | None = None) -> Callable[[str], None]:
    """Counts a supervisor's restarts as ``faktry_process_restarts_total``."""
    return _metrics(settings, redis_url).process_restart


def _metrics(settings: Settings, redis_url: str | None = None) -> Any:
    """Counters in Redis, without starting the embedded Redis: a supervisor or a scheduler
    must keep going (and keep its counts in-process) while Redis is away."""
    from faktry.redisconn import client, socket_path
    from pipelines.metrics import Metrics

    url = redis_url or settings.redis_url or f"unix://{socket_path(settings.var_dir)}"
    return Metrics(client(url, socket_connect_timeout=2, socket_timeout=5), settings.redis_namespace)


@main.command()
@click.option(
    "--kind",
    type=click.Choice(["all", *KINDS]),
    default="all",
    show_default=True,
    help="media: local queues, a process per core; ai: provider queues, many threads.",
)
@click.option("--queues", "-Q", multiple=True, help="Queues to consume (overrides --kind's).")
@click.option("--processes", "-p", type=int, default=0, help="Default: by kind (one per core for media).")
@click.option("--threads", "-t", type=int, default=0)
def worker(kind: str, queues: tuple[str, ...], processes: int, threads: int) -> None:
    """Run worker processes for the job queues, each started again when it dies."""
    from faktry.supervise import Child, Supervisor

    settings = _settings()
    name, queues, processes, threads = _worker_shape(settings, kind, queues, processes, threads)
    env = _child_env(settings, None)
    command = worker_process_command(queues, threads)
    Supervisor(
        [Child(f"{name}.{i}", command, env) for i in range(1, processes + 1)],
        on_restart=_restart_counter(settings),
        # A worker process enforces its own shutdown bound; this is the backstop.
        grace=settings.worker_shutdown_seconds + 10,
    ).run()


def dependency_of(exc: BaseException) -> str:
    """Which dependency an error came from, as ``faktry_dependency_errors_total`` names it."""
    import dramatiq.errors
    import redis
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return "database"
    if isinstance(exc, redis.RedisError):
        return "redis"
    if isinstance(exc, dramatiq.errors.BrokerConnectionError):
        return "broker"
    return "other"


class SchedulerLoop:
    """The scheduler's passes: the reconciler, admission's resync, then the webhook, export
    archive and mail sweeps.

    `run_once` never raises. A pass that fails (the database, Redis or the broker is away) is
    logged, counted as ``faktry_dependency_errors_total{process="scheduler"}`` and tried
    again after `delay`: half a second doubling per failure, capped at the sweep interval or
    30 s, whichever is shorter. What the passes need (broker, sender, engine, storage) is
    built on the first pass, so a scheduler started while Redis is down waits for it too.
    """

    RETRY_FIRST = 0.5
    RETRY_CAP = 30.0

    def __init__(self, settings: Settings, metrics: Any | None = None) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else _metrics(settings)
        self.failures = 0  # in a row, up to the last pass
        self.passes = 0  # that went through
        self._wiring: tuple[Any, Any, Any, str] | None = None

    def run_once(self) -> bool:
        """One pass; True when it went through."""
        from pipelines.reconcile import reconcile

        try:
            sessions, sender, store, redis_url = self._wired()
            reconcile(sessions, sender, store, self.settings)
            _resync_admission(self.settings, sender, redis_url)
            sweep_webhooks(self.settings, sessions, sender)
            sweep_exports(self.settings, sessions, sender)
            sweep_mail(self.settings, sessions, sender)
        except Exception as exc:
            self.failures += 1
            dependency = dependency_of(exc)
            if dependency == "other":
                log.exception("scheduler pass failed; next try in %.1f s", self.delay())
            else:
                log.warning(
                    "scheduler pass failed, %s unavailable (%s: %s); next try in %.1f s",
                    dependency, type(exc).__name__, exc, self.delay(),
                )  # fmt: skip
            self.metrics.dependency_error("scheduler", dependency)
            return False
        if self.failures:
            log.info("scheduler pass went through after %d failed", self.failures)
            self.metrics.flush()  # what was counted while Redis was away
        self.failures = 0
        self.passes += 1
        return True

    def delay(self) -> float:
        """Seconds until the next pass."""
        interval = self.settings.sweep_interval_seconds
        if not self.failures:
            return interval
        backoff = self.RETRY_FIRST * 2 ** min(self.failures - 1, 16)
        return min(backoff, interval, self.RETRY_CAP)

    def close(self) -> None:
        """Close the database connections the passes opened."""
        if self._wiring is not None:
            self._wiring[0].kw["bind"].dispose()

    def _wired(self) -> tuple[Any, Any, Any, str]:
        if self._wiring is None:
            from faktry.redisconn import resolve_url
            from workers.broker import make_broker, make_sender

            redis_url, _ = resolve_url(self.settings)
            sessions = _sessions(self.settings)
            sender = make_sender(self.settings, make_broker(self.settings, redis_url), redis_url, sessions)
            self._wiring = (sessions, sender, _storage(self.settings), redis_url)
        return self._wiring


def run_scheduler(loop: SchedulerLoop, *, once: bool = False, stopped: Callable[[], bool]) -> bool:
    """Run passes until `stopped()` (after one pass with `once`); returns whether the last
    pass went through."""
    while True:
        ok = loop.run_once()
        if once or stopped():
            return ok
        deadline = time.monotonic() + loop.delay()
        while not stopped() and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopped():
            return ok


@main.command()
@click.option("--once", is_flag=True, help="Run one pass and exit (status 1 if it failed).")
def scheduler(once: bool) -> None:
    """Run the periodic sweeps (the reconciler). Safe to run more than once at a time."""
    loop = SchedulerLoop(_settings())
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not run_scheduler(loop, once=once, stopped=lambda: stop) and once:
        raise SystemExit(1)


def sweep_webhooks(settings: Settings, sessions: Any, sender: Any) -> int:
    """Send a delivery for every webhook message due (retries, and those whose after-commit
    send was lost), a fair share from each tenant, and forget what the delivery log no
    longer keeps; returns how many were sent."""
    from pipelines.webhooks import delivery
    from workers.actors.webhooks import send

    due = delivery.due(sessions, delivery.Policy.from_settings(settings))
    if due:
        send(getattr(sender, "broker_sender", sender).broker, due)
    delivery.prune(sessions, settings.webhook_log_seconds)
    return len(due)


def sweep_exports(settings: Settings, sessions: Any, sender: Any) -> int:
    """Send a build for every export archive whose message was lost, whose failed build waits
    for another start, or whose build went silent; returns how many were sent."""
    from pipelines.exports import store
    from workers.actors.exports import send

    due = store.due(sessions, store.Policy.from_settings(settings))
    if due:
        send(getattr(sender, "broker_sender", sender).broker, due)
    return len(due)


def sweep_mail(settings: Settings, sessions: Any, sender: Any) -> int:
    """Send every mail due: those whose after-commit send was lost, and retries after a
    refusal; forget what the outbox no longer keeps; returns how many were sent."""
    from pipelines.mail import sender as mail_sender
    from workers.actors.mail import send

    due = mail_sender.due(sessions, mail_sender.Policy.from_settings(settings))
    if due:
        send(getattr(sender, "broker_sender", sender).broker, due)
    mail_sender.prune(sessions, settings.mail_log_seconds)
    return len(due)


def _resync_admission(settings: Settings, sender: Any, redis_url: str) -> None:
    """Keep fair admission's count of admitted-and-waiting messages true to what the broker
    holds (it can drift when a process dies between two steps). Redis broker only."""
    from faktry.redisconn import client
    from pipelines.admission import AdmittingSender
    from workers.queues import stats

    if not isinstance(sender, AdmittingSender) or settings.broker_url.startswith("amqp"):
        return
    for row in stats(client(redis_url), settings.redis_namespace, sender.queues):
        sender.admission.resync(row.queue, row.depth)


#: Starter credits of a new sign-up on ``faktry up`` (unless FAKTRY_SIGNUP_CREDITS is set):
#: enough for a first few jobs on a laptop; ``faktry web`` keeps the deployment's setting.
UP_SIGNUP_CREDITS = 20
#: How long ``faktry up`` waits for the web server to answer before saying it has not.
UP_WAIT_SECONDS = 120.0


def up_settings(
    settings: Settings, environ: Mapping[str, str], *, host: str | None = None, port: int | None = None
) -> Settings:
    """The settings of ``faktry up``: ``--host``/``--port`` win; sign-ups get
    `UP_SIGNUP_CREDITS` and, with no Stripe key, payments run in test mode, each unless its
    variable says otherwise."""
    changes: dict[str, Any] = {}
    if host:
        changes["host"] = host
    if port:
        changes["port"] = port
    if PREFIX + "SIGNUP_CREDITS" not in environ:
        changes["signup_credits"] = UP_SIGNUP_CREDITS
    if PREFIX + "PAYMENTS_TEST_MODE" not in environ and not settings.stripe_secret_key:
        changes["payments_test_mode"] = True
    return settings.replace(**changes)


def port_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on ``host:port`` (busy, or not an address of this
    machine), or None when it can. Binds the way gunicorn does (SO_REUSEADDR), then lets go."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is busy: another program listens on it"
        return f"cannot listen on {host}:{port}: {err.strerror or err}"


def health_url(settings: Settings) -> str:
    """Where ``faktry up`` asks whether the web server answers: its own bind address (a
    wildcard address is asked on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/healthz"


def wait_until_answering(url: str, *, timeout: float, stopped: Callable[[], bool]) -> bool:
    """Ask ``url`` until it answers 200 (True), ``timeout`` passes or `stopped()` (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopped():
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (our own http URL)
                if answer.status == 200:
                    return True
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return False


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: FAKTRY_HOST, else 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: FAKTRY_PORT, else 8000)."
)
def up(host: str | None, port: int | None) -> None:
    """Zero-setup: migrate, start the web server, workers and scheduler; print the URL once the
    web server answers. Exits at once, starting nothing, when the port is busy."""
    from faktry.redisconn import resolve_url
    from faktry.supervise import Child, Supervisor

    settings = up_settings(_settings(), os.environ, host=host, port=port)
    problem = port_problem(settings.host, settings.port)
    if problem is not None:
        raise click.ClickException(f"{problem}; stop it, or choose another port with --port")
    _prepare_var(settings)
    migrate.upgrade(settings.resolved_database_url, app_role=settings.database_app_role)
    settings = settings.ensure_secret_key()
    redis_url, embedded = resolve_url(settings)
    demo = _demo_account(settings)
    env = _child_env(settings, redis_url)
    media = worker_command(settings, kind="media", threads=settings.worker_threads)
    supervisor = Supervisor(
        [
            Child("web", web_command(settings), env),
            Child("worker-media", media, env),
            Child("worker-ai", worker_command(settings, kind="ai", processes=1, threads=8), env),
            Child("scheduler", scheduler_command(), env),
        ],
        on_restart=_restart_counter(settings, redis_url),
        # Longer than a worker's own bound, so `faktry worker` stops its processes itself.
        grace=max(40.0, settings.worker_shutdown_seconds + 20),
    )
    stopping = threading.Event()
    announcer = threading.Thread(
        target=_announce, args=(settings, demo, stopping), name="faktry-up-announce", daemon=True
    )
    announcer.start()
    try:
        supervisor.run()  # until SIGTERM or Ctrl-C; a process that exits is started again
    finally:
        stopping.set()
        if embedded is not None:
            embedded.stop()


def _announce(settings: Settings, demo: tuple[str, str] | None, stopping: threading.Event) -> None:
    """Say faktry is up once its web server answers, with the demo account on first run."""
    url = health_url(settings)
    if not wait_until_answering(url, timeout=UP_WAIT_SECONDS, stopped=stopping.is_set):
        if not stopping.is_set():
            click.echo(f"faktry: the web server has not answered at {url} yet; see its log above", err=True)
        return
    click.echo(f"faktry is up at {settings.public_url}  (Ctrl-C stops it)")
    extras = []
    if settings.signup_credits:
        extras.append(f"new sign-ups get {settings.signup_credits} credits")
    if settings.payments == "test":
        extras.append("payments run in test mode (no money moves)")
    if extras:
        click.echo("; ".join(extras).capitalize())
    if demo:
        key, password = demo
        click.echo(f"demo account {DEMO_EMAIL}, API key (shown once): {key}")
        click.echo(f"log in at {settings.public_url}/login as {DEMO_EMAIL} with password {password}")
        for name, secret in (("demo-api-key", key), ("demo-password", password)):
            fd = os.open(settings.var_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")


def _demo_account(settings: Settings) -> tuple[str, str] | None:
    """Create the demo tenant on first run; returns its API key and web password then, None
    after. On a single machine its owner is the operator too, so the owner is staff."""
    with transaction(_sessions(settings)) as session:
        if session.scalar(select(User.id).where(User.email == DEMO_EMAIL)) is not None:
            return None
        password = secrets.token_urlsafe(12)
        tenant, user = create_tenant(
            session, email=DEMO_EMAIL, tier="creator", password=password, is_staff=True,
            bcrypt_rounds=settings.bcrypt_rounds,
        )  # fmt: skip
        _, plain = create_api_key(
            session, tenant_id=tenant.id, user_id=user.id, name="demo", bcrypt_rounds=settings.bcrypt_rounds
        )
        if settings.demo_credits > 0:
            from quotas import ledger as quota_ledger
            from quotas.models import MILLI

            quota_ledger.add_credits(
                session, tenant.id, settings.demo_credits * MILLI, source="starter",
                key=f"starter:{tenant.id}", memo="starter credits for the demo account",
            )  # fmt: skip
        return plain, password


if __name__ == "__main__":
    main()
