"""Requests that only read take no write lock on SQLite: they are answered while a writer
holds the database, and an API key's last-use stamp is still written."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from faktry.db import transaction
from faktry.tenancy import ApiKey


def test_a_read_is_answered_while_a_writer_holds_the_lock(client, make_tenant, settings):
    if not settings.resolved_database_url.startswith("sqlite"):
        pytest.skip("the write lock is SQLite's")
    tenant = make_tenant("studio", credits=1)
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200  # the key is known
    writer = sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        for path in ("/v1/jobs", "/v1/account", "/v1/files"):
            r = client.get(path, headers=tenant.headers)
            assert r.status_code == 200, (path, r.json)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_read_still_stamps_the_key_it_used(client, make_tenant, runtime):
    tenant = make_tenant("studio", credits=1)
    assert client.get("/v1/jobs", headers=tenant.headers).status_code == 200
    with transaction(runtime.context.sessions) as s:
        stamp = s.scalar(select(ApiKey.last_used_at).where(ApiKey.tenant_id == tenant.id))
    assert stamp is not None
