"""Moderation: checked before anything is held; blocked prompts are refused and logged; the
OpenAI endpoint decides borderline prompts; an unreachable endpoint refuses only those; the
log is staff-only and swept after 12 months."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from faktry import clock
from faktry.db import transaction
from pipelines import moderation
from pipelines.models import Job, ModerationEntry
from quotas.models import Hold
from tests.generation.helpers import generate


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def counts(runtime, tenant):
    with transaction(runtime.context.sessions) as s:
        jobs = s.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant.id))
        holds = s.scalar(select(func.count()).select_from(Hold).where(Hold.tenant_id == tenant.id))
        logged = s.scalars(select(ModerationEntry).where(ModerationEntry.tenant_id == tenant.id)).all()
        return jobs, holds, logged


def test_a_clearly_harmful_prompt_is_blocked_locally_holds_nothing_and_is_logged(
    client, tenant, runtime, openai_fake
):
    prompt = "how to build a bomb step by step"
    r = generate(client, tenant, "image.generate", "gpt-image-1", {"prompt": prompt})
    assert r.status_code == 422
    assert r.json["error"]["code"] == "content_blocked" and r.json["error"]["category"] == "illicit"
    jobs, holds, [entry] = counts(runtime, tenant)
    assert (jobs, holds) == (0, 0)
    assert (entry.action, entry.category, entry.source, entry.model) == (
        "blocked",
        "illicit",
        "local",
        "gpt-image-1",
    )
    assert entry.prompt == prompt and entry.endpoint == "POST /v1/jobs image.generate"
    assert openai_fake.calls_to("/v1/moderations") == []


def test_a_clean_prompt_passes_without_asking_openai(client, tenant, runtime, openai_fake):
    r = generate(client, tenant, "image.generate", "gpt-image-1", {"prompt": "a bowl of fruit"})
    assert r.status_code == 202
    assert openai_fake.calls_to("/v1/moderations") == []
    assert counts(runtime, tenant)[2] == []


def test_a_borderline_prompt_is_decided_by_openai(client, tenant, runtime, openai_fake):
    r = generate(
        client, tenant, "image.generate", "gpt-image-1", {"prompt": "kill the sheriff in the saloon"}
    )
    assert r.status_code == 422 and r.json["error"]["code"] == "content_blocked"
    assert len(openai_fake.calls_to("/v1/moderations")) == 1
    jobs, holds, [entry] = counts(runtime, tenant)
    assert (jobs, holds) == (0, 0) and entry.source == "openai" and entry.category == "violence"


def test_a_borderline_prompt_openai_allows_passes_and_is_logged_as_flagged(
    client, tenant, runtime, openai_fake
):
    r = generate(
        client,
        tenant,
        "speech.synthesize",
        "tts-1",
        {"text": "They shoot again and the detective finds a corpse."},
    )
    assert r.status_code == 202
    [entry] = counts(runtime, tenant)[2]
    assert entry.action == "flagged"


def test_an_unreachable_moderation_endpoint_refuses_borderline_prompts_only(
    client, tenant, runtime, openai_fake
):
    openai_fake.outage(True)
    borderline = generate(
        client, tenant, "image.generate", "gpt-image-1", {"prompt": "they shoot again and find a corpse"}
    )
    assert borderline.status_code == 503 and borderline.json["error"]["code"] == "moderation_unavailable"
    clean = generate(client, tenant, "image.generate", "local-image", {"prompt": "a meadow"})
    assert clean.status_code == 202
    jobs, holds, _ = counts(runtime, tenant)
    assert (jobs, holds) == (1, 1)


def test_without_an_openai_key_the_local_pass_decides_alone():
    checker = moderation.Moderator(borderline=0.4, block=0.85, remote=None)
    assert checker.check("they shoot again and find a corpse").allowed
    assert checker.check("they shoot again and find a corpse").flagged
    assert not checker.check("make a bomb").allowed


def test_the_log_is_for_staff_only_and_filters(client, tenant, make_tenant):
    generate(client, tenant, "image.generate", "gpt-image-1", {"prompt": "behead the statue"})
    assert client.get("/v1/admin/moderation", headers=tenant.headers).status_code == 403
    staff = make_tenant(admin=True)
    r = client.get("/v1/admin/moderation?category=violence", headers=staff.headers)
    assert r.status_code == 200
    assert [e["prompt"] for e in r.json["data"]] == ["behead the statue"]
    assert client.get("/v1/admin/moderation?category=hate", headers=staff.headers).json["data"] == []
    assert client.get(f"/v1/admin/moderation?tenant_id={tenant.id}", headers=staff.headers).json["data"]


def test_the_sweep_deletes_exactly_the_entries_older_than_12_months(runtime):
    sessions = runtime.context.sessions
    verdict = moderation.Verdict(False, "violence", 0.9, "local", True)
    for age_days in (0, 200, 364, 366, 500):
        clock.reset()
        clock.advance(-timedelta(days=age_days))
        with transaction(sessions) as s:
            moderation.log_entry(
                s, tenant_id="ten_x", verdict=verdict, prompt=f"{age_days}", endpoint="e", model=None
            )
    clock.reset()
    with transaction(sessions) as s:
        assert moderation.sweep(s) == 2
    with transaction(sessions) as s:
        assert sorted(e.prompt for e in s.scalars(select(ModerationEntry))) == ["0", "200", "364"]
        assert moderation.sweep(s) == 0
