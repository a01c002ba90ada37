"""Fair admission's offers and the pump after them go to Redis in one round trip
(`faktry.redisconn.scripts_in_one_trip`), and still work after Redis lost its scripts.
Each test runs a redis-server of its own (the flush would reach other tests' scripts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from faktry.redisconn import first_error, scripts_in_one_trip
from pipelines.admission import Admission, Admitted
from quotas.ratelimit import RunningSlots
from tests.pipelines.test_job_path_cost import RoundTrips
from tests.platform import PrivateRedis

NS = "adm-trip"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[redis.Redis]:
    with PrivateRedis(tmp_path) as server:
        c = redis.Redis.from_url(server.url)
        yield c
        c.close()


def _offers(jobs: list[tuple[str, str, str]]) -> list[tuple[str, str, str, int, int]]:
    return [(queue, tenant, job, 1, 0) for queue, tenant, job in jobs]


def test_offers_and_the_pumps_of_their_queues_are_one_round_trip(client):
    adm = Admission(client, NS, depth=1000, running_namespace=NS)
    adm.offer_and_admit(_offers([("local.small", "A", "warm")]), ["local.small"])  # scripts loaded
    trips = RoundTrips()
    with trips.counting(this_thread=True):
        admitted, error = adm.offer_and_admit(
            _offers([("local.small", "A", "a1"), ("local.small", "B", "b1"), ("local.large", "A", "a2")]),
            ["local.small", "local.large"],
        )
    assert trips.count == 1 and error is None
    # (In the fair order: A had a job admitted before, so B's comes first.)
    assert admitted == {
        "local.small": [Admitted("B", "b1"), Admitted("A", "a1")],
        "local.large": [Admitted("A", "a2")],
    }


def test_after_redis_lost_its_scripts_every_offer_is_made_once_and_admitted(client):
    adm = Admission(client, NS, depth=1000, running_namespace=NS)
    adm.offer_and_admit(_offers([("local.small", "A", "warm")]), ["local.small"])
    client.script_flush()
    admitted, error = adm.offer_and_admit(
        _offers([("local.small", "A", "a1"), ("local.small", "B", "b1")]), ["local.small"]
    )
    assert error is None
    assert sorted(admitted["local.small"], key=lambda a: a.job_id) == [
        Admitted("A", "a1"),
        Admitted("B", "b1"),
    ]
    # Nothing was offered twice: nothing is left waiting.
    assert adm.admit("local.small") == []
    assert client.llen(f"{NS}:admission:local.small:t:A") == 0


def test_a_partial_loss_runs_again_only_the_calls_whose_script_was_missing(client):
    adm = Admission(client, NS, depth=1000, running_namespace=NS)
    adm.offer_and_admit(_offers([("local.small", "A", "warm")]), ["local.small"])
    for offer_loaded in (True, False):  # either script may be the one another process loaded
        client.script_flush()
        client.script_load(adm._offer.script if offer_loaded else adm._admit.script)
        job = f"a-{offer_loaded}"
        admitted, error = adm.offer_and_admit(_offers([("local.small", "A", job)]), ["local.small"])
        assert error is None
        # Offered once and admitted in this call, whichever ran first.
        assert [a.job_id for a in admitted["local.small"]] == [job]
        assert adm.admit("local.small") == []
        assert client.llen(f"{NS}:admission:local.small:t:A") == 0


def test_a_script_error_comes_back_beside_the_answers_that_ran(client):
    ok = client.register_script("return 1")
    failing = client.register_script("return redis.error_reply('refused')")
    assert scripts_in_one_trip(client, [(ok, [], [])]) == [1]
    answers = scripts_in_one_trip(client, [(ok, [], []), (failing, [], []), (ok, [], [])])
    assert answers[0] == 1 and answers[2] == 1
    with pytest.raises(redis.exceptions.ResponseError, match="refused"):
        first_error(answers)


def test_the_pump_after_a_job_gives_up_its_running_slot_before_counting_caps(client):
    adm = Admission(client, NS, depth=1000, running_namespace=NS)
    slots = RunningSlots(client, NS)
    assert slots.acquire("A", "a1", limit=1, ttl_seconds=60)  # a1 runs; A's cap is 1
    adm.offer_many([("local.small", "A", "a2", 1, 1)])
    assert adm.admit("local.small") == []  # A waits out its cap
    trips = RoundTrips()
    with trips.counting(this_thread=True):
        admitted, _ = adm.admit_after("local.small", "a1", slot_of="A")
    assert trips.count == 1
    assert admitted == [Admitted("A", "a2")]
    assert slots.running("A") == []


def test_a_pump_without_a_slot_to_give_up_leaves_running_slots_alone(client):
    adm = Admission(client, NS, depth=1000, running_namespace=NS)
    slots = RunningSlots(client, NS)
    assert slots.acquire("A", "a1", limit=1, ttl_seconds=60)
    adm.offer_many([("local.small", "A", "a2", 1, 1)])
    admitted, _ = adm.admit_after("local.small", "a0")
    assert admitted == []
    assert slots.running("A") == ["a1"]
