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


def test_every_job_type_has_a_price():
    from pipelines.jobtypes import JOB_TYPES

    assert all(PriceList().knows(name) for name in JOB_TYPES)
