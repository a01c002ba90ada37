"""The ready-made workflows parse on the smallest tier and show what the issue promised."""

from __future__ import annotations

import pytest

from pipelines.routing import RoutingLimits
from pipelines.services import Policy
from pipelines.workflows import graph, templates
from quotas.limits import DEFAULT_TIERS, TierLimits
from quotas.pricing import PriceList

POLICY = Policy(routing=RoutingLimits(large_input_bytes=10**9, large_input_seconds=600), prices=PriceList())
FREE = TierLimits(name="free", **DEFAULT_TIERS["free"])


@pytest.mark.parametrize("template", templates.all_templates(), ids=lambda t: t["id"])
def test_every_template_parses_on_the_free_tier(template):
    parsed = graph.parse(template["graph"], policy=POLICY, limits=FREE)
    assert list(parsed.nodes) == list(template["graph"]["nodes"])
    assert template["name"] and template["description"]


def test_web_ready_video_makes_every_rendition_from_the_source():
    parsed = graph.parse(templates.TEMPLATES[0]["graph"], policy=POLICY, limits=FREE)
    nodes = parsed.nodes
    assert {n.params.get("preset") for n in nodes.values() if n.type == "video.transcode"} == {
        "mp4_1080p", "mp4_480p", "hls",
    }  # fmt: skip
    assert nodes["sprite"].params["sprite"] is True and nodes["probe"].type == "media.probe"
    assert all(graph.upstream(parsed, name) == set() for name in nodes)  # all from the source


def test_podcast_clip_burns_the_transcripts_subtitles_into_a_portrait_video():
    parsed = graph.parse(templates.TEMPLATES[1]["graph"], policy=POLICY, limits=FREE)
    assert parsed.order == ["transcript", "clip"]
    assert parsed.nodes["transcript"].output_kinds == ("subtitles",)
    assert parsed.nodes["clip"].type == "video.captions"
    episode = graph.FileFacts("fil_a", "audio", 1, {"duration": 90.0}, "0" * 64)
    priced = graph.quote(parsed, {"source": [episode]}, POLICY)
    assert priced.nodes["transcript"].price == 150  # whisper-1: 100 a minute of the input
    assert priced.nodes["clip"].price == 1500  # 1.5 minutes of captioned video at 1000


def test_product_shots_generates_on_the_offline_model_then_resizes_three_ways():
    parsed = graph.parse(templates.TEMPLATES[2]["graph"], policy=POLICY, limits=FREE)
    assert parsed.nodes["shot"].model == "local-image" and parsed.nodes["shot"].provider == "local"
    sizes = [
        (n.params["width"], n.params["height"]) for n in parsed.nodes.values() if n.type == "image.resize"
    ]
    assert len(set(sizes)) == 3
    assert graph.quote(parsed, {}, POLICY).total == 50 + 3 * 100
