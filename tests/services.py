"""Real services for the tests: this machine's PostgreSQL and Redis.

Each test run gets its own PostgreSQL database (created and dropped) and its own Redis
key namespace, so runs that share the machine never see each other. A missing service
skips the tests that need it, except under CI=true, where it fails them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("FAKTRY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FAKTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    message = f"{what} is not available"
    if in_ci():
        pytest.fail(message + " (CI=true: every service must be up)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_available() -> bool:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except (redis.RedisError, OSError):
        return False


def clear_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch = []
        for key in client.scan_iter(match=f"{namespace}*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this run; dropped afterwards."""
    name = f"faktry_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        missing(f"PostgreSQL ({exc.__class__.__name__})")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


RABBITMQ_HOST = os.environ.get("FAKTRY_TEST_RABBITMQ_HOST", "127.0.0.1")


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """An AMQP URL on a new, empty virtual host of this machine's RabbitMQ; deleted afterwards."""
    import shutil
    import subprocess

    ctl = shutil.which("rabbitmqctl")
    try:
        socket.create_connection((RABBITMQ_HOST, 5672), timeout=1).close()
    except OSError:
        missing("RabbitMQ")
    if ctl is None:
        missing("rabbitmqctl (to make a virtual host for the test)")
    vhost = f"faktry-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield f"amqp://guest:guest@{RABBITMQ_HOST}:5672/{vhost}"
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@contextmanager
def db_session(url: str) -> Iterator[Any]:
    """One transaction on a database of its own client, whose connections close afterwards
    (an engine left to the garbage collector keeps its connection open until then)."""
    from faktry.db import make_engine, make_sessionmaker, transaction

    engine = make_engine(url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()
