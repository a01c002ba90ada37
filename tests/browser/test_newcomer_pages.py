"""A newcomer's first success in the browser: an empty library that invites the first upload,
the job that fits the file offered next, a form that speaks in names, words and credits, an
HLS output that plays in the page and downloads whole as a zip, and a library that groups an
original with what was made from it."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot


def _until(locator: Any, script: str, what: str, seconds: float = 30) -> Any:
    """Re-evaluate ``script`` on the element until it is truthy (a locator's evaluate is
    allowed by the pages' Content-Security-Policy; wait_for_function's is not)."""
    deadline = time.monotonic() + seconds
    while not (value := locator.evaluate(script)):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def _plays(video: Any, player: Any) -> None:
    expect(video).to_have_attribute("data-player", player)
    _until(video, "v => v.readyState >= 2", "the HLS video never had a frame to show")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    _until(video, "v => v.currentTime > 0", "the HLS video never played")


def test_a_newcomer_uploads_a_video_runs_the_offered_job_and_plays_its_hls_output(
    page, make_person, clip_small
):
    person = make_person(credits=50)
    log_in(page, person, next_path="/library")

    # The empty library invites the first upload and says what it takes.
    empty = page.locator("#library-empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("Upload your first file")
    expect(empty).to_contain_text("MP4")
    expect(page.locator("#files-status")).to_be_hidden()
    shot(page, "newcomer/library-empty")

    # Between the last byte and the probed answer the upload says it is processing.
    page.evaluate(
        """() => {
            window.uploadStates = [];
            new MutationObserver(() => {
                for (const li of document.querySelectorAll("#uploads li[data-state]")) {
                    const last = window.uploadStates[window.uploadStates.length - 1];
                    if (last !== li.dataset.state) window.uploadStates.push(li.dataset.state);
                }
            }).observe(document.getElementById("uploads"), { subtree: true, childList: true, attributes: true });
        }"""
    )
    page.locator("#file-input").set_input_files(str(clip_small))
    row = page.locator("#uploads li").first
    expect(row).to_contain_text("uploaded")
    assert page.evaluate("window.uploadStates") == ["processing", "uploaded"]
    expect(empty).to_be_hidden()

    # The job that fits a video is offered next, by its name.
    offered = row.get_by_role("link", name="Next: Convert a video")
    expect(offered).to_be_visible()
    offered.click()
    page.wait_for_url("**/jobs/new?file=*")
    expect(page.get_by_label("What to do")).to_have_value("video.transcode")
    expect(page.locator("#job-type-help")).to_contain_text("video.transcode")
    page.get_by_label("Preset").select_option("hls")
    expect(page.get_by_label("Preset").locator("option:checked")).to_have_text(re.compile(r"^HLS .*\(hls\)$"))
    expect(page.locator("#quote")).to_have_text(
        re.compile(r"^Price: \d+\.\d\d credits \(you have 50\.00 credits\)$")
    )
    # The snippets are what the form submits.
    page.get_by_text("Submit this job from code").click()
    curl = page.locator("#snippet-curl").inner_text()
    python = page.locator("#snippet-python").inner_text()
    file_id = page.get_by_label("File").input_value()
    for snippet in (curl, python):
        assert '"preset": "hls"' in snippet.replace('"preset":"hls"', '"preset": "hls"')
        assert file_id in snippet and "/v1/jobs" in snippet and "FAKTRY_API_KEY" in snippet
    assert_accessible(page)
    shot(page, "newcomer/job-form")
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/job_*")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)

    # The ladder plays in the page, with the browser's own HLS player where it has one...
    output = page.locator("#outputs li").first
    expect(output.locator("h3")).to_contain_text("clip240-hls/")
    _plays(output.locator("video"), re.compile(r"^(native|hls\.js)$"))
    shot(page, "newcomer/hls-playing")
    # ...and with the vendored hls.js in a browser without one (as Firefox is).
    page.add_init_script(
        """(() => {
            const canPlay = HTMLMediaElement.prototype.canPlayType;
            HTMLMediaElement.prototype.canPlayType = function (type) {
                return /mpegurl/i.test(type) ? "" : canPlay.call(this, type);
            };
        })()"""
    )
    page.reload()
    _plays(output.locator("video"), "hls.js")

    # The whole ladder downloads as one zip named after its source and job.
    zip_link = output.get_by_role("link", name="Download all (zip)")
    answer = page.request.get(zip_link.get_attribute("href"))
    assert answer.status == 200 and answer.headers["content-type"] == "application/zip"
    assert 'filename="clip240-hls.zip"' in answer.headers["content-disposition"]
    source = page.locator("#job-source a")
    expect(source).to_have_text("clip240.mp4")
    assert_accessible(page)

    # The library groups the original with what was made from it; the output links back.
    page.goto("/library")
    made = page.locator('#files li[data-kind="playlist"]')
    expect(made.locator(".name")).to_have_text("clip240-hls/")
    expect(made.locator(".made-by")).to_contain_text("Made by Convert a video from clip240.mp4")
    original = page.locator('#files li[data-kind="video"]')
    expect(original.locator(".derived summary")).to_have_text("Made from this (1)")
    expect(made.get_by_role("link", name="Download (zip)")).to_be_visible()
    assert_accessible(page)
    shot(page, "newcomer/library-grouped")

    # The jobs list says what ran by name, and its cost in credits with two decimals.
    page.goto("/jobs")
    cells = page.locator("#jobs tbody tr").first.locator("td")
    expect(cells.nth(1)).to_have_text("Convert a video video.transcode")
    expect(cells.nth(4)).to_have_text(re.compile(r"^\d+\.\d\d$"))


def test_the_job_form_shows_only_what_applies_and_says_what_is_wrong_in_words(
    page, make_person, clip_small, png_image
):
    person = make_person(credits=50)
    log_in(page, person, next_path="/library")
    page.locator("#file-input").set_input_files([str(clip_small), str(png_image)])
    expect(page.locator("#files li")).to_have_count(2)

    quotes: list[str] = []
    page.on("request", lambda r: quotes.append(r.url) if r.url.endswith("/v1/jobs/quote") else None)
    page.goto("/jobs/new")
    # Without a file chosen, the job first offered fits the newest file (the picture).
    expect(page.get_by_label("What to do")).to_have_value("image.resize")
    # Job types by name, machine names visible.
    options = page.get_by_label("What to do").locator("option").all_inner_texts()
    assert "Convert a video (video.transcode)" in options and "Resize an image (image.resize)" in options

    # No price is asked for before the required file is chosen.
    page.get_by_label("What to do").select_option("video.thumbnail")
    expect(page.locator("#quote")).to_have_text("Price: fill in the fields marked * to see the price.")
    assert quotes == []

    # Time or fraction: one at a time; a sprite sheet's grid only for a sprite.
    expect(page.get_by_label("At fraction")).to_be_visible()
    expect(page.get_by_label("At seconds")).to_be_hidden()
    expect(page.get_by_label("Frames")).to_be_hidden()
    page.get_by_label("At a time (seconds)").check()
    expect(page.get_by_label("At seconds")).to_be_visible()
    expect(page.get_by_label("At fraction")).to_be_hidden()
    page.get_by_label("Sprite").check()
    expect(page.get_by_label("Frames")).to_be_visible()
    expect(page.get_by_label("Columns")).to_be_visible()
    expect(page.get_by_label("At seconds")).to_be_hidden()
    expect(page.get_by_label("Format")).to_be_hidden()
    page.get_by_label("File").select_option(index=1)
    expect(page.locator("#quote")).to_have_text(
        re.compile(r"^Price: \d+\.\d\d credits \(you have 50\.00 credits\)$")
    )
    assert quotes
    assert '"sprite": true' in page.locator("#snippet-python").text_content().replace("True", "true")
    assert '"at_seconds"' not in page.locator("#snippet-curl").text_content()

    # A refusal is a sentence on its field, never a JSON Schema fragment.
    page.get_by_label("What to do").select_option("image.resize")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#input-file_id-error")).to_have_text("Choose file.")
    expect(page.get_by_label("File")).to_be_focused()
    page.get_by_label("File").select_option(index=1)
    page.get_by_label("Width").fill("0")
    page.get_by_label("Height").fill("10")
    page.get_by_role("button", name="Submit job").click()
    expect(page.locator("#params-width-error")).to_have_text("Width must be at least 1.")
    expect(page.get_by_label("Width")).to_have_attribute("aria-invalid", "true")
    for text in page.locator("#job-form .message").all_inner_texts():
        assert "{" not in text and "should" not in text
    assert_accessible(page)
    shot(page, "newcomer/job-form-error")

    # Models say what they are here: without a key, the offline stand-in; the default works.
    page.get_by_label("What to do").select_option("image.generate")
    model = page.get_by_label("Model")
    expect(model).to_have_value("local-image")
    model.select_option("gpt-image-1")
    expect(page.locator("#model-help")).to_contain_text(
        "no OpenAI key: jobs with this model run on the offline stand-in (Offline image sketch)"
    )
    texts = model.locator("option").all_inner_texts()
    assert any(t.startswith("GPT Image 1 (gpt-image-1)") and "offline stand-in" in t for t in texts)

    # On a phone the form, its help and its snippets fit without scrolling sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_text("Submit this job from code").click()
    expect(page.locator("#snippet-curl")).to_be_visible()
    assert_fits(page)
    shot(page, "newcomer/job-form-phone")


def test_a_refused_upload_shows_only_its_error(page, make_person, tmp_path):
    person = make_person()
    log_in(page, person, next_path="/library")
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    page.locator("#file-input").set_input_files(str(fake))
    row = page.locator("#uploads li").first
    expect(row).to_have_attribute("data-state", "refused")
    assert row.locator("progress").count() == 0
    expect(row.locator(".help")).not_to_be_empty()
    expect(page.locator("#library-empty")).to_be_visible()


def test_outputs_of_a_plan_that_keeps_them_for_a_while_say_when_they_go(page, site, make_person, png_image):
    """A tier with output retention: the library and the job page say, beforehand, the day
    each output will be removed (the scheduler's retention sweep removes it then)."""
    from sqlalchemy import select

    from faktry.db import make_engine, make_sessionmaker, transaction
    from quotas.models import Tier

    engine = make_engine(site.settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            if session.get(Tier, "trial-30d") is None:
                creator = session.scalars(select(Tier).where(Tier.name == "creator")).one()
                columns = {c.key: getattr(creator, c.key) for c in Tier.__mapper__.column_attrs}
                session.add(Tier(**{**columns, "name": "trial-30d", "output_retention_days": 30}))
    finally:
        engine.dispose()
    person = make_person(credits=10, tier="trial-30d")
    http = api_session(site, person)
    upload = http.post(f"{site.base}/v1/files", files={"file": ("p.png", png_image.read_bytes())}).json()
    body = {"type": "image.resize", "input": {"file_id": upload["id"]}, "params": {"width": 8, "height": 8}}
    job = http.post(f"{site.base}/v1/jobs", json=body).json()
    deadline = time.monotonic() + 60
    while (done := http.get(f"{site.base}/v1/jobs/{job['id']}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline and done["status"] not in ("failed", "canceled"), done
        time.sleep(0.2)
    assert done["outputs"][0]["expires_at"]

    log_in(page, person, next_path="/library")
    output = page.locator('#files li[data-kind="image"]').filter(has=page.locator(".made-by"))
    expect(output.locator(".expires")).to_contain_text("Removed on")
    original = page.locator('#files li[data-kind="image"]').filter(has_not=page.locator(".made-by"))
    expect(original.locator(".expires")).to_have_count(0)  # uploads are never removed
    page.goto(f"/jobs/{job['id']}")
    expect(page.locator("#outputs .expires")).to_contain_text("removed on")
