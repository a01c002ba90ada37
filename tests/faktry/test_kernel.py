"""Kernel rules that the whole code base must keep."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from faktry import clock
from faktry.config import Settings
from faktry.db import Base, make_engine
from pipelines.routing import RoutingLimits, route

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["faktry", "web", "workers", "pipelines", "quotas", "storage"]


def test_no_code_reads_the_wall_clock_except_the_kernel_clock():
    pattern = re.compile(r"datetime\.(now|utcnow|today)\(|time\.time\(|date\.today\(")
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "faktry" / "clock.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_clock_can_be_frozen_and_moved():
    at = datetime(2027, 1, 1, tzinfo=UTC)
    clock.freeze(at)
    assert clock.now() == at
    clock.advance(timedelta(days=365))
    assert clock.now() == at + timedelta(days=365)
    clock.reset()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_migrations_create_exactly_the_models_tables(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_settings_come_from_faktry_variables_and_refuse_bad_values():
    s = Settings.from_env({"FAKTRY_PORT": "9000", "FAKTRY_SECURE_COOKIES": "true", "OTHER": "x"})
    assert s.port == 9000 and s.secure_cookies is True
    assert Settings.from_env(s.to_env()) == s
    with pytest.raises(ValueError, match="FAKTRY_PORT"):
        Settings.from_env({"FAKTRY_PORT": "eighty"})
    with pytest.raises(ValueError, match="HEARTBEAT"):
        Settings(broker_heartbeat_ms=1000, job_lease_seconds=15)
    with pytest.raises(ValueError, match="FAKTRY_UPLOAD_CHUNK_BYTES"):
        Settings(upload_chunk_bytes=1000)
    # A direct upload's part URLs live as long as the upload; S3 presigns seven days at most.
    with pytest.raises(ValueError, match="at most 168 on S3"):
        Settings(storage_url="s3://bucket/media", upload_expiry_hours=200)
    assert Settings(upload_expiry_hours=200).upload_expiry_hours == 200  # local storage: any


def test_the_zero_setup_default_lives_under_var():
    s = Settings(var_dir=Path("/srv/f/var"))
    assert s.resolved_database_url == "sqlite:////srv/f/var/faktry.db"
    assert s.resolved_storage_url == "file:/srv/f/var/storage"
    assert s.embedded_redis


@pytest.mark.parametrize(
    ("size", "seconds", "queue"),
    [
        (10, 5.0, "local.small"),
        (10, None, "local.small"),
        (10**9, 5.0, "local.large"),
        (10, 3600.0, "local.large"),
    ],
)
def test_jobs_are_routed_by_input_size_and_duration(size, seconds, queue):
    limits = RoutingLimits(large_input_bytes=200 * 1024**2, large_input_seconds=600)
    assert route(provider="local", input_bytes=size, input_seconds=seconds, limits=limits) == queue
