"""Drivers over REST (PROTOCOL.md, "Drivers"): presence, positions, the public map."""

import pytest

from dispatch import keys, presence
from taxi.infra.redis import get_redis
from tests.dispatch.support import PICK_UP, put_online

BAD_POSITIONS = [
    {},
    {"lat": "38.9", "lng": -77.0},
    {"lat": 91, "lng": -77.0},
    {"lat": 85.06, "lng": -77.0},
    {"lat": 38.9, "lng": 181},
    {"lat": True, "lng": -77.0},
    {"lat": None, "lng": -77.0},
]


def available() -> set[int]:
    return {int(m) for m in get_redis().zrange(keys.AVAILABLE, 0, -1)}


def nothing_stored() -> bool:
    return get_redis().keys(keys.PREFIX + "*") == []


# --- REST --------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_driver_goes_online_and_offline_over_rest(driver, client_for):
    client = client_for(driver)

    online = client.post("/api/driver/online/", {"lat": 38.9, "lng": -77.03}, format="json")
    assert (online.status_code, online.json()) == (200, {"status": "online"})
    assert available() == {driver.pk}

    offline = client.post("/api/driver/offline/", format="json")
    assert (offline.status_code, offline.json()) == (200, {"status": "offline"})
    assert available() == set()


@pytest.mark.django_db
def test_a_position_over_rest_is_204_and_moves_the_driver(driver, client_for):
    client = client_for(driver)
    client.post("/api/driver/online/", {"lat": 38.9, "lng": -77.03}, format="json")

    response = client.post(
        "/api/driver/location/",
        # 70 m on at once: within what GPS jitter may show (a longer move
        # needs the time to drive it, tests/dispatch/test_teleport.py)
        {"lat": 38.9005, "lng": -77.0305, "heading": 90, "speed": 12.5},
        format="json",
    )

    assert response.status_code == 204
    lng, lat = get_redis().geopos(keys.AVAILABLE, driver.pk)[0]
    assert (lat, lng) == pytest.approx((38.9005, -77.0305), abs=1e-5)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/driver/online/", "/api/driver/location/"])
@pytest.mark.parametrize("body", BAD_POSITIONS)
def test_bad_positions_are_400_and_store_nothing(driver, client_for, path, body):
    response = client_for(driver).post(path, body, format="json")

    assert response.status_code == 400
    assert nothing_stored()


@pytest.mark.django_db
def test_a_non_finite_number_is_400(driver, client_for):
    response = client_for(driver).post(
        "/api/driver/online/",
        '{"lat": NaN, "lng": 1}',
        content_type="application/json",
    )

    assert response.status_code == 400
    assert nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/driver/online/", {"lat": 38.9, "lng": -77.03}),
        ("/api/driver/offline/", {}),
        ("/api/driver/location/", {"lat": 38.9, "lng": -77.03}),
    ],
)
def test_riders_may_not_act_as_drivers(rider, client_for, api, path, body):
    response = client_for(rider).post(path, body, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert api.post(path, body, format="json").status_code == 401
    assert nothing_stored()


@pytest.mark.django_db
def test_nearby_shows_rounded_positions_of_available_drivers_to_anyone(
    rider, make_user, client_for, api
):
    near, busy, far = make_user("driver"), make_user("driver"), make_user("driver")
    presence.set_online(near.pk, lat=38.89812, lng=-77.03688)
    presence.set_online(busy.pk, lat=38.8991, lng=-77.0371)
    presence.mark_offered(busy.pk)
    put_online(far, 40)

    response = client_for(rider).get(
        "/api/driver/nearby/", {"lat": PICK_UP[0], "lng": PICK_UP[1], "radius_km": 5}
    )

    assert response.status_code == 200
    assert response.json() == {"count": 1, "drivers": [{"lat": 38.898, "lng": -77.037}]}
    assert api.get("/api/driver/nearby/", {"lat": 1, "lng": 1}).status_code == 401


@pytest.mark.django_db
def test_nearby_defaults_its_radius_and_caps_the_answer(rider, client_for, make_user):
    for i in range(3):
        put_online(make_user("driver"), 0.5 + i)
    put_online(make_user("driver"), 8)  # beyond the default radius

    body = client_for(rider).get("/api/driver/nearby/", {"lat": PICK_UP[0], "lng": PICK_UP[1]})

    assert body.json()["count"] == 3
    assert all(set(d) == {"lat", "lng"} for d in body.json()["drivers"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {},
        {"lat": 38.9},
        {"lat": "abc", "lng": 1},
        {"lat": "nan", "lng": 1},
        {"lat": "inf", "lng": 1},
        {"lat": 95, "lng": 1},
        {"lat": 38.9, "lng": 1, "radius_km": 51},
        {"lat": 38.9, "lng": 1, "radius_km": 0},
        {"lat": 38.9, "lng": 1, "radius_km": -3},
        {"lat": 38.9, "lng": 1, "radius_km": "nan"},
        {"lat": 38.9, "lng": 1, "radius_km": "1e400"},
    ],
)
def test_nearby_refuses_bad_queries_with_400(rider, client_for, query):
    response = client_for(rider).get("/api/driver/nearby/", query)

    assert response.status_code == 400


@pytest.mark.django_db
def test_with_presence_unreachable_the_calls_answer_503_not_500(driver, client_for, settings):
    client = client_for(driver)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    responses = [
        client.post("/api/driver/location/", {"lat": 38.9, "lng": -77.03}, format="json"),
        client.post("/api/driver/online/", {"lat": 38.9, "lng": -77.03}, format="json"),
        client.post("/api/driver/offline/", format="json"),
        client.get("/api/driver/nearby/", {"lat": 38.9, "lng": -77.03}),
    ]

    assert [r.status_code for r in responses] == [503] * 4
    assert {r.json()["code"] for r in responses} == {"unavailable"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("[" * 5000 + "]" * 5000, "application/json"),
        ("{not json", "application/json"),
        ("lat=38.9&lng=-77.03", "application/x-www-form-urlencoded"),
        ("[1, 2]", "application/json"),
    ],
)
def test_malformed_bodies_are_4xx_never_500(driver, client_for, body, content_type):
    response = client_for(driver).post("/api/driver/online/", body, content_type=content_type)

    assert 400 <= response.status_code < 500
    assert nothing_stored()


@pytest.mark.django_db
def test_nearby_reads_a_radius_below_the_minimum_as_the_minimum(rider, make_user, client_for):
    put_online(make_user("driver"), 0.3)
    query = {"lat": PICK_UP[0], "lng": PICK_UP[1]}

    body = client_for(rider).get("/api/driver/nearby/", {**query, "radius_km": 0.01}).json()

    assert body["count"] == 1, "searched within NEARBY_MIN_RADIUS_KM, not 10 m"


@pytest.mark.django_db
def test_nearby_is_throttled_per_user(rider, make_user, client_for, settings):
    rest = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **rest,
        "DEFAULT_THROTTLE_RATES": {**rest["DEFAULT_THROTTLE_RATES"], "nearby": "3/min"},
    }
    query = {"lat": PICK_UP[0], "lng": PICK_UP[1]}
    client = client_for(rider)

    answers = [client.get("/api/driver/nearby/", query) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["code"] == "rate_limited"
    assert int(answers[-1]["Retry-After"]) > 0
    # another user's budget is their own
    assert client_for(make_user("rider")).get("/api/driver/nearby/", query).status_code == 200
