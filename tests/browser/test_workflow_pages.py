"""Workflows in a real browser: a workflow made from a template in the editor (its JSON view
following the form and the form following the JSON), saved, run on a file uploaded from the
editor, and watched on the run page to success with every node's state and an output
preview; a run canceled from its page; a refused graph's problems shown next to their node."""

from __future__ import annotations

import io
import json
import re
import uuid
from typing import Any

import redis
from playwright.sync_api import expect
from sqlalchemy import select

from faktry.db import make_engine, make_sessionmaker, transaction
from quotas import ledger
from quotas.ratelimit import RunningSlots
from storage import from_settings
from storage.models import File
from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot
from tests.platform import Platform


def assert_ledger_clean(site: Platform) -> None:
    engine = make_engine(site.settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            assert ledger.check(session) == []
    finally:
        engine.dispose()


def box(page: Any, node: str) -> Any:
    """The node's box in the drawn graph."""
    return page.locator(f'#graph svg a[data-node="{node}"]')


def graph_in_view(page: Any) -> dict[str, Any]:
    return dict(json.loads(page.locator("#graph-json").input_value()))


def test_a_template_is_edited_saved_run_on_an_uploaded_file_and_watched_to_success(
    page, site: Platform, make_person, clip_small
):
    person = make_person(credits=50)
    log_in(page, person, next_path="/workflows")
    expect(page.get_by_role("link", name="Workflows")).to_have_attribute("aria-current", "page")
    expect(page.locator("#workflows-empty")).to_be_visible()
    expect(page.locator("#templates li")).to_have_count(3)
    assert_accessible(page)
    page.get_by_role("link", name="Start from Web-ready video").click()
    page.wait_for_url("**/workflows/new?template=web-ready-video")

    cards = page.locator("#nodes [data-node]")
    expect(cards).to_have_count(5)
    expect(page.get_by_label("Name", exact=True)).to_have_value("Web-ready video")
    assert set(graph_in_view(page)["nodes"]) == {"probe", "mp4_1080p", "mp4_480p", "hls", "sprite"}
    # The form edits the JSON: two nodes removed, a setting changed.
    page.get_by_role("button", name="Remove node hls").click()
    page.get_by_role("button", name="Remove node mp4_1080p").click()
    expect(cards).to_have_count(3)
    sprite = page.locator('#nodes [data-node="sprite"]')
    sprite.get_by_label("Frames").fill("4")
    expect(page.locator("#graph-json")).to_have_value(re.compile(r'"frames": 4\b'))
    view = graph_in_view(page)
    assert set(view["nodes"]) == {"probe", "mp4_480p", "sprite"}
    assert view["nodes"]["sprite"]["params"]["frames"] == 4
    assert view["nodes"]["mp4_480p"]["input"] == {"file_id": {"input": "source"}}
    # And the JSON edits the form.
    view["nodes"]["sprite"]["params"]["columns"] = 2
    page.locator("#graph-json").fill(json.dumps(view, indent=2))
    expect(sprite.get_by_label("Columns")).to_have_value("2")
    page.locator("#graph-json").fill('{"inputs": {')
    expect(page.locator("#json-status")).to_contain_text("Not valid JSON yet")
    expect(cards).to_have_count(3)  # the last valid graph stays
    page.locator("#graph-json").fill(json.dumps(view, indent=2))
    expect(page.locator("#json-status")).to_have_text("In sync with the form.")

    name = f"Web video {uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Save as a new workflow").click()
    expect(page.locator("#save-status")).to_have_text(f"Saved as {name}, version 1.")
    page.wait_for_url(re.compile(r"/workflows/wfl_\w+$"))
    workflow_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("h1")).to_have_text(f"Workflow {name}")
    expect(page.locator("#run-note")).to_contain_text(f"Runs version 1 of {name}")

    # A file uploaded from the editor becomes the run's input; the price shows before the run.
    page.locator("#upload").set_input_files(str(clip_small))
    expect(page.locator("#upload-status")).to_contain_text("Uploaded")
    source = page.get_by_label(re.compile("Run input “source”"))
    expect(source).not_to_have_value("")
    expect(page.locator("#quote")).to_contain_text("credits (you have")
    assert_accessible(page)
    shot(page, "workflow-editor")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url("**/workflow-runs/run_*")
    run_id = page.url.rsplit("/", 1)[1]

    # The run page: the graph drawn with each node's live state, to the end, without a reload.
    page.evaluate("window.loadedOnce = true")
    expect(page.locator("#graph svg a.wf-svg-node")).to_have_count(3)
    expect(page.locator("#graph svg .wf-svg-input")).to_have_count(1)
    expect(page.locator("#graph svg path.wf-edge")).to_have_count(3)
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=120_000)
    assert page.evaluate("window.loadedOnce") is True
    for node in ("probe", "mp4_480p", "sprite"):
        expect(box(page, node)).to_have_attribute("data-status", "succeeded")
        expect(page.locator(f"#node-{node} .heading .badge")).to_have_text("succeeded")
        expect(page.locator(f"#node-{node}")).to_contain_text("job_")
    image = page.locator("#node-sprite img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#node-mp4_480p video")).to_be_visible()
    expect(page.locator("#node-probe .wf-outputs li")).to_have_count(0)  # a probe writes no file
    expect(page.locator("#run-cost")).to_contain_text("credits charged (quoted")
    expect(page.locator('#events li[data-kind="started"]')).to_have_count(1)
    expect(page.locator('#events li[data-kind="succeeded"]')).to_have_count(1)
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    expect(page.get_by_role("button", name="Retry failed nodes")).to_be_hidden()
    assert_accessible(page)
    shot(page, "workflow-run")
    http = api_session(site, person)
    run = http.get(f"{site.base}/v1/workflow-runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["workflow_id"] == workflow_id
    assert page.locator("#run-cost").inner_text().startswith(f"{run['cost']['charged'] / 1000:,.2f} credits")
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    # The list shows the workflow with its version and its last run; the editor its runs.
    page.get_by_role("link", name="Workflows").click()
    row = page.locator(f'#workflows tbody tr[data-workflow-id="{workflow_id}"]')
    expect(row).to_contain_text("v1")
    expect(row.locator(f'li[data-run-id="{run_id}"]')).to_contain_text("succeeded")
    shot(page, "workflows")
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    row.get_by_role("link", name=name).click()
    expect(page.locator(f'#runs li[data-run-id="{run_id}"]')).to_contain_text("succeeded")
    # A new version from the editor.
    page.locator('#nodes [data-node="sprite"]').get_by_label("Frames").fill("6")
    expect(page.locator("#run-note")).to_contain_text("Unsaved changes")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.locator("#save-status")).to_have_text("Saved version 2.")
    saved = http.get(f"{site.base}/v1/workflows/{workflow_id}").json()
    assert saved["version"] == 2 and saved["graph"]["nodes"]["sprite"]["params"]["frames"] == 6
    expect(page.locator("#versions")).to_contain_text("Version 2 (current)")
    # Deleted from the list: the workflow goes, its run stays.
    page.get_by_role("link", name="All workflows").click()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Delete {name}").click()
    expect(page.locator("#workflows-status")).to_have_text(f"Deleted {name}.")
    expect(row).to_have_count(0)
    page.goto(f"/workflow-runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("succeeded")
    expect(page.locator("#run")).to_contain_text("a workflow deleted since (version 1)")
    assert_ledger_clean(site)


def test_a_run_is_canceled_from_its_page_and_every_credit_comes_back(
    page, site: Platform, make_person, png_image
):
    # The free tier runs one job at a time, and that slot is taken: the run's first job waits.
    person = make_person(credits=10, tier="free")
    slots = RunningSlots(redis.Redis.from_url(site.settings.redis_url), site.settings.redis_namespace)
    assert slots.acquire(person.tenant_id, "job_running_elsewhere", limit=1, ttl_seconds=120)
    try:
        http = api_session(site, person)
        upload = http.post(f"{site.base}/v1/files", files={"file": ("photo.png", png_image.read_bytes())})
        assert upload.status_code == 201
        graph = {
            "inputs": {"photo": {"kind": "image"}},
            "nodes": {
                "small": {"type": "image.resize", "params": {"width": 16, "height": 16},
                          "input": {"file_id": {"input": "photo"}}},
                "tiny": {"type": "image.resize", "params": {"width": 8, "height": 8},
                         "input": {"file_id": {"node": "small", "output": 0}}},
            },
        }  # fmt: skip
        made = http.post(f"{site.base}/v1/workflows", json={"name": "two sizes", "graph": graph})
        assert made.status_code == 201, made.text

        log_in(page, person, next_path=f"/workflows/{made.json()['id']}")
        expect(page.locator("#nodes [data-node]")).to_have_count(2)
        page.get_by_label(re.compile("Run input “photo”")).select_option(upload.json()["id"])
        expect(page.locator("#quote")).to_contain_text("credits (you have 10.00)")
        page.get_by_role("button", name="Run", exact=True).click()
        page.wait_for_url("**/workflow-runs/run_*")
        expect(page.locator("#run-state")).to_have_text("running")
        expect(page.locator('#graph svg a[data-node="small"]')).to_have_attribute("data-status", "queued")
        expect(page.locator('#graph svg a[data-node="tiny"]')).to_have_attribute("data-status", "waiting")
        expect(page.locator("#run-cost")).to_contain_text("held for the run")
        shot(page, "workflow-run-queued")
        page.get_by_role("button", name="Cancel run").click()
        expect(page.locator("#run-state")).to_have_text("canceled")
        expect(page.locator("#run-notice")).to_contain_text("Canceled")
        for node in ("small", "tiny"):
            expect(box(page, node)).to_have_attribute("data-status", "canceled")
            expect(page.locator(f"#node-{node} .heading .badge")).to_have_text("canceled")
        expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
        expect(page.locator('#events li[data-kind="canceled"]')).to_have_count(1)
        credits = http.get(f"{site.base}/v1/account").json()["credits"]
        assert (credits["available"], credits["held"]) == (10_000, 0)
        assert_ledger_clean(site)
    finally:
        slots.release(person.tenant_id, "job_running_elsewhere")


def test_a_refused_graph_shows_each_problem_next_to_its_node_and_field(page, site: Platform, make_person):
    person = make_person(credits=5)
    log_in(page, person, next_path="/workflows/new")
    expect(page.locator("#nodes [data-node]")).to_have_count(0)
    page.get_by_role("button", name="Add a run input").click()
    page.get_by_label("Kind").select_option("audio")
    # Both nodes are fed audio where they take images; the first has a setting out of range
    # too, and is told both at once.
    page.get_by_role("button", name="Add a node").click()
    page.get_by_role("button", name="Add a node").click()
    node, other = page.locator('#nodes [data-node="node1"]'), page.locator('#nodes [data-node="node2"]')
    for card, width in ((node, "0"), (other, "10")):
        card.get_by_label("Type").select_option("image.resize")
        card.get_by_label("File").select_option('{"input":"input1"}')  # the option "run input “input1”"
        card.get_by_label("Width").fill(width)
        card.get_by_label("Height").fill("10")
    expect(page.locator("#graph-json")).to_have_value(re.compile(r'"width": 0'))
    assert graph_in_view(page)["nodes"]["node2"]["input"] == {"file_id": {"input": "input1"}}
    # The quote checks the graph as it is edited, before any save.
    expect(page.locator("#quote")).to_have_text(
        re.compile(r"^Price: \S \(3 problems, shown next to their nodes\)$")
    )
    page.get_by_label("Name", exact=True).fill("broken")
    page.get_by_role("button", name="Save as a new workflow").click()
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    expect(node).to_have_attribute("data-has-problems", "true")
    width = node.get_by_label("Width")
    expect(width).to_have_attribute("aria-invalid", "true")
    expect(node.locator('.wf-problem[data-code="invalid_request"]')).to_contain_text("width")
    expect(node.locator('.wf-problem[data-code="kind_mismatch"]')).to_contain_text("audio")
    expect(other).to_have_attribute("data-has-problems", "true")
    expect(other.get_by_label("File")).to_have_attribute("aria-invalid", "true")
    expect(other.locator('.wf-problem[data-code="kind_mismatch"]')).to_contain_text("audio")
    expect(other.get_by_label("Width")).not_to_have_attribute("aria-invalid", "true")
    assert_accessible(page)
    shot(page, "workflow-problems")
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    # Nothing was saved or held; fixed, it saves.
    http = api_session(site, person)
    assert http.get(f"{site.base}/v1/workflows").json()["data"] == []
    page.get_by_label("Kind").select_option("image")
    width.fill("10")
    page.get_by_role("button", name="Save as a new workflow").click()
    expect(page.locator("#save-status")).to_have_text("Saved as broken, version 1.")
    expect(node.locator(".wf-problem")).to_have_count(0)
    credits = http.get(f"{site.base}/v1/account").json()["credits"]
    assert (credits["available"], credits["held"]) == (5_000, 0)


def test_a_failed_run_is_retried_from_its_page_and_only_the_rerun_is_charged(
    page, site: Platform, make_person, png_image
):
    person = make_person(credits=10)
    http = api_session(site, person)
    upload = http.post(f"{site.base}/v1/files", files={"file": ("photo.png", png_image.read_bytes())})
    assert upload.status_code == 201
    file_id = upload.json()["id"]
    # The stored picture is damaged before the run reads it: its first node fails.
    engine = make_engine(site.settings.resolved_database_url)
    with transaction(make_sessionmaker(engine)) as s:
        key = s.scalars(select(File.storage_key).where(File.id == file_id)).one()
    engine.dispose()
    storage = from_settings(site.settings)
    storage.put_stream(key, io.BytesIO(b"not a picture any more"), content_type="image/png")
    graph = {
        "inputs": {"photo": {"kind": "image"}},
        "nodes": {
            "probe": {"type": "media.probe", "input": {"file_id": {"input": "photo"}}},
            "small": {"type": "image.resize", "params": {"width": 16, "height": 16},
                      "input": {"file_id": {"input": "photo"}}},
            "tiny": {"type": "image.resize", "params": {"width": 8, "height": 8},
                     "input": {"file_id": {"node": "small", "output": 0}}},
        },
    }  # fmt: skip
    run = http.post(f"{site.base}/v1/workflow-runs", json={"graph": graph, "inputs": {"photo": file_id}})
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]

    log_in(page, person, next_path=f"/workflow-runs/{run_id}")
    expect(page.locator("#run-state")).to_have_text("failed", timeout=60_000)
    expect(page.locator("#run-error")).to_be_visible()
    expect(page.locator('#graph svg a[data-node="small"]')).to_have_attribute("data-status", "failed")
    expect(page.locator('#graph svg a[data-node="tiny"]')).to_have_attribute("data-status", "skipped")
    expect(page.locator("#node-small [data-kind=error]")).to_be_visible()
    expect(page.locator("#graph svg .wf-svg-input")).to_have_count(1)
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    shot(page, "workflow-run-failed")
    first = http.get(f"{site.base}/v1/workflow-runs/{run_id}").json()
    kept = {n: node["status"] for n, node in first["nodes"].items()}
    before = http.get(f"{site.base}/v1/account").json()["credits"]["available"]

    storage.put_file(key, png_image, content_type="image/png")  # the input is repaired
    page.get_by_role("button", name="Retry failed nodes").click()
    expect(page.locator("#run-notice")).to_contain_text("Retrying")
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator("#run-attempt")).to_have_text("attempt 2")
    expect(page.locator("#run-error")).to_be_hidden()
    for node in ("probe", "small", "tiny"):
        expect(box(page, node)).to_have_attribute("data-status", "succeeded")
    image = page.locator("#node-tiny img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 8
    expect(page.locator('#events li[data-kind="retried"]')).to_have_count(1)
    done = http.get(f"{site.base}/v1/workflow-runs/{run_id}").json()
    # What succeeded the first time kept its job; only the rerun was charged.
    if kept.get("probe") == "succeeded":
        assert done["nodes"]["probe"]["steps"][0]["job_id"] == first["nodes"]["probe"]["steps"][0]["job_id"]
    rerun = sum(done["nodes"][n]["cost"] for n in ("small", "tiny"))
    after = http.get(f"{site.base}/v1/account").json()["credits"]
    assert after["held"] == 0 and before - after["available"] == rerun + (
        0 if kept.get("probe") == "succeeded" else done["nodes"]["probe"]["cost"]
    )
    assert_ledger_clean(site)


def test_every_template_opens_in_the_editor_as_it_is_and_is_priced(page, site: Platform, make_person):
    person = make_person(credits=50)
    http = api_session(site, person)
    templates = http.get(f"{site.base}/v1/workflow-templates").json()["data"]
    log_in(page, person, next_path="/workflows")
    for template in templates:
        page.goto(f"/workflows/new?template={template['id']}")
        expect(page.locator("#nodes [data-node]")).to_have_count(len(template["graph"]["nodes"]))
        assert graph_in_view(page) == template["graph"]
        for name, spec in template["graph"]["nodes"].items():
            card = page.locator(f'#nodes [data-node="{name}"]')
            expect(card.get_by_label("Type")).to_have_value(spec["type"])
            if "model" in spec.get("params", {}):
                expect(card.get_by_label("Model")).to_have_value(spec["params"]["model"])
        if not template["graph"]["inputs"]:  # nothing to choose: priced at once
            expect(page.locator("#quote")).to_contain_text("credits (you have 50.00)")
        else:
            expect(page.locator("#quote")).to_contain_text("choose the run's files")
        expect(page.locator(".wf-problem")).to_have_count(0)
        assert_accessible(page)
    page.goto("/workflows/new?template=no-such-template")
    expect(page.locator("#editor-alert")).to_contain_text("There is no such template")
