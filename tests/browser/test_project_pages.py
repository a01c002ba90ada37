"""Video projects in a real browser: a project made from the list, three scenes added (a
picture and a clip from the library, each shown beside its scene, and a picture to be made
from a prompt), moved with their buttons and by dragging, and saved in that order; a refused
field marked where it is; and a project rendered on the offline models, its price shown
first, its progress followed live, and its video playing in the page with its captions."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import api_session, assert_accessible, assert_fits, log_in, shot
from tests.browser.test_workflow_pages import assert_ledger_clean
from tests.platform import Platform

SUNRISE, BOAT, COFFEE = "Sunrise over the water.", "The first boat goes out.", "Coffee is ready."


def scene(page: Any, number: int) -> Any:
    """The editor's scene at a place in the list, counted from 1."""
    return page.locator("#scenes > li").nth(number - 1)


def scripts_in_view(page: Any) -> list[str]:
    return [el.input_value() for el in page.locator('#scenes [data-key="script"]').all()]


def upload(http: Any, site: Platform, name: str, data: bytes) -> str:
    r = http.post(f"{site.base}/v1/files", files={"file": (name, data)})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_for(locator: Any, script: str, *, seconds: float = 20) -> Any:
    """Poll a locator's evaluate until it is truthy (the page's CSP refuses the string
    evaluation that wait_for_function does, see tests/browser/test_people.py)."""
    deadline = time.monotonic() + seconds
    while not (value := locator.evaluate(script)):
        assert time.monotonic() < deadline, f"never true: {script}"
        time.sleep(0.1)
    return value


def test_a_project_gets_three_scenes_reordered_by_buttons_and_by_dragging_and_saved_in_order(
    page, site: Platform, make_person, png_image, clip_small, wav
):
    person = make_person(credits=5)
    http = api_session(site, person)
    picture = upload(http, site, "harbour.png", png_image.read_bytes())
    clip = upload(http, site, "waves.mp4", clip_small.read_bytes())
    track = upload(http, site, "tune.wav", wav.read_bytes())
    brand = http.post(f"{site.base}/v1/brands", json={"name": "Harbour Coffee"}).json()["id"]

    log_in(page, person, next_path="/projects")
    expect(page.get_by_role("link", name="Projects")).to_have_attribute("aria-current", "page")
    expect(page.locator("#projects-empty")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Name").fill("Morning at the harbour")
    page.get_by_label("Format").select_option("9:16")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/projects/prj_\w+$"))
    project_id = page.url.rsplit("/", 1)[1]
    path = f"{site.base}/v1/projects/{project_id}"
    expect(page.locator("#project-name")).to_have_value("Morning at the harbour")
    expect(page.get_by_label("Format", exact=True)).to_have_value("9:16")

    # Three scenes: a picture from the library, one to be made from a prompt, a clip.
    while page.locator("#scenes > li").count() < 3:
        page.get_by_role("button", name="Add a scene").click()
    expect(page.locator("#scenes > li")).to_have_count(3)
    first, second, third = scene(page, 1), scene(page, 2), scene(page, 3)
    first.get_by_label("Script (narration)").fill(SUNRISE)
    first.get_by_label("Picture or clip").select_option("library")
    first.get_by_label("Library file").select_option(label="harbour.png (image)")
    expect(first.locator(".project-preview img")).to_have_attribute("src", f"/v1/files/{picture}/content")
    second.get_by_label("Script (narration)").fill(BOAT)
    second.get_by_label("Picture or clip").select_option("prompt")
    expect(second.get_by_label("Library file")).to_be_hidden()
    second.get_by_label("Prompt").fill("a small red fishing boat leaving a harbour at dawn")
    second.get_by_label("Make a").select_option("image")
    second.get_by_label("Transition into the next scene").select_option("fade")
    expect(second.get_by_label("Transition length (seconds)")).to_be_visible()
    second.get_by_label("Transition length (seconds)").fill("0.5")
    third.get_by_label("Script (narration)").fill(COFFEE)
    third.get_by_label("Picture or clip").select_option("library")
    third.get_by_label("Library file").select_option(label="waves.mp4 (video)")
    expect(third.locator(".project-preview video")).to_be_visible()
    third.get_by_label("Duration (seconds)").fill("3")
    page.get_by_label("Target length (seconds)").fill("15")
    expect(page.locator("#length-note")).to_contain_text("3 scenes adding up to 11 s of a 15 s target")
    page.get_by_label("Brand", exact=True).select_option(label="Harbour Coffee")
    page.get_by_label("A track from the library").check()
    page.get_by_label("Track", exact=True).select_option(label="tune.wav (audio)")
    expect(page.locator("#music-preview audio")).to_be_attached()
    page.get_by_label("Music volume").fill("0.4")
    assert_accessible(page)
    page.get_by_role("button", name="Save project").click()
    expect(page.locator("#save-status")).to_have_text("Saved Morning at the harbour.")

    saved = http.get(path).json()
    assert [s["script"] for s in saved["scenes"]] == [SUNRISE, BOAT, COFFEE]
    assert saved["scenes"][0]["media"] == {"file_id": picture}
    assert saved["scenes"][1]["media"]["prompt"].startswith("a small red fishing boat")
    assert saved["scenes"][1]["media"]["kind"] == "image"
    assert saved["scenes"][1]["transition"] == {"type": "fade", "duration": 0.5}
    assert saved["scenes"][2]["media"] == {"file_id": clip} and saved["scenes"][2]["duration"] == 3
    assert (saved["format"], saved["target_seconds"], saved["brand_id"]) == ("9:16", 15, brand)
    assert saved["music"]["file_id"] == track and saved["music"]["volume"] == 0.4
    ids = [s["id"] for s in saved["scenes"]]

    # Moved with the keyboard's buttons: the last scene up one place.
    page.get_by_role("button", name="Move scene 3 up").click()
    assert scripts_in_view(page) == [SUNRISE, COFFEE, BOAT]
    expect(page.get_by_role("button", name="Move scene 1 up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move scene 3 down")).to_be_disabled()
    expect(scene(page, 2).locator("h3")).to_have_text("Scene 2")
    # And dragged by its handle: the first scene dropped on the last takes its place.
    # (A window tall enough to hold both: a drag that scrolls the page loses its grip here.)
    page.set_viewport_size({"width": 1280, "height": 2400})
    scene(page, 1).locator(".project-handle").drag_to(scene(page, 3))
    page.set_viewport_size({"width": 1280, "height": 900})
    assert scripts_in_view(page) == [COFFEE, BOAT, SUNRISE]
    # Each scene keeps its own picture, prompt and settings wherever it goes.
    expect(scene(page, 1).locator(".project-preview video")).to_be_visible()
    expect(scene(page, 2).get_by_label("Prompt")).to_have_value(re.compile("^a small red fishing boat"))
    expect(scene(page, 3).get_by_label("Library file")).to_have_value(picture)
    expect(page.locator("#save-status")).to_contain_text("not saved yet")
    shot(page, "project-editor")
    page.get_by_role("button", name="Save project").click()
    expect(page.locator("#save-status")).to_have_text("Saved Morning at the harbour.")
    saved = http.get(path).json()
    assert [s["script"] for s in saved["scenes"]] == [COFFEE, BOAT, SUNRISE]
    assert [s["id"] for s in saved["scenes"]] == [ids[2], ids[1], ids[0]]
    assert saved["scenes"][0]["media"] == {"file_id": clip}

    # A duration out of range is refused by the API and marked in its scene; nothing is kept.
    scene(page, 2).get_by_label("Duration (seconds)").fill("500")
    page.get_by_role("button", name="Save project").click()
    expect(page.locator("#project-status")).to_contain_text("duration")
    expect(scene(page, 2).get_by_label("Duration (seconds)")).to_have_attribute("aria-invalid", "true")
    expect(scene(page, 1).get_by_label("Duration (seconds)")).not_to_have_attribute("aria-invalid", "true")
    assert http.get(path).json()["scenes"][1]["duration"] != 500
    scene(page, 2).get_by_label("Duration (seconds)").fill("5")
    page.get_by_role("button", name="Save project").click()
    expect(page.locator("#save-status")).to_have_text("Saved Morning at the harbour.")
    expect(page.locator("#project-status")).to_be_hidden()
    expect(scene(page, 2).get_by_label("Duration (seconds)")).not_to_have_attribute("aria-invalid", "true")

    # A reload shows the project as saved.
    page.reload()
    expect(page.locator("#scenes > li")).to_have_count(3)
    assert scripts_in_view(page) == [COFFEE, BOAT, SUNRISE]
    expect(scene(page, 2).get_by_label("Picture or clip")).to_have_value("prompt")
    expect(scene(page, 2).get_by_label("Duration (seconds)")).to_have_value("5")
    expect(page.get_by_label("Track", exact=True)).to_have_value(track)
    expect(page.get_by_label("Brand", exact=True)).to_have_value(brand)
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    # A scene removed from the editor is gone once saved.
    page.get_by_role("button", name="Remove scene 3").click()
    page.get_by_role("button", name="Save project").click()
    expect(page.locator("#save-status")).to_have_text("Saved Morning at the harbour.")
    assert len(http.get(path).json()["scenes"]) == 2
    # A new scene without a picture is kept, but cannot be priced or rendered: the render
    # panel says why and its picture choice is marked; nothing was held.
    page.get_by_role("button", name="Add a scene").click()
    scene(page, 3).get_by_label("Script (narration)").fill("The end.")
    page.get_by_role("button", name="Render video…").click()
    expect(page.locator("#render-error")).to_contain_text("no picture or clip")
    expect(scene(page, 3).get_by_label("Picture or clip")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#quote-box")).to_be_hidden()
    assert http.get(path).json()["scenes"][2] | {"id": None} == {
        "id": None, "script": "The end.", "media": None, "duration": 4, "transition": {"type": "cut", "duration": 0},
    }  # fmt: skip
    assert http.get(f"{site.base}/v1/account").json()["credits"]["held"] == 0
    assert_accessible(page)

    # The list shows the project.
    page.get_by_role("link", name="All projects").click()
    card = page.locator(f'#projects li[data-project-id="{project_id}"]')
    expect(card).to_contain_text("9:16 · 3 scenes")
    assert_accessible(page)
    shot(page, "projects")
    # Someone else's project is a page that does not exist, as on the API.
    stranger = api_session(site, make_person(credits=0))
    answer = stranger.get(f"{site.base}/projects/{project_id}")
    assert answer.status_code == 404 and "There is no such project." in answer.text
    assert stranger.get(path).status_code == 404


def test_a_project_is_priced_then_rendered_on_the_offline_models_and_its_video_plays_in_the_page(
    page, site: Platform, make_person, png_image
):
    person = make_person(credits=50)
    http = api_session(site, person)
    picture = upload(http, site, "harbour.png", png_image.read_bytes())
    made = http.post(
        f"{site.base}/v1/projects",
        json={
            "name": "Harbour short",
            "format": "9:16",
            "target_seconds": 9,
            "scenes": [
                {"script": "Sunrise over the water.", "media": {"file_id": picture}, "duration": 3,
                 "transition": {"type": "fade", "duration": 0.5}},
                {"script": "A boat goes out.", "media": {"prompt": "a red boat at dawn", "kind": "image"},
                 "duration": 3, "transition": {"type": "cut", "duration": 0}},
                {"script": "Coffee is ready.", "media": {"file_id": picture}, "duration": 3,
                 "transition": {"type": "cut", "duration": 0}},
            ],
        },
    )  # fmt: skip
    assert made.status_code == 201, made.text
    project_id = made.json()["id"]

    log_in(page, person, next_path=f"/projects/{project_id}")
    expect(page.locator("#scenes > li")).to_have_count(3)
    expect(page.locator("#render-progress")).to_be_hidden()
    # The price comes first; nothing is held until the render starts.
    page.get_by_role("button", name="Render video…").click()
    expect(page.locator("#quote")).to_contain_text(re.compile(r"^Price: [\d.,]+ credits \(you have 50\.00\)"))
    assert http.get(f"{site.base}/v1/account").json()["credits"]["held"] == 0
    assert_accessible(page)
    page.get_by_role("button", name="Start render").click()
    expect(page.locator("#render-progress")).to_be_visible()
    expect(page.locator("#quote-box")).to_be_hidden()
    run_href = page.locator("#render-run").get_attribute("href") or ""
    assert re.fullmatch(r"/workflow-runs/run_\w+", run_href)
    shot(page, "project-rendering")
    expect(page.locator("#render-state")).to_have_text("succeeded", timeout=180_000)
    expect(page.locator("#render-bar")).to_have_attribute("value", "100")
    expect(page.locator("#render-error")).to_be_hidden()

    # The video plays in the page, as long as its scenes; its captions download beside it.
    video = page.locator("#render-video")
    expect(video).to_be_visible()
    wait_for(video, "v => v.readyState >= 1")
    assert 8 <= video.evaluate("v => v.duration") <= 20
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [720, 1280]
    video.evaluate("v => { v.muted = true; return v.play(); }")
    wait_for(video, "v => v.currentTime > 0.2 && !v.paused")
    srt = page.locator("#render-srt")
    expect(srt).to_be_visible()
    captions = http.get(f"{site.base}{srt.get_attribute('href')}")
    assert captions.status_code == 200 and "-->" in captions.text and "Coffee is ready" in captions.text
    shot(page, "project-rendered")

    project = http.get(f"{site.base}/v1/projects/{project_id}").json()
    assert project["render"]["status"] == "succeeded"
    assert project["render"]["run_id"] == run_href.rsplit("/", 1)[1]
    assert page.locator("#render-download").get_attribute("href") == (
        f"/v1/files/{project['render']['video_file_id']}/content"
    )
    # Opened again, the page shows the last render's video at once.
    page.reload()
    expect(page.locator("#render-state")).to_have_text("succeeded")
    wait_for(page.locator("#render-video"), "v => v.readyState >= 1")
    page.set_viewport_size({"width": 375, "height": 740})
    assert_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    # The list says how the last render went.
    page.get_by_role("link", name="All projects").click()
    card = page.locator(f'#projects li[data-project-id="{project_id}"]')
    expect(card.locator(".badge")).to_have_text("succeeded")
    expect(card).to_contain_text("9:16 · 3 scenes · last render succeeded")
    assert_ledger_clean(site)
