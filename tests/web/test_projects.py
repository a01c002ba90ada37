"""Video projects over ``/v1/projects``: every part is kept and given back, a refused body names
its field and keeps nothing, files and brands are the tenant's own, another tenant's project
answers like one that does not exist; a project compiles to the workflow graph and timeline
that render it, is priced without holding anything, and renders as a workflow run started
like any other (the submit rate, moderation, the quote held, an Idempotency-Key). The run
itself rendering an MP4 end to end is tests/pipelines/test_project_render.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from faktry.db import transaction
from pipelines.projects.models import Project
from quotas.models import Hold
from tests.web.helpers import upload

UNKNOWN_FILE = "fil_" + "0" * 24


def count_projects(app: Any, tenant_id: str) -> int:
    with transaction(app.extensions["faktry"].sessions) as s:
        return int(
            s.scalar(select(func.count()).select_from(Project).where(Project.tenant_id == tenant_id)) or 0
        )


def holds_of(app: Any, tenant_id: str) -> int:
    with transaction(app.extensions["faktry"].sessions) as s:
        return int(s.scalar(select(func.count()).select_from(Hold).where(Hold.tenant_id == tenant_id)) or 0)


@pytest.fixture
def library(client, tenant, png_image, clip_small, wav) -> dict[str, str]:
    return {
        "image": upload(client, tenant, png_image, name="harbour.png").json["id"],
        "video": upload(client, tenant, clip_small).json["id"],
        "audio": upload(client, tenant, wav).json["id"],
        "logo": upload(client, tenant, png_image, name="logo.png").json["id"],
    }


def full_body(files: dict[str, str], brand_id: str | None = None) -> dict[str, Any]:
    """A project with every part filled in: a library still, a generated still, a generated
    clip and the library still again; library music; a brand."""
    return {
        "name": "Harbour mornings",
        "description": "A short for the spring campaign.",
        "idea": "Coffee at dawn by the sea, told in four beats.",
        "style": {"notes": "warm light, film grain", "caption": {"size": 40, "color": "#FFEE00"}},
        "format": "9:16",
        "target_seconds": 15,
        "brand_id": brand_id,
        "voice": {"model": "local-speech", "voice": "en"},
        "music": {"file_id": files["audio"], "volume": 0.5},
        "scenes": [
            {
                "id": "open",
                "script": "The harbour wakes before the town.",
                "media": {"file_id": files["image"]},
                "duration": 3,
                "transition": {"type": "fade", "duration": 0.5},
            },
            {
                "id": "boats",
                "script": "",
                "media": {"prompt": "fishing boats at dawn", "kind": "image"},
                "duration": 2.5,
                "transition": {"type": "cut"},
            },
            {
                "id": "waves",
                "script": "Waves, and the first cup.",
                "media": {"prompt": "slow waves on a pier", "kind": "video", "model": "local-video"},
                "duration": 4,
            },
            {
                "id": "close",
                "script": "See you tomorrow.",
                "media": {"file_id": files["image"]},
                "duration": 2,
            },
        ],
    }


def make_brand(client: Any, tenant: Any, logo: str | None = None) -> str:
    body = {
        "name": "Northwind",
        "logo_file_id": logo,
        "colors": {"primary": "#0A3D62", "accent": "#e58e26"},
        "typography": {"body_font": "Inter"},
    }
    r = client.post("/v1/brands", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.json
    return str(r.json["id"])


# -- keeping a project ---------------------------------------------------------------------------


def test_a_project_keeps_every_part_and_is_read_listed_changed_and_deleted(client, tenant, library):
    brand_id = make_brand(client, tenant)
    body = full_body(library, brand_id)
    r = client.post("/v1/projects", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.json
    project = r.json
    assert r.headers["Location"] == f"/v1/projects/{project['id']}" and project["id"].startswith("prj_")
    assert (project["object"], project["last_run_id"], project["render"]) == ("project", None, None)
    for field in ("name", "description", "idea", "format", "target_seconds", "brand_id", "voice"):
        assert project[field] == body[field], field
    # Every part in its full shape: colours in lower case, defaults filled in.
    assert project["style"] == {
        "notes": "warm light, film grain",
        "caption": {"font": None, "color": "#ffee00", "outline": None, "size": 40, "burn": True},
    }
    assert project["music"] == {"file_id": library["audio"], "volume": 0.5}
    assert project["scenes"][1] == {
        "id": "boats", "script": "", "duration": 2.5, "transition": {"type": "cut", "duration": 0},
        "media": {"prompt": "fishing boats at dawn", "kind": "image", "model": None},
    }  # fmt: skip
    assert project["scenes"][2]["transition"] == {"type": "cut", "duration": 0}
    assert project["scenes"][0]["transition"] == {"type": "fade", "duration": 0.5}
    assert client.get(f"/v1/projects/{project['id']}", headers=tenant.headers).json == project

    plain = client.post("/v1/projects", json={"name": "Draft"}, headers=tenant.headers).json
    assert {k: plain[k] for k in ("description", "idea", "format", "target_seconds", "brand_id")} == {
        "description": "", "idea": "", "format": "9:16", "target_seconds": 30, "brand_id": None,
    }  # fmt: skip
    assert (plain["scenes"], plain["music"], plain["voice"]) == ([], None, {"model": None, "voice": None})
    assert plain["style"]["caption"] == {
        "font": None,
        "color": None,
        "outline": None,
        "size": 0,
        "burn": True,
    }
    # A scene sent without an id gets one.
    r = client.patch(
        f"/v1/projects/{plain['id']}", json={"scenes": [{"script": "Hi"}]}, headers=tenant.headers
    )
    scene = r.json["scenes"][0]
    assert scene["id"].startswith("scn_") and scene["media"] is None and scene["duration"] == 4

    page = client.get("/v1/projects?limit=1", headers=tenant.headers).json
    assert [p["id"] for p in page["data"]] == [plain["id"]] and page["next_cursor"]
    rest = client.get(f"/v1/projects?limit=1&cursor={page['next_cursor']}", headers=tenant.headers).json
    assert [p["id"] for p in rest["data"]] == [project["id"]] and rest["next_cursor"] is None

    # A change replaces what it sends; style (and its caption) and voice merge key by key.
    change = {
        "style": {"caption": {"burn": False}},
        "voice": {"voice": "de"},
        "scenes": body["scenes"][:2],
        "music": {"prompt": "soft piano"},
        "format": "16:9",
    }
    r = client.patch(f"/v1/projects/{project['id']}", json=change, headers=tenant.headers)
    assert r.status_code == 200, r.json
    changed = r.json
    assert changed["style"] == {
        "notes": "warm light, film grain",
        "caption": {"font": None, "color": "#ffee00", "outline": None, "size": 40, "burn": False},
    }
    assert changed["voice"] == {"model": "local-speech", "voice": "de"}
    assert [s["id"] for s in changed["scenes"]] == ["open", "boats"]
    assert changed["music"] == {"prompt": "soft piano", "model": None, "volume": 0.6}
    assert (changed["format"], changed["name"]) == ("16:9", body["name"])
    assert changed["updated_at"] >= project["updated_at"] and changed["created_at"] == project["created_at"]
    r = client.patch(
        f"/v1/projects/{project['id']}", json={"music": None, "brand_id": None}, headers=tenant.headers
    )
    assert (r.json["music"], r.json["brand_id"]) == (None, None)

    assert client.delete(f"/v1/projects/{project['id']}", headers=tenant.headers).status_code == 204
    r = client.get(f"/v1/projects/{project['id']}", headers=tenant.headers)
    assert r.status_code == 404 and r.json["error"] == {
        "code": "project_not_found",
        "message": "no such project",
    }
    # Its library files and brand stay.
    assert client.get(f"/v1/files/{library['image']}", headers=tenant.headers).status_code == 200
    assert client.get(f"/v1/brands/{brand_id}", headers=tenant.headers).status_code == 200


def test_deleting_a_brand_leaves_its_projects_without_one(client, tenant):
    brand_id = make_brand(client, tenant)
    project = client.post(
        "/v1/projects", json={"name": "p", "brand_id": brand_id}, headers=tenant.headers
    ).json
    assert client.delete(f"/v1/brands/{brand_id}", headers=tenant.headers).status_code == 204
    assert client.get(f"/v1/projects/{project['id']}", headers=tenant.headers).json["brand_id"] is None


def _scenes(*scenes: dict[str, Any]) -> dict[str, Any]:
    return {"name": "x", "scenes": list(scenes)}


REFUSED = [
    ({"idea": "no name"}, "name", "invalid_request"),
    ({"name": " "}, "name", "invalid_request"),
    ({"name": "x", "colour": "red"}, "colour", "unknown_field"),
    ({"name": "x", "format": "4:3"}, "format", "invalid_request"),
    ({"name": "x", "target_seconds": 0}, "target_seconds", "invalid_request"),
    ({"name": "x", "idea": "half \ud800 a pair"}, "idea", "invalid_request"),
    ({"name": "x", "style": {"caption": {"color": "red"}}}, "style.caption.color", "invalid_request"),
    ({"name": "x", "style": {"font": "Inter"}}, "style.font", "unknown_field"),
    ({"name": "x", "voice": {"model": "gpt-image-1"}}, "voice.model", "unknown_model"),
    ({"name": "x", "music": {"volume": 1}}, "music", "invalid_music"),
    ({"name": "x", "music": {"file_id": UNKNOWN_FILE, "model": "local-music"}}, "music.model", "invalid_music"),
    ({"name": "x", "music": {"prompt": "piano", "volume": 3}}, "music.volume", "invalid_request"),
    ({"name": "x", "music": {"prompt": "piano", "model": "local-speech"}}, "music.model", "unknown_model"),
    ({"name": "x", "music": {"file_id": UNKNOWN_FILE}}, "music.file_id", "file_not_found"),
    ({"name": "x", "brand_id": "brd_" + "0" * 24}, "brand_id", "brand_not_found"),
    ({"name": "x", "scenes": "one"}, "scenes", "invalid_request"),
    ({"name": "x", "scenes": [{}] * 31}, "scenes", "invalid_request"),
    (_scenes({}, {"zoom": 2}), "scenes[1].zoom", "unknown_field"),
    (_scenes({"duration": 0.1}), "scenes[0].duration", "invalid_request"),
    (_scenes({"script": "s" * 5001}), "scenes[0].script", "invalid_request"),
    (_scenes({"id": "a b"}), "scenes[0].id", "invalid_request"),
    (_scenes({"id": "a"}, {"id": "b"}, {"id": "a"}), "scenes[2].id", "duplicate_scene_id"),
    (_scenes({"media": {"file_id": UNKNOWN_FILE, "prompt": "p"}}), "scenes[0].media", "invalid_media"),
    (_scenes({"media": {}}), "scenes[0].media", "invalid_media"),
    (_scenes({"media": {"file_id": UNKNOWN_FILE, "kind": "image"}}), "scenes[0].media.kind", "invalid_media"),
    (_scenes({"media": {"prompt": "p", "kind": "audio"}}), "scenes[0].media.kind", "invalid_request"),
    (_scenes({"media": {"prompt": "p", "size": 9}}), "scenes[0].media.size", "unknown_field"),
    (_scenes({"media": {"prompt": " "}}), "scenes[0].media.prompt", "invalid_request"),
    (
        _scenes({"media": {"prompt": "p", "kind": "video", "model": "local-image"}}),
        "scenes[0].media.model",
        "unknown_model",
    ),
    (_scenes({"media": {"file_id": UNKNOWN_FILE}}), "scenes[0].media.file_id", "file_not_found"),
    (_scenes({"transition": {"type": "spin"}}), "scenes[0].transition.type", "invalid_request"),
    (_scenes({"transition": {"duration": 1}}), "scenes[0].transition.type", "invalid_request"),
    (_scenes({"transition": {"type": "fade", "duration": 3}}), "scenes[0].transition.duration", "invalid_request"),
    (
        _scenes({"duration": 3}, {"duration": 1, "transition": {"type": "fade", "duration": 1}}, {"duration": 5}),
        "scenes[1].transition.duration",
        "transition_too_long",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field", "code"), REFUSED)
def test_a_refused_project_names_its_field_and_keeps_nothing(app, client, tenant, body, field, code):
    r = client.post("/v1/projects", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.json
    assert (r.json["error"]["field"], r.json["error"]["code"]) == (field, code), r.json
    assert count_projects(app, tenant.id) == 0
    if "name" not in body:
        return  # only a new project needs a name
    # The same change to a project that exists is refused the same way, and changes nothing.
    made = client.post("/v1/projects", json={"name": "Kept"}, headers=tenant.headers).json
    change = {k: v for k, v in body.items() if k != "name"} or body
    r = client.patch(f"/v1/projects/{made['id']}", json=change, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == field, r.json
    assert client.get(f"/v1/projects/{made['id']}", headers=tenant.headers).json == made


def test_scene_and_music_files_are_the_tenants_own_library_files_of_the_right_kind(
    app, client, make_tenant, png_image, wav
):
    mine, theirs = make_tenant(), make_tenant()
    my_image = upload(client, mine, png_image).json["id"]
    my_sound = upload(client, mine, wav).json["id"]
    their_image = upload(client, theirs, png_image).json["id"]
    their_sound = upload(client, theirs, wav).json["id"]

    def refusal(body: dict[str, Any]) -> Any:
        r = client.post("/v1/projects", json={"name": "p", **body}, headers=mine.headers)
        assert r.status_code == 422, r.json
        return r.json["error"]

    def scene(file_id: str) -> dict[str, Any]:
        return {"scenes": [{"media": {"file_id": my_image}}, {"media": {"file_id": file_id}}]}

    # Another tenant's file answers exactly like one that does not exist.
    for wrap, theirs_id, path in (
        (scene, their_image, "scenes[1].media.file_id"),
        (lambda f: {"music": {"file_id": f}}, their_sound, "music.file_id"),
    ):
        theirs_error, unknown_error = refusal(wrap(theirs_id)), refusal(wrap(UNKNOWN_FILE))
        assert (
            theirs_error
            == unknown_error
            == {"code": "file_not_found", "message": "no such file", "field": path}
        )
    assert refusal(scene(my_sound))["code"] == "wrong_file_kind"
    assert refusal({"music": {"file_id": my_image}}) == {
        "code": "wrong_file_kind", "message": "this file is image; music.file_id takes audio",
        "field": "music.file_id",
    }  # fmt: skip
    their_brand = make_brand(client, theirs)
    assert refusal({"brand_id": their_brand}) == refusal({"brand_id": "brd_" + "0" * 24})
    assert count_projects(app, mine.id) == 0


def test_another_tenants_project_answers_every_route_like_an_unknown_one(client, make_tenant, png_image):
    owner, stranger = make_tenant(), make_tenant()
    image = upload(client, owner, png_image).json["id"]
    body = {"name": "secret", "scenes": [{"script": "Hi.", "media": {"file_id": image}}]}
    project = client.post("/v1/projects", json=body, headers=owner.headers).json
    unknown = "prj_" + "0" * 24
    calls = [
        ("GET", "/v1/projects/{}", None), ("PATCH", "/v1/projects/{}", {"name": "taken over"}),
        ("GET", "/v1/projects/{}/timeline", None), ("POST", "/v1/projects/{}/quote", None),
        ("POST", "/v1/projects/{}/render", None), ("DELETE", "/v1/projects/{}", None),
    ]  # fmt: skip
    for method, path, sent in calls:
        theirs = client.open(path.format(project["id"]), method=method, json=sent, headers=stranger.headers)
        none = client.open(path.format(unknown), method=method, json=sent, headers=stranger.headers)
        assert theirs.status_code == none.status_code == 404, (method, path)
        assert (
            theirs.json == none.json == {"error": {"code": "project_not_found", "message": "no such project"}}
        )
    assert client.get("/v1/projects", headers=stranger.headers).json["data"] == []
    assert client.get(f"/v1/projects/{project['id']}", headers=owner.headers).json == project


# -- compiling -----------------------------------------------------------------------------------


def test_a_project_compiles_to_a_graph_of_narrations_generations_and_one_render(client, tenant, library):
    brand_id = make_brand(client, tenant, logo=library["logo"])
    project = client.post("/v1/projects", json=full_body(library, brand_id), headers=tenant.headers).json
    r = client.get(f"/v1/projects/{project['id']}/timeline", headers=tenant.headers)
    assert r.status_code == 200, r.json
    answer = r.json
    assert (answer["object"], answer["project_id"]) == ("project_timeline", project["id"])
    # Scene durations less the one fade.
    assert answer["seconds"] == 3 + 2.5 + 4 + 2 - 0.5
    image, audio, logo = library["image"], library["audio"], library["logo"]
    assert answer["file_ids"] == [
        image,
        {"node": "narrate_1", "output": 0},
        {"node": "media_2", "output": 0},
        {"node": "media_3", "output": 0},
        {"node": "narrate_3", "output": 0},
        {"node": "narrate_4", "output": 0},
        audio,
        logo,
    ]  # the still used twice is listed once
    speech = {"model": "local-speech", "voice": "en"}
    nodes = answer["graph"]["nodes"]
    assert answer["graph"]["inputs"] == {}
    assert set(nodes) == {"narrate_1", "media_2", "media_3", "narrate_3", "narrate_4", "render"}
    assert nodes["narrate_1"] == {
        "type": "speech.synthesize", "params": speech, "input": {"text": "The harbour wakes before the town."}
    }  # fmt: skip
    # A generated still is the frame's size; a generated clip the format's shape and long
    # enough for its scene; both take the project's style notes.
    assert nodes["media_2"] == {
        "type": "image.generate",
        "params": {"model": "local-image", "width": 720, "height": 1280},
        "input": {"prompt": "fishing boats at dawn\n\nStyle: warm light, film grain"},
    }
    assert nodes["media_3"] == {
        "type": "video.generate",
        "params": {"model": "local-video", "aspect_ratio": "9:16", "duration": 4},
        "input": {"prompt": "slow waves on a pier\n\nStyle: warm light, film grain"},
    }
    render = nodes["render"]
    assert render["type"] == "video.render" and render["input"] == {"file_ids": answer["file_ids"]}
    assert render["params"] == {"timeline": answer["timeline"]}
    timeline = answer["timeline"]
    assert timeline["format"] == {"width": 720, "height": 1280, "fps": 30}
    assert timeline["video"] == [
        {"id": "s1", "file": 0, "duration": 3, "motion": "pan_zoom", "fit": "crop", "hold_for": "n1",
         "transition": {"type": "fade", "duration": 0.5}},
        {"id": "s2", "file": 2, "duration": 2.5, "motion": "pan_zoom", "fit": "crop"},
        {"id": "s3", "file": 3, "duration": 4, "fit": "crop", "hold_for": "n3"},
        {"id": "s4", "file": 0, "duration": 2, "motion": "pan_zoom", "fit": "crop", "hold_for": "n4"},
    ]  # fmt: skip
    narration = [a for a in timeline["audio"] if a["role"] == "narration"]
    assert [(a["id"], a["file"], a["at"], a["text"]) for a in narration] == [
        ("n1", 1, {"clip": "s1", "offset": 0.25}, "The harbour wakes before the town."),
        ("n3", 4, {"clip": "s3", "offset": 0.25}, "Waves, and the first cup."),
        ("n4", 5, {"clip": "s4", "offset": 0.25}, "See you tomorrow."),
    ]
    assert timeline["audio"][-1] == {
        "id": "m",
        "file": 6,
        "role": "music",
        "at": 0,
        "volume": 0.5,
        "loop": True,
    }
    assert timeline["captions"] == {"from": "narration", "burn": True, "srt": True, "max_chars": 28}
    # The project's caption colour wins; the brand gives the font and the outline.
    assert timeline["style"] == {"font": "Inter", "color": "#ffee00", "outline": "#e58e26", "size": 40}
    assert timeline["loudness"] == {"target_lufs": -14}
    assert timeline["watermark"] == {
        "file": 7, "corner": "bottom_right", "margin": 24, "opacity": 0.85, "width": 0.18
    }  # fmt: skip
    # It is a timeline the render takes.
    from pipelines import timeline as timelines

    timelines.validate(timeline)
    timelines.check(timeline, kinds=["image", "audio", "image", "video", "audio", "audio", "audio", "image"])
    assert timelines.stated_seconds(timeline) == answer["seconds"]


def test_music_from_a_prompt_and_no_narration_compile_without_captions(client, tenant, png_image):
    image = upload(client, tenant, png_image).json["id"]
    body = {
        "name": "silent",
        "format": "1:1",
        "music": {"prompt": "soft piano"},
        "scenes": [{"media": {"file_id": image}, "duration": 5}],
    }
    project = client.post("/v1/projects", json=body, headers=tenant.headers).json
    answer = client.get(f"/v1/projects/{project['id']}/timeline", headers=tenant.headers).json
    nodes = answer["graph"]["nodes"]
    assert nodes["music"] == {
        "type": "music.generate",
        "params": {"model": "local-music", "is_instrumental": True, "duration": 5},
        "input": {"prompt": "soft piano"},
    }
    timeline = answer["timeline"]
    assert timeline["format"] == {"width": 1080, "height": 1080, "fps": 30}
    assert timeline["captions"] == {"from": "none", "burn": False, "srt": False, "max_chars": 32}
    assert timeline["style"] == {"font": "DejaVu Sans", "color": "#ffffff", "outline": "#000000", "size": 0}
    assert "watermark" not in timeline
    assert answer["file_ids"] == [image, {"node": "music", "output": 0}]


def test_a_project_that_cannot_render_names_the_field_to_fix(client, tenant, png_image):
    image = upload(client, tenant, png_image).json["id"]

    def refused(body: dict[str, Any]) -> Any:
        project = client.post("/v1/projects", json={"name": "p", **body}, headers=tenant.headers).json
        answers = [
            client.get(f"/v1/projects/{project['id']}/timeline", headers=tenant.headers),
            client.post(f"/v1/projects/{project['id']}/quote", headers=tenant.headers),
            client.post(f"/v1/projects/{project['id']}/render", headers=tenant.headers),
        ]
        assert {r.status_code for r in answers} == {422}, [r.json for r in answers]
        assert answers[0].json == answers[1].json == answers[2].json
        return answers[0].json["error"]

    assert refused({}) == {"code": "no_scenes", "message": "the project has no scenes yet", "field": "scenes"}
    error = refused({"scenes": [{"media": {"file_id": image}}, {"script": "Hi"}]})
    assert (error["code"], error["field"]) == ("scene_without_media", "scenes[1].media")
    error = refused({"voice": {"voice": "x" * 41}, "scenes": [{"script": "Hi", "media": {"file_id": image}}]})
    assert (error["code"], error["field"]) == ("invalid_request", "voice.voice")
    # A file that has left the library since it was picked.
    gone = upload(client, tenant, png_image).json["id"]
    body = {"scenes": [{"media": {"file_id": image}}, {"media": {"file_id": gone}}]}
    project = client.post("/v1/projects", json={"name": "p", **body}, headers=tenant.headers).json
    assert client.delete(f"/v1/files/{gone}", headers=tenant.headers).status_code == 204
    r = client.get(f"/v1/projects/{project['id']}/timeline", headers=tenant.headers)
    assert r.status_code == 422
    assert (r.json["error"]["code"], r.json["error"]["field"]) == (
        "file_not_found",
        "scenes[1].media.file_id",
    )


# -- price and render ----------------------------------------------------------------------------


def test_the_quote_prices_every_node_and_holds_nothing(app, client, tenant, library):
    project = client.post("/v1/projects", json=full_body(library), headers=tenant.headers).json
    r = client.post(f"/v1/projects/{project['id']}/quote", headers=tenant.headers)
    assert r.status_code == 200, r.json
    quote = r.json
    assert (quote["object"], quote["project_id"], quote["currency"]) == (
        "project_quote",
        project["id"],
        "millicredits",
    )
    assert set(quote["nodes"]) == {"narrate_1", "media_2", "media_3", "narrate_3", "narrate_4", "render"}
    assert quote["price"] == sum(n["price"] for n in quote["nodes"].values()) > 0
    assert quote["nodes"]["render"]["price"] > 0
    assert quote["sufficient"] is True and quote["available"] >= quote["price"]
    assert quote["seconds"] == 11
    assert holds_of(app, tenant.id) == 0


def test_rendering_starts_a_workflow_run_of_the_compiled_graph(app, client, tenant, library):
    project = client.post("/v1/projects", json=full_body(library), headers=tenant.headers).json
    quote = client.post(f"/v1/projects/{project['id']}/quote", headers=tenant.headers).json
    r = client.post(f"/v1/projects/{project['id']}/render", headers=tenant.headers)
    assert r.status_code == 202, r.json
    run = r.json
    assert r.headers["Location"] == f"/v1/workflow-runs/{run['id']}"
    assert (run["object"], run["status"], run["reuse"]) == ("workflow_run", "running", True)
    assert run["cost"]["quoted"] == quote["price"]
    assert set(run["nodes"]) == set(quote["nodes"])
    # The steps with nothing to wait for are queued at once; the render waits for them.
    assert run["nodes"]["narrate_1"]["status"] == "queued" and run["nodes"]["media_2"]["status"] == "queued"
    assert run["nodes"]["render"]["status"] == "waiting"
    timeline = client.get(f"/v1/projects/{project['id']}/timeline", headers=tenant.headers).json
    with transaction(app.extensions["faktry"].sessions) as s:
        from pipelines.workflows.models import WorkflowRun

        assert s.get(WorkflowRun, run["id"]).graph == timeline["graph"]
    read = client.get(f"/v1/projects/{project['id']}", headers=tenant.headers).json
    assert read["last_run_id"] == run["id"]
    assert read["render"] == {
        "run_id": run["id"], "status": "running", "progress": 0.0, "video_file_id": None,
        "subtitles_file_id": None, "error": None,
    }  # fmt: skip
    listed = client.get("/v1/projects", headers=tenant.headers).json["data"]
    assert listed[0]["render"] == read["render"]
    assert holds_of(app, tenant.id) >= 1


def test_a_render_with_the_same_idempotency_key_answers_the_run_it_started(client, tenant, library):
    project = client.post("/v1/projects", json=full_body(library), headers=tenant.headers).json
    headers = {**tenant.headers, "Idempotency-Key": "render-1"}
    first = client.post(f"/v1/projects/{project['id']}/render", json={"reuse": False}, headers=headers)
    again = client.post(f"/v1/projects/{project['id']}/render", json={"reuse": False}, headers=headers)
    assert first.status_code == again.status_code == 202, again.json
    assert first.json["id"] == again.json["id"] and first.json["reuse"] is False
    # The same key after the project has changed is another request.
    client.patch(f"/v1/projects/{project['id']}", json={"format": "16:9"}, headers=tenant.headers)
    r = client.post(f"/v1/projects/{project['id']}/render", json={"reuse": False}, headers=headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "idempotency_key_reused"
    r = client.post(f"/v1/projects/{project['id']}/render", json={"reuse": "yes"}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["field"] == "reuse"
    r = client.post(f"/v1/projects/{project['id']}/render", json={"quality": 1}, headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "unknown_field"


def test_a_blocked_script_starts_nothing_and_holds_nothing(app, client, tenant, png_image):
    image = upload(client, tenant, png_image).json["id"]
    body = {
        "name": "p",
        "scenes": [{"script": "how to build a bomb step by step", "media": {"file_id": image}}],
    }
    project = client.post("/v1/projects", json=body, headers=tenant.headers).json
    r = client.post(f"/v1/projects/{project['id']}/render", headers=tenant.headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "content_blocked"
    assert holds_of(app, tenant.id) == 0
    assert client.get(f"/v1/projects/{project['id']}", headers=tenant.headers).json["last_run_id"] is None


def test_a_render_spends_one_submit_of_the_tiers_rate(client, make_tenant, make_tier, png_image):
    handle = make_tenant(make_tier(submits_per_minute=1))
    image = upload(client, handle, png_image).json["id"]
    body = {"name": "p", "scenes": [{"script": "One.", "media": {"file_id": image}}]}
    project = client.post("/v1/projects", json=body, headers=handle.headers).json
    assert client.post(f"/v1/projects/{project['id']}/render", headers=handle.headers).status_code == 202
    r = client.post(f"/v1/projects/{project['id']}/render", headers=handle.headers)
    assert r.status_code == 429 and r.json["error"]["code"] == "rate_limited"


def test_a_render_short_of_credits_holds_nothing(app, client, make_tenant, png_image):
    handle = make_tenant(credits=0)
    image = upload(client, handle, png_image).json["id"]
    body = {"name": "p", "scenes": [{"script": "One.", "media": {"file_id": image}}]}
    project = client.post("/v1/projects", json=body, headers=handle.headers).json
    quote = client.post(f"/v1/projects/{project['id']}/quote", headers=handle.headers).json
    assert quote["sufficient"] is False
    r = client.post(f"/v1/projects/{project['id']}/render", headers=handle.headers)
    assert r.status_code == 402, r.json
    assert holds_of(app, handle.id) == 0
    assert client.get(f"/v1/projects/{project['id']}", headers=handle.headers).json["render"] is None


# -- the account -------------------------------------------------------------------------------


def test_projects_are_in_the_account_export_with_their_last_render(client, make_tenant, png_image):
    person, other = make_tenant(), make_tenant()
    image = upload(client, person, png_image).json["id"]
    body = {"name": "Mine", "idea": "an idea", "scenes": [{"script": "Hello.", "media": {"file_id": image}}]}
    project = client.post("/v1/projects", json=body, headers=person.headers).json
    run = client.post(f"/v1/projects/{project['id']}/render", headers=person.headers).json
    client.post("/v1/projects", json={"name": "Theirs"}, headers=other.headers)
    data = client.get("/v1/account/export", headers=person.headers).json
    [exported] = data["projects"]
    assert exported == client.get(f"/v1/projects/{project['id']}", headers=person.headers).json
    assert exported["render"]["run_id"] == run["id"] and exported["scenes"][0]["script"] == "Hello."
    assert "Theirs" not in json.dumps(data)


def test_the_timeline_schema_is_served_as_published(client):
    r = client.get("/v1/timeline.schema.json")
    assert r.status_code == 200
    published = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "timeline.schema.json").read_text()
    )
    assert r.json == published
    assert r.json["properties"]["video"]["type"] == "array"
