"""Nobody can tell from faktry's answers whether an email has an account, and a wrong API
key secret cannot make faktry spend bcrypt at will.

bcrypt is counted, never timed: ``bcrypt.checkpw`` and ``bcrypt.hashpw`` are wrapped (the
real ones still run) and each call records the cost it worked at."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bcrypt
import pytest
from sqlalchemy import func, select

from faktry import tenancy
from faktry.tenancy import KEY_PREFIX, Tenant, User, hash_cost
from quotas.models import CreditLot
from tests import services as svc
from web import create_app
from workers.broker import BrokerSender

PASSWORD = "correct horse battery"
#: Not the test default (4), so that a cost taken from anywhere else would show.
ROUNDS = 5


@pytest.fixture
def bcrypt_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The cost of every bcrypt check (``check``) and hash (``hash``) from now on, counted
    where bcrypt itself is called."""
    work: dict[str, list[int]] = {"check": [], "hash": []}
    real_check, real_hash = bcrypt.checkpw, bcrypt.hashpw

    def check(secret: bytes, hashed: bytes) -> bool:
        work["check"].append(hash_cost(hashed.decode()) or -1)
        return real_check(secret, hashed)

    def hash_(secret: bytes, salt: bytes) -> bytes:
        work["hash"].append(hash_cost(salt.decode() + "x") or -1)
        return real_hash(secret, salt)

    monkeypatch.setattr(bcrypt, "checkpw", check)
    monkeypatch.setattr(bcrypt, "hashpw", hash_)
    return work


@pytest.fixture
def new_process(settings: Any, runtime: Any) -> Callable[..., Any]:
    """A test client of a new app (a new web process) on the test's settings, with bcrypt at
    `ROUNDS`, unless overridden."""

    def make(**overrides: Any) -> Any:
        app = create_app(
            settings.replace(**{"bcrypt_rounds": ROUNDS, **overrides}), sender=BrokerSender(runtime.broker)
        )
        app.testing = True
        return app.test_client()

    return make


def _sign_up(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/signup", json={"email": email, "password": password, "confirm_age_16": True})


def _log_in(client: Any, email: str, password: str) -> Any:
    return client.post("/v1/session", json={"email": email, "password": password})


# -- log-in ------------------------------------------------------------------------------------


def test_a_wrong_log_in_costs_one_bcrypt_of_the_configured_cost_whether_or_not_the_account_exists(
    new_process, make_tenant, bcrypt_work
):
    web = new_process()
    assert _sign_up(web, "known@example.com").status_code == 202
    passwordless = make_tenant()  # a person made without a password (an API-only account)
    bcrypt_work["check"].clear()
    for email in ("known@example.com", "nobody@example.com", passwordless.email):
        bcrypt_work["check"].clear()
        r = _log_in(web, email, "not the password")
        assert r.status_code == 401 and r.json["error"]["code"] == "invalid_credentials"
        assert r.json["error"]["message"] == "wrong email or password"
        assert bcrypt_work["check"] == [ROUNDS], email


def test_the_dummy_hash_is_made_once_per_process_at_start_with_the_configured_cost(
    new_process, bcrypt_work, monkeypatch
):
    monkeypatch.setattr(tenancy, "_dummy_hashes", {})  # as in a new process
    web = new_process(bcrypt_rounds=6)
    assert bcrypt_work["hash"] == [6]  # made as the app started
    assert hash_cost(tenancy.dummy_hash(6)) == 6
    assert tenancy.dummy_hash(6) is tenancy.dummy_hash(6)
    for n in range(3):
        assert _log_in(web, f"nobody-{n}@example.com", "whatever it is").status_code == 401
    assert bcrypt_work["hash"] == [6]  # and never again
    assert bcrypt_work["check"] == [6, 6, 6]


def test_a_password_kept_at_another_cost_is_hashed_again_at_log_in(new_process, make_tenant, settings):
    person = make_tenant(password=PASSWORD)  # bcrypt cost 4
    web = new_process()
    assert _log_in(web, person.email, PASSWORD).status_code == 201
    with svc.db_session(settings.resolved_database_url) as s:
        stored = s.scalar(select(User.password_hash).where(User.id == person.user_id))
    assert hash_cost(stored) == ROUNDS
    assert _log_in(new_process(), person.email, PASSWORD).status_code == 201


# -- sign-up -----------------------------------------------------------------------------------


def test_a_sign_up_with_a_taken_email_answers_exactly_like_a_new_one_and_changes_nothing(
    new_process, settings, bcrypt_work
):
    web = new_process(signup_credits=5)
    first = _sign_up(web, "taken@example.com")
    work_first = list(bcrypt_work["hash"])
    bcrypt_work["hash"].clear()
    again = _sign_up(new_process(signup_credits=5), "Taken@Example.com", "another password altogether")
    fresh = _sign_up(new_process(signup_credits=5), "fresh@example.com")

    assert first.status_code == again.status_code == fresh.status_code == 202
    assert first.json == again.json == {"object": "signup", "email": "taken@example.com"}
    assert fresh.json == {"object": "signup", "email": "fresh@example.com"}
    for r in (first, again, fresh):
        assert "Set-Cookie" not in r.headers
        assert sorted(r.headers.keys()) == sorted(first.headers.keys())
    # The same bcrypt work either way: one hash of the configured cost.
    assert work_first == [ROUNDS] and bcrypt_work["hash"] == [ROUNDS, ROUNDS]

    # Nothing was created or changed for the taken address: one account, its own password,
    # its starter credits once.
    with svc.db_session(settings.resolved_database_url) as s:
        users = s.scalars(select(User).where(User.email == "taken@example.com")).all()
        assert len(users) == 1
        assert s.scalar(select(func.count()).select_from(Tenant)) == 2
        lots = s.scalars(select(CreditLot).where(CreditLot.tenant_id == users[0].tenant_id)).all()
        assert [lot.source for lot in lots] == ["starter"]
    assert _log_in(web, "taken@example.com", "another password altogether").status_code == 401
    assert _log_in(web, "taken@example.com", PASSWORD).status_code == 201


def test_concurrent_sign_ups_of_one_email_make_one_account(settings, new_process):
    from concurrent.futures import ThreadPoolExecutor

    webs = [new_process() for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda web: _sign_up(web, "race@example.com"), webs))
    assert [r.status_code for r in answers] == [202] * 4
    with svc.db_session(settings.resolved_database_url) as s:
        assert s.scalar(select(func.count()).select_from(User).where(User.email == "race@example.com")) == 1


# -- API keys ----------------------------------------------------------------------------------


def _wrong_secret(key: str) -> dict[str, str]:
    prefix = key[: len(KEY_PREFIX) + 8]
    return {"Authorization": f"Bearer {prefix}{'z' * 32}"}


def test_failed_key_checks_are_throttled_per_prefix_before_any_bcrypt(new_process, tenant, bcrypt_work):
    web = new_process(api_key_failures_per_prefix=3, api_key_failures_per_address=0)
    assert web.get("/v1/session", headers=tenant.headers).status_code == 200  # remembered from now on
    bcrypt_work["check"].clear()
    codes = [web.get("/v1/session", headers=_wrong_secret(tenant.key)).status_code for _ in range(3)]
    assert codes == [401, 401, 401] and len(bcrypt_work["check"]) == 3

    for _ in range(5):
        r = web.get("/v1/session", headers=_wrong_secret(tenant.key))
        assert r.status_code == 429 and r.json["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert len(bcrypt_work["check"]) == 3  # a refused check spends no bcrypt

    # The key in use keeps working, here and in another process (both remember it).
    assert web.get("/v1/session", headers=tenant.headers).status_code == 200
    assert new_process().get("/v1/session", headers=tenant.headers).status_code == 200
    assert len(bcrypt_work["check"]) == 3


def test_failed_key_checks_are_throttled_per_client_address(new_process, make_tenant, bcrypt_work):
    web = new_process(api_key_failures_per_prefix=0, api_key_failures_per_address=4)
    people = [make_tenant(credits=0) for _ in range(3)]
    guesser = {"REMOTE_ADDR": "203.0.113.7"}
    unknown = {"Authorization": f"Bearer {KEY_PREFIX}{'q' * 40}"}
    sent = [_wrong_secret(p.key) for p in people] + [unknown]
    assert [web.get("/v1/session", headers=h, environ_base=guesser).status_code for h in sent] == [401] * 4
    assert len(bcrypt_work["check"]) == 3  # the unknown prefix costs no bcrypt, but counts

    refused = web.get("/v1/session", headers=_wrong_secret(people[0].key), environ_base=guesser)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert len(bcrypt_work["check"]) == 3
    # Another address is not held up.
    other = web.get(
        "/v1/session", headers=_wrong_secret(people[0].key), environ_base={"REMOTE_ADDR": "198.51.100.2"}
    )
    assert other.status_code == 401


def test_checks_that_succeed_are_not_counted_as_failures(new_process, tenant, bcrypt_work):
    # Nothing remembered: every request checks the key with bcrypt.
    web = new_process(
        api_key_failures_per_prefix=2, api_key_failures_per_address=2, api_key_cache_seconds=0,
        api_key_verified_seconds=0,
    )  # fmt: skip
    for _ in range(6):
        assert web.get("/v1/session", headers=tenant.headers).status_code == 200
    assert len(bcrypt_work["check"]) == 6
    assert web.get("/v1/session", headers=_wrong_secret(tenant.key)).status_code == 401
    assert web.get("/v1/session", headers=tenant.headers).status_code == 200


def test_while_redis_is_away_each_process_still_throttles_failed_key_checks(new_process, tenant, bcrypt_work):
    away = f"redis://127.0.0.1:{svc.free_port()}/0"
    web = new_process(redis_url=away, api_key_failures_per_prefix=2, api_key_failures_per_address=0)
    codes = [web.get("/v1/session", headers=_wrong_secret(tenant.key)).status_code for _ in range(4)]
    assert codes == [401, 401, 429, 429]
    assert len(bcrypt_work["check"]) == 2
    assert new_process(redis_url=away).get("/v1/session", headers=tenant.headers).status_code == 200
