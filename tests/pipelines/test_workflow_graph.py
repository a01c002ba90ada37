"""Workflow graphs are checked whole before anything is held: every problem at once, each naming
its node and field; run inputs are bound to the tenant's own files only; the quote is the sum
of the nodes' prices, fan-out included (pipelines/workflows/graph.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import func, select

from faktry.db import for_tenant, transaction
from pipelines.routing import RoutingLimits
from pipelines.services import Policy
from pipelines.workflows import graph
from pipelines.workflows.graph import FileFacts, WorkflowInvalid
from pipelines.workflows.models import Workflow
from quotas import ledger
from quotas.limits import DEFAULT_TIERS, TierLimits
from quotas.models import Hold
from quotas.pricing import PriceList
from tests.web.helpers import upload

POLICY = Policy(routing=RoutingLimits(large_input_bytes=10**9, large_input_seconds=600), prices=PriceList())
FREE = TierLimits(name="free", **DEFAULT_TIERS["free"])
RESIZE = {"width": 64, "height": 64}


def _problems(raw: Any, limits: TierLimits = FREE) -> set[tuple[str | None, str | None, str]]:
    with pytest.raises(WorkflowInvalid) as caught:
        graph.parse(raw, policy=POLICY, limits=limits)
    err = caught.value
    assert err.status == 422 and err.code == "invalid_workflow"
    assert err.to_dict()["problems"] == err.problems
    for problem in err.problems:
        assert set(problem) == {"node", "field", "code", "message"} and problem["message"]
    return {(p["node"], p["field"], p["code"]) for p in err.problems}


def _node(type_: str, file_ref: Any = None, **params: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": type_, "params": params}
    if file_ref is not None:
        node["input"] = {"file_id": file_ref}
    return node


def test_a_graph_with_many_faults_reports_every_problem_at_once_each_naming_its_node_and_field():
    raw = {
        "inputs": {"voice": {"kind": "audio"}, "bad": {"kind": "smell"}},
        "colour": "blue",
        "nodes": {
            "unknown": {"type": "video.sharpen"},
            "badparams": _node("image.resize", {"input": "voice"}, width=0, height=10),
            "badmodel": {"type": "image.generate", "params": {"model": "gpt-9"}, "input": {"prompt": "x"}},
            "badfield": {
                "type": "image.resize",
                "params": RESIZE,
                "input": {"file_id": "fil_x", "colour": 1},
            },
            "noinput": _node("image.resize", {"input": "nowhere"}, **RESIZE),
            "nonode": _node("image.resize", {"node": "ghost", "output": 0}, **RESIZE),
            "Bad-Name": _node("image.resize", {"input": "voice"}, **RESIZE),
            "extra": {"type": "media.probe", "input": {"file_id": "fil_x"}, "when": "now"},
            "noprompt": {"type": "image.generate", "params": {"model": "local-image"}, "input": {}},
        },
    }
    assert _problems(raw) == {
        (None, "colour", "unknown_field"),
        (None, "inputs.bad.kind", "invalid_request"),
        ("unknown", "type", "unknown_job_type"),
        ("badparams", "params.width", "invalid_request"),
        ("badparams", "input.file_id", "kind_mismatch"),  # audio into image.resize: said as well
        ("badmodel", "params.model", "unknown_model"),
        ("badfield", "input.colour", "unknown_field"),
        ("noinput", "input.file_id", "unknown_input"),
        ("nonode", "input.file_id", "unknown_node"),
        ("Bad-Name", None, "invalid_name"),
        ("extra", "when", "unknown_field"),
        ("noprompt", "input.prompt", "invalid_request"),
    }


def test_params_are_checked_as_a_single_submit_checks_them():
    """The same checks as POST /v1/jobs: the schema with its defaults, and checks across fields."""
    sprite = _node("video.thumbnail", {"input": "v"}, sprite=True, columns=20, width=3840)
    assert _problems({"inputs": {"v": {"kind": "video"}}, "nodes": {"sheet": sprite}}) == {
        ("sheet", "params.width", "output_too_large")
    }
    parsed = graph.parse(
        {"inputs": {"v": {"kind": "video"}}, "nodes": {"t": _node("video.thumbnail", {"input": "v"})}},
        policy=POLICY,
        limits=FREE,
    )
    assert parsed.nodes["t"].params["format"] == "jpeg"  # defaults applied


def test_a_node_that_takes_audio_cannot_consume_an_image():
    raw = {
        "inputs": {"photo": {"kind": "image"}},
        "nodes": {
            "small": _node("image.resize", {"input": "photo"}, **RESIZE),
            "words": {
                "type": "speech.transcribe",
                "params": {"model": "local-transcribe"},
                "input": {"file_id": {"node": "small", "output": 0}},
            },
            "mp3": _node("video.transcode", {"input": "photo"}, preset="audio_mp3"),
            "hls": _node("video.transcode", {"node": "small", "output": 0}, preset="hls"),
            "probe_hls": _node("media.probe", {"node": "hls", "output": 0}),
        },
    }
    with pytest.raises(WorkflowInvalid) as caught:
        graph.parse(raw, policy=POLICY, limits=FREE)
    found = {(p["node"], p["code"]): p["message"] for p in caught.value.problems}
    assert set(found) == {
        ("words", "kind_mismatch"),
        ("mp3", "kind_mismatch"),
        ("hls", "kind_mismatch"),
        ("probe_hls", "kind_mismatch"),
    }
    assert "speech.transcribe takes audio or video" in found[("words", "kind_mismatch")]
    assert "an image" in found[("words", "kind_mismatch")]
    assert "an HLS playlist" in found[("probe_hls", "kind_mismatch")]


def test_a_node_whose_params_are_refused_still_has_its_edges_checked():
    # One answer names both: the width out of range and the audio that image.resize cannot take.
    raw = {
        "inputs": {"song": {"kind": "audio"}},
        "nodes": {"small": _node("image.resize", {"input": "song"}, width=0, height=24)},
    }
    found = _problems(raw)
    assert ("small", "input.file_id", "kind_mismatch") in found
    assert any(node == "small" and field and field.startswith("params") for node, field, _ in found), found
    # A node fed by one whose params were refused is not blamed for what it cannot know.
    raw["nodes"]["again"] = _node("image.resize", {"node": "small", "output": 0}, **RESIZE)
    assert not any(node == "again" for node, _, _ in _problems(raw))


def test_every_job_type_declares_its_outputs_kinds():
    from pipelines.jobtypes import JOB_TYPES

    kinds = {name: jt.output_kinds({"preset": "mp4_480p"}) for name, jt in JOB_TYPES.items()}
    assert kinds == {
        "media.probe": (),
        "video.transcode": ("video",),
        "video.thumbnail": ("image",),
        "image.resize": ("image",),
        "video.captions": ("video",),
        "image.generate": ("image",),
        "image.edit": ("image",),
        "video.generate": ("video",),
        "speech.synthesize": ("audio",),
        "speech.transcribe": ("subtitles",),
        "music.generate": ("audio",),
        "audio.normalize": ("video",),
        "video.watermark": ("video",),
        "video.reframe": ("video", "video", "video"),
        "video.concat": ("video",),
        "video.render": ("video", "subtitles"),  # its captions as SRT, unless the timeline says not
    }
    transcode = JOB_TYPES["video.transcode"]
    assert transcode.output_kinds({"preset": "audio_aac"}) == ("audio",)
    assert transcode.output_kinds({"preset": "hls"}) == ("playlist",)


def test_a_cycle_is_refused_naming_its_nodes_in_order():
    raw = {
        "nodes": {
            "start": {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": "x"}},
            "a": _node("image.resize", {"node": "c", "output": 0}, **RESIZE),
            "b": _node("image.resize", {"node": "a", "output": 0}, **RESIZE),
            "c": _node("image.resize", {"node": "b", "output": 0}, **RESIZE),
            "me": _node("image.resize", {"node": "me", "output": 0}, **RESIZE),
        }
    }
    with pytest.raises(WorkflowInvalid) as caught:
        graph.parse(raw, policy=POLICY, limits=FREE)
    cycles = sorted(p["message"] for p in caught.value.problems if p["code"] == "cycle")
    assert len(cycles) == 2 and len(caught.value.problems) == 2
    assert "a -> c -> b -> a" in cycles[0]
    assert "me -> me" in cycles[1]


def test_map_must_name_a_field_bound_to_a_list_and_a_list_must_be_mapped():
    raw = {
        "inputs": {"one": {"kind": "image"}, "many": {"kind": "image", "list": True}},
        "nodes": {
            "single": {**_node("image.resize", {"input": "one"}, **RESIZE), "map": "file_id"},
            "nofield": {**_node("image.resize", {"input": "many"}, **RESIZE), "map": "prompt"},
            "unmapped": _node("image.resize", {"input": "many"}, **RESIZE),
            "each": {**_node("image.resize", {"input": "many"}, **RESIZE), "map": "file_id"},
            "all_of_each": _node("image.resize", {"node": "each"}, **RESIZE),
            "picked": {**_node("image.resize", {"node": "each", "output": 0}, **RESIZE), "map": "file_id"},
        },
    }
    assert _problems(raw) == {
        ("single", "map", "map_not_list"),
        ("nofield", "map", "map_not_list"),
        ("nofield", "input.file_id", "list_needs_map"),
        ("unmapped", "input.file_id", "list_needs_map"),
        ("all_of_each", "input.file_id", "list_needs_map"),
        ("picked", "map", "map_not_list"),
    }


def test_a_graph_over_the_tiers_node_count_is_refused():
    tiny = dataclasses.replace(FREE, name="tiny", workflow_max_nodes=2)
    nodes = {f"n{i}": _node("image.resize", {"input": "p"}, **RESIZE) for i in range(3)}
    raw = {"inputs": {"p": {"kind": "image"}}, "nodes": nodes}
    assert _problems(raw, tiny) == {(None, "nodes", "too_many_nodes")}
    huge = dataclasses.replace(FREE, workflow_max_nodes=10_000)
    many = {f"n{i}": _node("image.resize", {"input": "p"}, **RESIZE) for i in range(graph.MAX_NODES + 1)}
    assert _problems({"inputs": {"p": {"kind": "image"}}, "nodes": many}, huge) == {
        (None, "nodes", "too_many_nodes")
    }
    del nodes["n2"]
    assert list(graph.parse(raw, policy=POLICY, limits=tiny).nodes) == ["n0", "n1"]


def test_the_order_puts_every_node_after_what_it_needs_and_upstream_follows_the_edges():
    raw = {
        "inputs": {"v": {"kind": "video"}},
        "nodes": {
            "small": _node("image.resize", {"node": "frame", "output": 0}, **RESIZE),
            "frame": _node("video.thumbnail", {"node": "p480", "output": 0}),
            "p480": _node("video.transcode", {"input": "v"}, preset="mp4_480p"),
            "probe": _node("media.probe", {"input": "v"}),
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    assert parsed.order == ["p480", "probe", "frame", "small"]
    assert graph.upstream(parsed, "small") == {"frame", "p480"}
    assert graph.upstream(parsed, "probe") == set()


def _facts(file_id: str, kind: str = "image", duration: float | None = None) -> FileFacts:
    return FileFacts(file_id, kind, 1, {"duration": duration} if duration else {}, "0" * 64)


def test_the_quote_is_each_nodes_price_times_its_items_fan_out_included():
    raw = {
        "inputs": {"photos": {"kind": "image", "list": True}, "films": {"kind": "video", "list": True}},
        "nodes": {
            "each": {**_node("image.resize", {"input": "photos"}, **RESIZE), "map": "file_id"},
            "again": {**_node("image.resize", {"node": "each"}, **RESIZE), "map": "file_id"},
            "fan_in": _node("image.resize", {"node": "again", "output": 2}, **RESIZE),
            "p480": {**_node("video.transcode", {"input": "films"}, preset="mp4_480p"), "map": "file_id"},
            "frames": {**_node("video.thumbnail", {"node": "p480"}), "map": "file_id"},
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    bound = {
        "photos": [_facts(f"fil_p{i}") for i in range(3)],
        "films": [_facts("fil_short", "video", 60.0), _facts("fil_long", "video", 240.0)],
    }
    priced = graph.quote(parsed, bound, POLICY)
    nodes = {name: (q.items, q.unit_price, q.price) for name, q in priced.nodes.items()}
    # image.resize is 100 flat; a 480p transcode 750 a minute (of each film); a thumbnail 200.
    assert nodes == {
        "each": (3, 100, 300),
        "again": (3, 100, 300),
        "fan_in": (1, 100, 100),
        "p480": (2, 3000, 750 + 3000),
        "frames": (2, 200, 400),
    }
    assert priced.total == 300 + 300 + 100 + 3750 + 400
    assert graph.items_of(parsed, bound) == {"each": 3, "again": 3, "fan_in": 1, "p480": 2, "frames": 2}


def test_a_node_fed_by_another_is_priced_with_the_duration_carried_down_the_graph():
    raw = {
        "inputs": {"v": {"kind": "video"}},
        "nodes": {
            "p1080": _node("video.transcode", {"input": "v"}, preset="mp4_1080p"),
            "hls": _node("video.transcode", {"node": "p1080", "output": 0}, preset="hls"),
            "made": {
                "type": "video.generate",
                "params": {"model": "local-video", "duration": 12},
                "input": {"prompt": "x"},
            },
            "made480": _node("video.transcode", {"node": "made", "output": 0}, preset="mp4_480p"),
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    priced = graph.quote(parsed, {"v": [_facts("fil_v", "video", 120.0)]}, POLICY)
    assert priced.nodes["p1080"].price == 3000  # 2 minutes at 1500
    assert priced.nodes["hls"].price == 5000  # the same 2 minutes at 2500
    assert priced.nodes["made"].price == 12 * 50
    assert priced.nodes["made480"].price == 200  # 12 s at 750 a minute is under the minimum


@pytest.fixture
def sessions(app):
    return app.extensions["faktry"].sessions


def _bind(sessions, tenant_id: str, raw: dict[str, Any], inputs: Any, limits: TierLimits = FREE):
    parsed = graph.parse(raw, policy=POLICY, limits=limits)
    with transaction(for_tenant(sessions, tenant_id)) as session:
        return graph.bind_inputs(session, tenant_id, parsed, inputs)


def test_run_inputs_bind_to_the_tenants_own_files_of_the_right_kind(
    client, sessions, make_tenant, png_image, clip_small
):
    mine, theirs = make_tenant(), make_tenant()
    image = upload(client, mine, png_image).json["id"]
    video = upload(client, mine, clip_small).json["id"]
    their_image = upload(client, theirs, png_image).json["id"]
    raw = {
        "inputs": {
            "photo": {"kind": "image"},
            "film": {"kind": "any"},
            "more": {"kind": "image", "list": True},
        },
        "nodes": {
            "small": _node("image.resize", {"input": "photo"}, **RESIZE),
            "p480": _node("video.transcode", {"input": "film"}, preset="mp4_480p"),
            "each": {**_node("image.resize", {"input": "more"}, **RESIZE), "map": "file_id"},
            "fixed": _node("image.resize", image, **RESIZE),
        },
    }
    bound = _bind(sessions, mine.id, raw, {"photo": image, "film": video, "more": [image, image]})
    assert [f.id for f in bound["photo"]] == [image] and bound["film"][0].kind == "video"
    assert [f.id for f in bound["more"]] == [image, image]
    assert bound["film"][0].media["duration"] > 0 and len(bound["photo"][0].sha256) == 64
    assert [f.id for f in bound[graph.literal_key("fixed", "file_id")]] == [image]

    with pytest.raises(WorkflowInvalid) as caught:
        _bind(
            sessions,
            mine.id,
            raw,
            {"photo": video, "film": image, "more": [their_image, "fil_nope"], "x": image},
        )
    assert {(p["node"], p["field"], p["code"]) for p in caught.value.problems} == {
        (None, "inputs.x", "unknown_input"),
        (None, "inputs.photo", "kind_mismatch"),
        ("p480", "inputs.film", "kind_mismatch"),
        (None, "inputs.more[0]", "file_not_found"),
        (None, "inputs.more[1]", "file_not_found"),
    }
    # Another tenant's file is answered exactly as one that does not exist.
    messages = {p["field"]: p["message"] for p in caught.value.problems}
    assert messages["inputs.more[0]"] == messages["inputs.more[1]"]

    with pytest.raises(WorkflowInvalid) as caught:
        _bind(sessions, theirs.id, raw, {"photo": their_image, "more": [their_image]})
    assert {(p["field"], p["code"]) for p in caught.value.problems} == {
        ("inputs.film", "missing_input"),
        ("input.file_id", "file_not_found"),  # "fixed" names a file of the other tenant
    }


def test_a_list_longer_than_the_tier_allows_and_media_too_long_are_refused(
    client, sessions, tenant, png_image, clip_small
):
    image = upload(client, tenant, png_image).json["id"]
    video = upload(client, tenant, clip_small).json["id"]
    raw = {
        "inputs": {"many": {"kind": "image", "list": True}, "film": {"kind": "video"}},
        "nodes": {
            "each": {**_node("image.resize", {"input": "many"}, **RESIZE), "map": "file_id"},
            "p480": _node("video.transcode", {"input": "film"}, preset="mp4_480p"),
        },
    }
    strict = dataclasses.replace(FREE, workflow_max_items=2, max_duration_seconds=0)
    with pytest.raises(WorkflowInvalid) as caught:
        _bind(sessions, tenant.id, raw, {"many": [image] * 3, "film": video}, strict)
    assert {(p["field"], p["code"]) for p in caught.value.problems} == {
        ("inputs.many", "too_many_items"),
        ("inputs.film", "media_too_long"),
    }
    assert _bind(sessions, tenant.id, raw, {"many": [image] * 2, "film": video})["many"][1].id == image


def test_a_refused_graph_holds_nothing_and_keeps_nothing(client, sessions, tenant):
    bad = {"nodes": {"a": _node("image.resize", {"node": "a", "output": 0}, **RESIZE)}}
    before = client.get("/v1/account", headers=tenant.headers).json
    for path, body in (
        ("/v1/workflows", {"name": "loop", "graph": bad}),
        ("/v1/workflows/quote", {"graph": bad, "inputs": {}}),
    ):
        r = client.post(path, json=body, headers=tenant.headers)
        assert r.status_code == 422 and r.json["error"]["code"] == "invalid_workflow"
        assert r.json["error"]["problems"][0]["code"] == "cycle"
    assert client.get("/v1/account", headers=tenant.headers).json == before
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(Workflow)) == 0
        assert session.scalar(select(func.count()).select_from(Hold)) == 0
        assert ledger.check(session) == []


def test_a_fan_in_index_past_what_the_mapped_node_will_write_is_refused(client, sessions, tenant, png_image):
    image = upload(client, tenant, png_image).json["id"]
    raw = {
        "inputs": {"many": {"kind": "image", "list": True}},
        "nodes": {
            "each": {**_node("image.resize", {"input": "many"}, **RESIZE), "map": "file_id"},
            "third": _node("image.resize", {"node": "each", "output": 2}, **RESIZE),
        },
    }
    bound = _bind(sessions, tenant.id, raw, {"many": [image] * 3})
    assert len(bound["many"]) == 3
    with pytest.raises(WorkflowInvalid) as caught:
        _bind(sessions, tenant.id, raw, {"many": [image] * 2})
    assert [(p["node"], p["field"], p["code"]) for p in caught.value.problems] == [
        ("third", "input.file_id", "no_such_output")
    ]


# -- a list field bound to files from several places ------------------------------------------

CONCAT = {"width": 320, "height": 180}


def _concat(*items: Any, **params: Any) -> dict[str, Any]:
    return {"type": "video.concat", "params": {**CONCAT, **params}, "input": {"file_ids": list(items)}}


def _made(seconds: int = 4) -> dict[str, Any]:
    return {
        "type": "video.generate",
        "params": {"model": "local-video", "duration": seconds},
        "input": {"prompt": "a red chair"},
    }


def test_a_list_field_takes_node_outputs_run_inputs_and_files_as_its_items_in_order():
    raw = {
        "inputs": {"intro": {"kind": "video"}},
        "nodes": {
            "join": _concat({"node": "made", "output": 0}, "fil_library", {"input": "intro"}),
            "made": _made(),
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    files = parsed.nodes["join"].input["file_ids"]
    assert files == graph.RefList(
        (graph.Ref(node="made", output=0), graph.Literal("fil_library"), graph.Ref(input="intro"))
    )
    assert parsed.nodes["join"].depends_on() == {"made"}
    assert parsed.order == ["made", "join"]  # the list's node comes first
    assert graph.upstream(parsed, "join") == {"made"}


def test_every_item_of_a_list_is_checked_and_named_by_its_index():
    raw = {
        "inputs": {"many": {"kind": "video", "list": True}, "photo": {"kind": "image"}},
        "nodes": {
            "img": {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": "x"}},
            "vid": _made(),
            "join": _concat(
                {"node": "vid", "output": 0},  # 0: fine
                5,  # 1: not a file id
                {"node": "ghost", "output": 0},  # 2
                {"input": "many"},  # 3: a list inside a list
                {"node": "img", "output": 0},  # 4: an image
                {"node": "vid"},  # 5: every output is a list
                {"input": "nowhere"},  # 6
                {"node": "vid", "output": 3},  # 7: it writes one
                {"input": "photo"},  # 8: an image
                {"node": "vid", "output": 0, "extra": 1},  # 9
            ),
            "mapped": {**_concat({"node": "vid", "output": 0}, "fil_a"), "map": "file_ids"},
            "one_ref": {"type": "video.concat", "input": {"file_ids": {"node": "vid", "output": 0}}},
            "too_few": _concat({"node": "vid", "output": 0}),
            "no_list": _node("image.resize", ["fil_a"], **RESIZE),
        },
    }
    found = _problems(raw)
    assert found == {
        ("join", "input.file_ids[1]", "invalid_request"),
        ("join", "input.file_ids[2]", "unknown_node"),
        ("join", "input.file_ids[3]", "list_in_list"),
        ("join", "input.file_ids[4]", "kind_mismatch"),
        ("join", "input.file_ids[5]", "bad_reference"),
        ("join", "input.file_ids[6]", "unknown_input"),
        ("join", "input.file_ids[7]", "no_such_output"),
        ("join", "input.file_ids[8]", "kind_mismatch"),
        ("join", "input.file_ids[9]", "bad_reference"),
        ("mapped", "map", "map_not_list"),
        ("one_ref", "input.file_ids", "bad_reference"),
        ("too_few", "input.file_ids", "too_few_clips"),  # the same code as a single submit
        ("no_list", "input.file_id", "invalid_request"),  # only a list field takes a list
    }
    with pytest.raises(WorkflowInvalid) as caught:
        graph.parse(raw, policy=POLICY, limits=FREE)
    messages = {p["field"]: p["message"] for p in caught.value.problems if p["node"] == "join"}
    assert messages["input.file_ids[1]"] == "input.file_ids[1] must be text"
    assert "takes video in input.file_ids[4]; output 0 of 'img' is an image" in messages["input.file_ids[4]"]
    assert "every output of a node" in messages["input.file_ids[5]"]


def test_a_list_is_priced_by_its_files_durations_summed():
    raw = {
        "inputs": {"intro": {"kind": "video"}},
        "nodes": {
            "made": _made(12),
            "join": _concat({"node": "made", "output": 0}, "fil_library", {"input": "intro"}),
            "p480": _node("video.transcode", {"node": "join", "output": 0}, preset="mp4_480p"),
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    bound = {
        "intro": [_facts("fil_intro", "video", 120.0)],
        graph.literal_key("join", "file_ids", 1): [_facts("fil_library", "video", 48.0)],
    }
    priced = graph.quote(parsed, bound, POLICY)
    # 12 + 48 + 120 s = 3 minutes of video.concat at 1000 a minute; the join carries them on.
    assert priced.nodes["join"].price == 3000
    assert priced.nodes["p480"].price == 3 * 750
    # A file of unknown length leaves the sum unknown: the price rule's minimum.
    unknown = {**bound, "intro": [_facts("fil_intro", "video")]}
    assert graph.quote(parsed, unknown, POLICY).nodes["join"].price == 200


def test_a_job_type_that_prices_its_own_length_is_quoted_from_its_params(monkeypatch):
    """A type with a ``priced_seconds`` hook (a render of a timeline: its stated length) is
    priced by it, whatever its input files last, and the length is carried down the graph."""
    import copy

    from pipelines import jobtypes

    priced_by_params = copy.copy(jobtypes.JOB_TYPES["video.concat"])
    object.__setattr__(
        priced_by_params, "priced_seconds", lambda params, file_seconds=(): params["width"] / 2
    )
    monkeypatch.setitem(jobtypes.JOB_TYPES, "video.concat", priced_by_params)
    raw = {
        "inputs": {"intro": {"kind": "video"}},
        "nodes": {
            "join": _concat({"input": "intro"}, "fil_library", width=240),  # 120 s
            "p480": _node("video.transcode", {"node": "join", "output": 0}, preset="mp4_480p"),
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    bound = {
        "intro": [_facts("fil_intro", "video", 600.0)],
        graph.literal_key("join", "file_ids", 1): [_facts("fil_library", "video", 600.0)],
    }
    priced = graph.quote(parsed, bound, POLICY)
    assert priced.nodes["join"].price == 2000
    assert priced.nodes["p480"].price == 2 * 750


def test_the_files_written_in_a_list_are_bound_each_as_its_own_item(
    client, sessions, make_tenant, png_image, clip_small
):
    mine, theirs = make_tenant(), make_tenant()
    clip = upload(client, mine, clip_small).json["id"]
    image = upload(client, mine, png_image).json["id"]
    their_clip = upload(client, theirs, clip_small).json["id"]
    raw: dict[str, Any] = {
        "inputs": {"extra": {"kind": "any"}, "many": {"kind": "video", "list": True}},
        "nodes": {
            "each": {**_node("video.transcode", {"input": "many"}, preset="mp4_480p"), "map": "file_id"},
            "join": _concat(clip, {"input": "extra"}, {"node": "each", "output": 1}, clip),
        },
    }
    bound = _bind(sessions, mine.id, raw, {"extra": clip, "many": [clip, clip]})
    assert [f.id for f in bound[graph.literal_key("join", "file_ids", 0)]] == [clip]
    assert [f.id for f in bound[graph.literal_key("join", "file_ids", 3)]] == [clip]
    assert graph.literal_key("join", "file_ids", 1) not in bound  # a run input is bound as itself
    assert bound["join.file_ids.0"][0].media["duration"] > 0

    raw["nodes"]["join"] = _concat(
        clip, {"input": "extra"}, {"node": "each", "output": 1}, image, their_clip, "fil_nope"
    )
    with pytest.raises(WorkflowInvalid) as caught:
        _bind(sessions, mine.id, raw, {"extra": image, "many": [clip]})
    assert {(p["node"], p["field"], p["code"]) for p in caught.value.problems} == {
        ("join", "inputs.extra", "kind_mismatch"),  # the run input's file, for the list it is in
        ("join", "input.file_ids[3]", "kind_mismatch"),
        ("join", "input.file_ids[4]", "file_not_found"),  # another tenant's
        ("join", "input.file_ids[5]", "file_not_found"),
    }
    # Once the files are right, the fan-in is checked: "each" writes one output per clip.
    with pytest.raises(WorkflowInvalid) as caught:
        _bind(
            sessions,
            mine.id,
            {**raw, "nodes": {**raw["nodes"], "join": _concat(clip, {"node": "each", "output": 1})}},
            {"extra": clip, "many": [clip]},
        )
    assert [(p["node"], p["field"], p["code"]) for p in caught.value.problems] == [
        ("join", "input.file_ids[1]", "no_such_output")
    ]
    strict = dataclasses.replace(FREE, max_duration_seconds=0)
    with pytest.raises(WorkflowInvalid) as caught:
        _bind(sessions, mine.id, {**raw, "nodes": {"join": _concat(clip, clip)}, "inputs": {}}, {}, strict)
    assert {(p["field"], p["code"]) for p in caught.value.problems} == {
        ("input.file_ids[0]", "media_too_long"),
        ("input.file_ids[1]", "media_too_long"),
    }


def _timeline(*clips: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": 1, "format": {"width": 320, "height": 180, "fps": 24}, "video": list(clips), **extra}


def _render(timeline: dict[str, Any], *items: Any) -> dict[str, Any]:
    return {"type": "video.render", "params": {"timeline": timeline}, "input": {"file_ids": list(items)}}


def test_a_render_is_priced_by_its_timelines_stated_length_whatever_its_files_last():
    raw = {
        "inputs": {"intro": {"kind": "video"}},
        "nodes": {
            "still": {"type": "image.generate", "params": {"model": "local-image"}, "input": {"prompt": "x"}},
            "cut": _render(
                _timeline({"id": "a", "file": 0, "duration": 50}, {"id": "b", "file": 1, "out": 70}),
                {"node": "still", "output": 0},
                {"input": "intro"},
            ),
            "p480": _node("video.transcode", {"node": "cut", "output": 0}, preset="mp4_480p"),
        },
    }
    parsed = graph.parse(raw, policy=POLICY, limits=FREE)
    priced = graph.quote(parsed, {"intro": [_facts("fil_intro", "video", 900.0)]}, POLICY)
    # 50 + 70 s = 2 minutes at 1500; the 15-minute intro is cut to its first 70 s.
    assert priced.nodes["cut"].price == 3000
    assert priced.nodes["p480"].price == 2 * 750  # the render's length is carried on


def test_a_timeline_is_checked_against_its_list_as_far_as_the_graph_knows_it(
    client, sessions, tenant, png_image, wav
):
    speech = {"type": "speech.synthesize", "params": {"model": "local-speech"}, "input": {"text": "hello"}}
    beyond = _timeline({"id": "a", "file": 0, "duration": 2}, {"id": "b", "file": 2, "duration": 2})
    sound_as_picture = _timeline({"id": "a", "file": 0, "duration": 2})
    raw = {
        "nodes": {
            "voice": speech,
            "beyond": _render(beyond, "fil_a", {"node": "voice", "output": 0}),  # 2 files: no file 2
            "heard": _render(sound_as_picture, {"node": "voice", "output": 0}),  # audio as a picture
        }
    }
    assert _problems(raw) == {
        ("beyond", "params.timeline.video[1].file", "file_out_of_range"),
        ("heard", "params.timeline.video[0].file", "unsupported_input"),
    }
    # A file id's kind is known once it is bound: a sound where the picture goes is refused
    # before anything runs.
    image = upload(client, tenant, png_image).json["id"]
    sound = upload(client, tenant, wav).json["id"]
    raw = {"nodes": {"cut": _render(sound_as_picture, sound)}}
    with pytest.raises(WorkflowInvalid) as caught:
        _bind(sessions, tenant.id, raw, {})
    assert [(p["node"], p["field"], p["code"]) for p in caught.value.problems] == [
        ("cut", "params.timeline.video[0].file", "unsupported_input")
    ]
    raw = {"nodes": {"cut": _render(sound_as_picture, image)}}
    assert [f.id for f in _bind(sessions, tenant.id, raw, {})["cut.file_ids.0"]] == [image]
