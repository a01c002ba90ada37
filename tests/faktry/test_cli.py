"""The ``faktry`` command line: migrations, tenants and keys."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from faktry.cli import main
from faktry.tenancy import ApiKey, User
from tests import services as svc


@pytest.fixture
def run(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FAKTRY_DATABASE_URL", url)
    monkeypatch.setenv("FAKTRY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("FAKTRY_BCRYPT_ROUNDS", "4")
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    invoke("db", "upgrade")
    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def _key(output: str) -> str:
    match = re.search(r"API key \(shown once\): (fk_live_\w+)", output)
    assert match, output
    return match.group(1)


def test_tenants_create_prints_a_key_once_and_stores_only_its_hash(run):
    out = run("tenants", "create", "--email", "Owner@Example.com", "--tier", "studio", "--admin")
    key = _key(out)
    with svc.db_session(run.url) as s:
        user = s.scalars(select(User)).one()
        assert user.email == "owner@example.com" and user.is_staff
        [row] = s.scalars(select(ApiKey)).all()
        assert key not in (row.key_hash, row.prefix) and key.startswith(row.prefix)


def test_keys_create_list_and_revoke(run):
    run("tenants", "create", "--email", "a@example.com")
    second = _key(run("keys", "create", "--email", "a@example.com", "--name", "ci"))
    listing = run("keys", "list", "--email", "a@example.com")
    assert listing.count("active") == 2 and second not in listing
    key_id = re.search(r"^(key_\w+) +" + re.escape(second[:16]), listing, re.M).group(1)
    run("keys", "revoke", key_id)
    assert run("keys", "list", "--email", "a@example.com").count("revoked") == 1


def test_a_second_tenant_with_the_same_email_is_refused(run):
    run("tenants", "create", "--email", "a@example.com")
    result = CliRunner().invoke(main, ["tenants", "create", "--email", "A@example.com"])
    assert result.exit_code != 0


def test_credits_grant_writes_a_lot_and_the_checks_pass_then_catch_corruption(run, tmp_path, monkeypatch):
    from sqlalchemy import update

    from quotas.models import Account, CreditLot, LedgerEntry

    monkeypatch.setenv("FAKTRY_STORAGE_URL", f"file:{tmp_path / 'storage'}")
    run("tenants", "create", "--email", "a@example.com")
    out = run(
        "credits",
        "grant",
        "--email",
        "a@example.com",
        "--credits",
        "12.5",
        "--reason",
        "launch",
        "--key",
        "k1",
    )
    assert "granted 12500 millicredits" in out
    assert "already granted" in run(
        "credits", "grant", "--email", "a@example.com", "--credits", "12.5", "--key", "k1"
    )
    assert "ledger clean" in run("ledger", "check")
    assert "storage usage exact" in run("storage", "check")
    with svc.db_session(run.url) as s:
        [entry] = s.scalars(select(LedgerEntry)).all()
        assert (entry.kind, entry.available, entry.memo) == ("grant", 12500, "launch")
        s.execute(update(CreditLot).values(remaining=CreditLot.remaining - 1))
        s.execute(update(Account).values(storage_used_bytes=5))
    ledger = CliRunner().invoke(main, ["ledger", "check"])
    assert ledger.exit_code == 1 and "remaining" in ledger.output
    usage = CliRunner().invoke(main, ["storage", "check"])
    assert usage.exit_code == 1 and "storage used 5" in usage.output
