"""The price list: estimates from the input, charges from the output, never above the estimate."""

from __future__ import annotations

import pytest

from quotas.pricing import DEFAULT_PRICES, PriceList


def test_a_transcode_is_priced_per_output_minute_by_preset():
    prices = PriceList()
    assert prices.estimate("video.transcode", {"preset": "mp4_1080p"}, {"duration": 120.0}) == 3000
    assert prices.estimate("video.transcode", {"preset": "mp4_360p"}, {"duration": 1.0}) == 200  # minimum


def test_the_charge_follows_the_output_and_never_exceeds_the_estimate():
    prices = PriceList()
    params = {"preset": "mp4_720p"}
    assert prices.actual("video.transcode", params, {"duration": 600.0}, [{"duration": 300.0}]) == 5000
    assert prices.actual("video.transcode", params, {"duration": 600.0}, [{"duration": 900.0}]) == 10000


def test_flat_prices_and_sprites():
    prices = PriceList()
    assert prices.estimate("image.resize", {"width": 1, "height": 1}, {}) == 100
    assert prices.estimate("video.thumbnail", {"sprite": True}, {"duration": 5}) == 500


def test_a_price_list_from_settings_overrides_the_defaults():
    prices = PriceList.from_json('{"image.resize": {"flat": 7}}')
    assert prices.estimate("image.resize", {}, {}) == 7
    assert prices.knows("media.probe") and prices.table["media.probe"] == DEFAULT_PRICES["media.probe"]
    with pytest.raises(ValueError):
        PriceList.from_json("[1, 2]")


def test_every_job_type_and_every_model_has_a_price():
    from pipelines.catalog import default_catalog
    from pipelines.jobtypes import JOB_TYPES

    assert all(PriceList().knows(name) for name, jt in JOB_TYPES.items() if not jt.generative)
    for model in default_catalog().models.values():
        for job_type in model.job_types:
            assert PriceList().estimate(job_type, {}, {"duration": 30}, rule=model.price, text="hello") > 0, (
                model.id
            )


def test_generation_prices_follow_seconds_characters_and_input_minutes():
    prices = PriceList()
    assert (
        prices.estimate(
            "video.generate", {"duration": "8s"}, {}, rule={"per_second": 1000, "seconds_param": "duration"}
        )
        == 8000
    )
    assert (
        prices.estimate(
            "speech.synthesize", {}, {}, rule={"per_1k_chars": 1500, "minimum": 50}, text="x" * 2000
        )
        == 3000
    )
    assert prices.estimate("speech.transcribe", {}, {"duration": 90}, rule={"per_input_minute": 100}) == 150
    rule = {"per_second": 1000, "seconds_param": "duration"}
    assert prices.actual("video.generate", {"duration": "10"}, {}, [{"duration": 5.0}], rule=rule) == 5000


def test_a_render_is_priced_over_its_stated_length_and_a_longer_result_costs_no_more():
    from pipelines.jobtypes import JOB_TYPES, priced_media

    render = JOB_TYPES["video.render"]
    timeline = {
        "version": 1,
        "format": {"width": 720, "height": 1280},
        "video": [
            {"file": 0, "duration": 40, "transition": {"type": "fade", "duration": 1}},
            {"file": 1, "in": 2},  # as long as its file from 2 s
        ],
    }
    params = {"timeline": timeline}
    slots = {"file_ids.0": {}, "file_ids.1": {"duration": 23.0}, "file_ids.2": {"duration": 600.0}}
    # 40 + 21 - 1 = 60 s, whatever the files listed add up to (the music's 600 s among them).
    media = priced_media(render, slots, params)
    assert media == {"duration": 60.0}
    prices = PriceList()
    assert prices.estimate("video.render", params, media) == 1500
    assert prices.estimate("video.render", params, {"duration": 5.0}) == 300  # the minimum
    # Narration held a scene longer: 75 s were made, the quote's 60 s are charged.
    assert prices.actual("video.render", params, media, [{"duration": 75.0}, {}]) == 1500
    assert prices.actual("video.render", params, media, [{"duration": 48.0}, {}]) == 1200
