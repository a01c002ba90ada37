"""``params.brand_id`` in ``video.captions`` and ``video.watermark``: the brand's body font and
primary and accent colours style burned captions where the request leaves them out; its logo is
the watermark when ``input.logo_file_id`` is not given. Resolved at submit for the caller's
tenant and written into the job. Refusals (another tenant's brand, a brand without a logo) are
422s naming ``params.brand_id`` that hold nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from faktry.db import transaction
from pipelines import jobtypes, services
from pipelines.services import Policy
from pipelines.workflows import graph
from quotas.pricing import PriceList
from tests.media.test_caption_files import _speech, _transcript
from tests.media.test_edit_jobs import download, frame, grey_clip, held, mean, money_is_exact, run, submit
from tests.web.helpers import upload

__all__ = ["grey_clip"]  # a session fixture of test_edit_jobs, used here too


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("studio", credits=100)


def _brand(client, tenant, **body) -> str:
    r = client.post("/v1/brands", json={"name": "Harbour", **body}, headers=tenant.headers)
    assert r.status_code == 201, r.json
    return r.json["id"]


def _caption_pixels(client, tenant, video_id: str, tmp_path: Path) -> dict[str, int]:
    """Pixels of the caption area (the bottom of a 360x640 frame) that are clearly red, green
    or blue."""
    path = download(client, tenant, video_id, tmp_path / f"{video_id}.mp4")
    out = tmp_path / f"{video_id}.png"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-ss", "0.5", "-i", str(path), "-frames:v", "1", str(out)],
        check=True, timeout=30,
    )  # fmt: skip
    picture = Image.open(out).convert("RGB")
    pixels = list(zip(*(band.tobytes() for band in picture.crop((0, 380, 360, 640)).split()), strict=True))
    return {
        "red": sum(1 for r, g, b in pixels if r > 180 and g < 90 and b < 90),
        "green": sum(1 for r, g, b in pixels if g > 150 and r < 90 and b < 90),
        "blue": sum(1 for r, g, b in pixels if b > 150 and r < 90 and g < 90),
    }


def test_captions_take_the_brands_font_and_colours_and_explicit_params_win(
    client, tenant, worker, runtime, tmp_path
):
    audio = _speech(client, tenant)
    vtt = _transcript(client, tenant, audio["id"])
    brand = _brand(
        client, tenant,
        colors={"primary": "#20c020", "secondary": "#ffffff", "accent": "#2020ff"},
        typography={"body_font": "DejaVu Serif", "heading_font": "DejaVu Sans"},
    )  # fmt: skip
    files = {"file_id": audio["id"], "subtitles_file_id": vtt["id"]}
    styled = run(
        client,
        tenant,
        {
            "type": "video.captions",
            "input": files,
            "params": {"height": 640, "font_size": 40, "brand_id": brand},
        },
    )
    # What the brand gave is recorded in the job: it runs (and replays) the same if the brand changes.
    assert {k: styled["params"][k] for k in ("font_family", "text_color", "outline_color", "brand_id")} == {
        "font_family": "DejaVu Serif", "text_color": "#20c020", "outline_color": "#2020ff", "brand_id": brand,
    }  # fmt: skip
    seen = _caption_pixels(client, tenant, styled["outputs"][0]["id"], tmp_path)
    assert seen["green"] > 100 and seen["blue"] > 100 and seen["red"] < 10

    overridden = run(
        client,
        tenant,
        {
            "type": "video.captions",
            "input": files,
            "params": {"height": 640, "font_size": 40, "brand_id": brand, "text_color": "#FF2020"},
        },
    )
    assert (overridden["params"]["text_color"], overridden["params"]["outline_color"]) == (
        "#FF2020",
        "#2020ff",
    )
    seen = _caption_pixels(client, tenant, overridden["outputs"][0]["id"], tmp_path)
    assert seen["red"] > 100 and seen["blue"] > 100 and seen["green"] < 10
    money_is_exact(runtime)


def test_captions_without_a_brand_keep_the_house_style(tenant, runtime):
    job_type = jobtypes.get("video.captions")
    with transaction(runtime.context.sessions) as session:
        params, _ = services._with_brand(session, tenant.id, job_type, {}, job_type.validate({}), {})
    assert (params["font_family"], params["text_color"], params["outline_color"]) == (
        "DejaVu Sans", "#FFFFFF", "#000000",
    )  # fmt: skip


@pytest.fixture
def red_logo(tmp_path: Path) -> Path:
    path = tmp_path / "logo.png"
    Image.new("RGBA", (100, 50), (230, 20, 20, 255)).save(path)
    return path


def test_a_watermark_with_only_a_brand_puts_the_brands_logo_in_the_corner(
    client, tenant, worker, runtime, grey_clip, red_logo, tmp_path
):
    video = upload(client, tenant, grey_clip).json["id"]
    logo = upload(client, tenant, red_logo).json["id"]
    brand = _brand(client, tenant, logo_file_id=logo)
    body = {
        "type": "video.watermark",
        "input": {"file_id": video},
        "params": {"brand_id": brand, "corner": "top_right", "scale": 0.25, "margin": 0.05, "opacity": 1},
    }
    done = run(client, tenant, body)
    assert done["input"] == {"file_id": video, "logo_file_id": logo}  # recorded in the job
    [out] = done["outputs"]
    picture = frame(download(client, tenant, out["id"], tmp_path / "w.mp4"), 1.0, tmp_path / "w.png")
    r, g, b = mean(picture, (228, 20, 300, 52))
    assert r > 180 and g < 70 and b < 70
    assert all(abs(v - 0x30) < 8 for v in mean(picture, (10, 180, 90, 230)))  # bottom left untouched
    money_is_exact(runtime)


def test_another_tenants_brand_answers_like_an_unknown_one_and_a_logoless_brand_is_refused(
    client, tenant, make_tenant, runtime, grey_clip, red_logo
):
    other = make_tenant("studio", credits=100)
    theirs = _brand(client, other, logo_file_id=upload(client, other, red_logo).json["id"])
    plain = _brand(client, tenant, colors={"primary": "#123456"})
    video = upload(client, tenant, grey_clip).json["id"]
    # The brand is checked before the files: these need not exist.
    ids = {"file_id": video, "subtitles_file_id": "fil_none"}

    def error(body: dict) -> dict:
        r = submit(client, tenant, body)
        assert r.status_code == 422, r.json
        return r.json["error"]

    unknown = {"code": "brand_not_found", "message": "no such brand", "field": "params.brand_id"}
    for brand_id in (theirs, "brd_doesnotexist", "nope"):
        mark = {"type": "video.watermark", "input": {"file_id": video}, "params": {"brand_id": brand_id}}
        caps = {"type": "video.captions", "input": ids, "params": {"brand_id": brand_id}}
        assert error(mark) == unknown and error(caps) == unknown
        r = client.post("/v1/jobs/quote", json=mark, headers=tenant.headers)
        assert r.status_code == 422 and r.json["error"] == unknown
    assert error({"type": "video.watermark", "input": {"file_id": video}, "params": {"brand_id": plain}}) == {
        "code": "no_logo",
        "message": "the brand has no logo in the library; give input.logo_file_id",
        "field": "params.brand_id",
    }
    # Without a brand, the logo is still required, as before.
    assert error({"type": "video.watermark", "input": {"file_id": video}})["field"] == "input.logo_file_id"
    assert held(runtime, tenant) == 0 and held(runtime, other) == 0
    money_is_exact(runtime)


def test_a_workflow_node_takes_a_brand_instead_of_a_logo():
    """The graph checks the params' shape; the brand is resolved when the step launches, through
    the same submit check (pipelines/services.py `prepare`)."""
    policy = Policy(routing=None, prices=PriceList())  # type: ignore[arg-type]
    flow = {
        "inputs": {"source": {"kind": "video"}},
        "nodes": {
            "mark": {"type": "video.watermark", "params": {"brand_id": "brd_x"},
                     "input": {"file_id": {"input": "source"}}},
        },
    }  # fmt: skip
    parsed = graph.parse(flow, policy=policy, limits=None)
    assert parsed.nodes["mark"].params["brand_id"] == "brd_x"
