"""The trips REST API (PROTOCOL.md, "Trips"), over HTTP against the real stack."""

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from dispatch.models import Offer
from taxi.infra import push
from tests.trips.factories import (
    ALLOWED,
    ALLOWED_CASES,
    REFUSED_CASES,
    TRIP_KEYS,
    TRIP_REQUEST,
    build,
    make_offer,
    make_trip,
    make_world,
    offer_states,
    queued_dispatches,
    refusal,
    snapshot,
)
from trips import events
from trips.auth import tokens_for
from trips.models import Trip

S = Trip.Status
TRIPS = "/api/trip/"
RAW_BODY = json.dumps(TRIP_REQUEST)


def url(trip, action: str = "") -> str:
    trip_id = trip.pk if isinstance(trip, Trip) else trip
    return f"{TRIPS}{trip_id}/{action + '/' if action else ''}"


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    return body["code"]


# create


@pytest.mark.django_db
def test_a_rider_requests_a_trip(rider, client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(rider).post(TRIPS, TRIP_REQUEST, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == TRIP_KEYS
    assert (body["status"], body["version"], body["driver"], body["status_reason"]) == (
        S.REQUESTED,
        1,
        None,
        None,
    )
    assert body["rider"]["id"] == rider.pk
    assert {k: body[k] for k in TRIP_REQUEST} == TRIP_REQUEST
    assert Trip.objects.get().pk == uuid.UUID(body["id"])
    assert queued_dispatches() == 1


@pytest.mark.django_db
def test_protected_fields_in_the_body_are_ignored(make_user, rider, client_for):
    someone, driver = make_user("rider"), make_user("driver")
    planted_id = str(uuid.uuid4())
    body = {
        **TRIP_REQUEST,
        "id": planted_id,
        "status": S.COMPLETED,
        "status_reason": "free ride",
        "version": 99,
        "rider": someone.pk,
        "driver": driver.pk,
        "idempotency_key": "planted",
    }

    response = client_for(rider).post(TRIPS, body, format="json")

    assert response.status_code == 201
    trip = Trip.objects.get()
    assert str(trip.pk) != planted_id
    assert (trip.status, trip.status_reason, trip.version) == (S.REQUESTED, None, 1)
    assert (trip.rider_id, trip.driver_id, trip.idempotency_key) == (rider.pk, None, None)
    assert not Trip.objects.filter(rider=someone).exists()


@pytest.mark.django_db
def test_a_driver_cannot_request_a_trip(driver, client_for):
    response = client_for(driver).post(TRIPS, TRIP_REQUEST, format="json")

    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    assert not Trip.objects.exists()


@pytest.mark.django_db
def test_requesting_needs_a_login(api):
    response = api.post(TRIPS, TRIP_REQUEST, format="json")

    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"
    assert not Trip.objects.exists()


@pytest.mark.django_db
def test_a_second_active_trip_is_refused(rider, client_for):
    client = client_for(rider)
    first = client.post(TRIPS, TRIP_REQUEST, format="json").json()

    response = client.post(TRIPS, TRIP_REQUEST, format="json")

    assert response.status_code == 409
    assert error_code(response) == "active_trip_exists"
    assert list(Trip.objects.values_list("pk", flat=True)) == [uuid.UUID(first["id"])]


@pytest.mark.django_db
def test_a_retry_with_the_same_idempotency_key_returns_the_first_trip(
    rider, client_for, django_capture_on_commit_callbacks
):
    client = client_for(rider)

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(TRIPS, TRIP_REQUEST, format="json", HTTP_IDEMPOTENCY_KEY="req-42")
    with django_capture_on_commit_callbacks(execute=True) as retry_callbacks:
        retry = client.post(TRIPS, TRIP_REQUEST, format="json", HTTP_IDEMPOTENCY_KEY="req-42")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert Trip.objects.count() == 1
    assert retry_callbacks == []
    assert queued_dispatches() == 1


@pytest.mark.django_db
def test_a_new_idempotency_key_with_an_active_trip_is_refused(rider, client_for):
    client = client_for(rider)
    client.post(TRIPS, TRIP_REQUEST, format="json", HTTP_IDEMPOTENCY_KEY="one")

    response = client.post(TRIPS, TRIP_REQUEST, format="json", HTTP_IDEMPOTENCY_KEY="two")

    assert response.status_code == 409
    assert error_code(response) == "active_trip_exists"
    assert Trip.objects.count() == 1


@pytest.mark.django_db
def test_an_idempotency_key_of_255_characters_is_accepted(rider, client_for):
    response = client_for(rider).post(
        TRIPS, TRIP_REQUEST, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255
    )

    assert response.status_code == 201
    assert Trip.objects.get().idempotency_key == "k" * 255


@pytest.mark.django_db
def test_an_overlong_idempotency_key_is_refused(rider, client_for):
    response = client_for(rider).post(
        TRIPS, TRIP_REQUEST, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )

    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert not Trip.objects.exists()


def _replace(raw: str, field: str, literal: str) -> str:
    """The JSON body with one value swapped for a literal no encoder would write."""
    body = json.loads(raw)
    marker = "__VALUE__"
    body[field] = marker
    return json.dumps(body).replace(f'"{marker}"', literal)


BAD_RAW_BODIES = {
    "nan": _replace(RAW_BODY, "pick_up_lat", "NaN"),
    "infinity": _replace(RAW_BODY, "pick_up_lng", "Infinity"),
    "minus infinity": _replace(RAW_BODY, "drop_off_lat", "-Infinity"),
    "overflow to infinity": _replace(RAW_BODY, "pick_up_lat", "1e309"),
    "latitude beyond the geo index": _replace(RAW_BODY, "pick_up_lat", "85.06"),
    "latitude below": _replace(RAW_BODY, "drop_off_lat", "-90"),
    "longitude beyond": _replace(RAW_BODY, "pick_up_lng", "180.0001"),
    "longitude below": _replace(RAW_BODY, "drop_off_lng", "-181"),
    "string number": _replace(RAW_BODY, "pick_up_lat", '"38.9"'),
    "boolean": _replace(RAW_BODY, "pick_up_lng", "true"),
    "null pick-up": _replace(RAW_BODY, "pick_up_lat", "null"),
    "list": _replace(RAW_BODY, "pick_up_lat", "[38.9]"),
    "object": _replace(RAW_BODY, "pick_up_lat", '{"lat": 38.9}'),
    "missing latitude": json.dumps({k: v for k, v in TRIP_REQUEST.items() if k != "pick_up_lat"}),
    "missing address": json.dumps(
        {k: v for k, v in TRIP_REQUEST.items() if k != "pick_up_address"}
    ),
    "half a drop-off": json.dumps({k: v for k, v in TRIP_REQUEST.items() if k != "drop_off_lng"}),
    "overlong address": json.dumps({**TRIP_REQUEST, "pick_up_address": "x" * 256}),
    "empty object": "{}",
}


@pytest.mark.django_db
@pytest.mark.parametrize("raw", BAD_RAW_BODIES.values(), ids=BAD_RAW_BODIES.keys())
def test_bad_fields_are_a_400_and_write_nothing(rider, client_for, raw):
    response = client_for(rider).post(TRIPS, raw, content_type="application/json")

    assert response.status_code == 400
    assert isinstance(response.json(), dict)
    assert not Trip.objects.exists()
    assert queued_dispatches() == 0


MALFORMED = {
    "truncated": RAW_BODY[:-5],
    "not json": "pick me up",
    "trailing garbage": RAW_BODY + "}",
    "bad utf-8": b'{"pick_up_address": "\xff\xfe"}',
}


@pytest.mark.django_db
@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_a_400_invalid(rider, client_for, raw):
    response = client_for(rider).post(TRIPS, raw, content_type="application/json")

    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert not Trip.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["[]", '"a trip"', "42", "null"])
def test_a_body_that_is_not_an_object_is_a_400(rider, client_for, raw):
    response = client_for(rider).post(TRIPS, raw, content_type="application/json")

    assert response.status_code == 400
    assert not Trip.objects.exists()


@pytest.mark.django_db
def test_trip_bodies_are_json_only(rider, client_for):
    response = client_for(rider).post(TRIPS, TRIP_REQUEST)  # multipart form

    assert response.status_code == 415
    assert error_code(response) == "invalid"
    assert not Trip.objects.exists()


@pytest.mark.django_db
def test_requesting_too_fast_is_rate_limited_while_reading_is_not(rider, client_for):
    client = client_for(rider)
    allowed, _ = ScopedRateThrottle().parse_rate(ScopedRateThrottle.THROTTLE_RATES["trip_create"])
    # Invalid bodies still count: the throttle runs before anything else.
    for _ in range(allowed):
        assert client.post(TRIPS, {}, format="json").status_code == 400

    response = client.post(TRIPS, TRIP_REQUEST, format="json")

    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert not Trip.objects.exists()
    assert client.get(TRIPS).status_code == 200


# list


@pytest.mark.django_db
def test_a_rider_lists_their_own_trips_newest_first(make_user, rider, driver, client_for):
    now = timezone.now()
    old = make_trip(rider, status=S.COMPLETED, driver=driver)
    new = make_trip(rider)
    Trip.objects.filter(pk=old.pk).update(created=now - timedelta(hours=1))
    make_trip(make_user("rider"))

    response = client_for(rider).get(TRIPS)

    assert response.status_code == 200
    assert [t["id"] for t in response.json()] == [str(new.pk), str(old.pk)]


@pytest.mark.django_db
def test_a_driver_lists_assigned_trips_and_the_one_offered_now(make_user, driver, client_for):
    assigned = make_trip(make_user("rider"), status=S.COMPLETED, driver=driver)
    offered = make_trip(make_user("rider"))
    make_offer(offered, driver)
    lapsed = make_trip(make_user("rider"))
    make_offer(lapsed, driver, status=Offer.Status.EXPIRED)
    make_trip(make_user("rider"))

    response = client_for(driver).get(TRIPS)

    assert {t["id"] for t in response.json()} == {str(assigned.pk), str(offered.pk)}


@pytest.mark.django_db
def test_listing_needs_a_login(api):
    response = api.get(TRIPS)

    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


@pytest.mark.django_db
def test_the_list_filters_by_status(rider, driver, client_for):
    make_trip(rider, status=S.COMPLETED, driver=driver)
    canceled = make_trip(rider, status=S.CANCELED)
    client = client_for(rider)

    assert [t["id"] for t in client.get(TRIPS, {"status": "CANCELED"}).json()] == [str(canceled.pk)]
    assert client.get(TRIPS, {"status": "EXPIRED"}).json() == []
    assert len(client.get(TRIPS, {"status": ""}).json()) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["canceled", "DONE", "REQUESTED,STARTED", "x" * 500])
def test_an_unknown_status_filter_is_a_400(rider, client_for, value):
    response = client_for(rider).get(TRIPS, {"status": value})

    assert response.status_code == 400
    assert error_code(response) == "invalid"


@pytest.fixture
def five_trips(rider, driver):
    """Five trips of one rider, `trips[0]` the newest."""
    now = timezone.now()
    trips = []
    for age in range(5):
        trip = make_trip(rider, status=S.COMPLETED, driver=driver)
        Trip.objects.filter(pk=trip.pk).update(created=now - timedelta(minutes=age))
        trips.append(str(trip.pk))
    return trips


@pytest.mark.django_db
def test_limit_and_offset_page_the_list(rider, client_for, five_trips):
    client = client_for(rider)

    first = client.get(TRIPS, {"limit": 2}).json()
    second = client.get(TRIPS, {"limit": 2, "offset": 2}).json()
    last = client.get(TRIPS, {"limit": 2, "offset": 4}).json()

    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 5
    assert [t["id"] for t in first["results"]] == five_trips[:2]
    assert first["previous"] is None
    assert "limit=2" in first["next"] and "offset=2" in first["next"]
    assert [t["id"] for t in second["results"]] == five_trips[2:4]
    assert [t["id"] for t in last["results"]] == five_trips[4:]
    assert last["next"] is None
    assert client.get(TRIPS, {"limit": 2, "offset": 50}).json()["results"] == []


@pytest.mark.django_db
def test_an_offset_alone_pages_with_the_default_limit(rider, client_for, five_trips):
    body = client_for(rider).get(TRIPS, {"offset": 1}).json()

    assert body["count"] == 5
    assert [t["id"] for t in body["results"]] == five_trips[1:]


@pytest.mark.django_db
def test_a_limit_above_the_maximum_is_capped(rider, client_for, five_trips):
    body = client_for(rider).get(TRIPS, {"limit": 100000, "offset": 1}).json()

    assert len(body["results"]) == 4
    assert "limit=100" in body["previous"] and "limit=100000" not in body["previous"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "abc"},
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "1.5"},
        {"limit": " 2"},
        {"limit": "+2"},
        {"limit": "\uff12"},  # a fullwidth digit, which int() would take
        {"limit": ""},
        {"offset": "-1"},
        {"offset": "x"},
        {"offset": "9" * 50},
        {"offset": "9" * 5000},
        {"limit": "2", "offset": "1e3"},
    ],
)
def test_bad_paging_parameters_are_a_400(rider, client_for, five_trips, params):
    response = client_for(rider).get(TRIPS, params)

    assert response.status_code == 400
    assert error_code(response) == "invalid"


# detail


@pytest.mark.django_db
def test_the_rider_reads_their_trip(rider, client_for):
    trip = make_trip(rider)

    response = client_for(rider).get(url(trip))

    assert response.status_code == 200
    assert response.json()["id"] == str(trip.pk)
    assert set(response.json()) == TRIP_KEYS


@pytest.mark.django_db
def test_another_rider_gets_404(make_user, rider, client_for):
    trip = make_trip(rider)

    response = client_for(make_user("rider")).get(url(trip))

    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.django_db
def test_a_driver_reads_a_trip_only_while_it_is_offered_to_them(rider, driver, client_for):
    trip = make_trip(rider)
    client = client_for(driver)
    never_offered = client.get(url(trip))

    offer = make_offer(trip, driver)
    offered_now = client.get(url(trip))

    Offer.objects.filter(pk=offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    after_expiry = client.get(url(trip))

    assert (never_offered.status_code, offered_now.status_code, after_expiry.status_code) == (
        404,
        200,
        404,
    )
    assert error_code(never_offered) == error_code(after_expiry) == "not_found"


@pytest.mark.django_db
def test_an_offered_driver_does_not_see_who_the_rider_is_until_they_accept(
    rider, driver, client_for
):
    trip = make_trip(rider)
    make_offer(trip, driver)
    client = client_for(driver)

    offered_detail = client.get(url(trip)).json()
    offered_listing = client.get("/api/trip/").json()
    accepted = client.post(url(trip, "accept")).json()
    rider_view = client_for(rider).get(url(trip)).json()

    assert offered_detail["rider"] is None
    assert [t["rider"] for t in offered_listing] == [None]
    assert accepted["rider"]["id"] == rider.pk
    assert rider_view["rider"]["username"] == rider.username


@pytest.mark.django_db
@pytest.mark.parametrize("trip_id", ["not-a-uuid", "1", str(uuid.uuid4()), "%00", "x" * 300])
def test_unknown_or_malformed_ids_are_a_json_404(rider, client_for, trip_id):
    make_trip(rider)
    client = client_for(rider)

    for path in [url(trip_id)] + [url(trip_id, a) for a in ("status", "cancel")]:
        method = client.get if path == url(trip_id) else client.post
        response = method(path, {"status": "IN_PROGRESS"}, format="json")
        assert response.status_code == 404, path
        assert error_code(response) == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/trip/a/b/c/", "/api/trips/", "/api/nope"])
def test_unknown_api_urls_are_a_json_404(rider, client_for, path):
    response = client_for(rider).get(path)

    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["accept", "decline"])
def test_accept_or_decline_of_a_malformed_or_unknown_id_is_refused(driver, client_for, action):
    client = client_for(driver)

    malformed = client.post(url("not-a-uuid", action))
    unknown = client.post(url(uuid.uuid4(), action))

    assert (malformed.status_code, error_code(malformed)) == (404, "not_found")
    # A well-formed id: no live offer, whether or not such a trip exists.
    assert (unknown.status_code, error_code(unknown)) == (409, "offer_not_available")


# accept and decline


@pytest.mark.django_db
def test_the_offered_driver_accepts(rider, driver, client_for):
    trip = make_trip(rider)
    make_offer(trip, driver)

    response = client_for(driver).post(url(trip, "accept"))

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["version"], body["driver"]["id"]) == (S.STARTED, 2, driver.pk)
    assert body["rider"]["id"] == rider.pk


@pytest.mark.django_db
@pytest.mark.parametrize("offer_status", ["overdue", Offer.Status.DECLINED, Offer.Status.EXPIRED])
def test_accepting_without_a_live_offer_is_offer_not_available(
    rider, driver, client_for, offer_status
):
    trip = make_trip(rider)
    if offer_status == "overdue":
        make_offer(trip, driver, expires_in_s=-1)
    else:
        make_offer(trip, driver, status=offer_status)
    before, offers_before = snapshot(trip), offer_states(trip)

    response = client_for(driver).post(url(trip, "accept"))

    assert response.status_code == 409
    assert error_code(response) == "offer_not_available"
    assert snapshot(trip) == before
    assert offer_states(trip) == offers_before


@pytest.mark.django_db
def test_another_drivers_offer_cannot_be_accepted(make_user, rider, client_for):
    trip = make_trip(rider)
    holder = make_user("driver")
    make_offer(trip, holder)
    before = snapshot(trip)

    response = client_for(make_user("driver")).post(url(trip, "accept"))

    assert response.status_code == 409
    assert error_code(response) == "offer_not_available"
    assert snapshot(trip) == before
    assert offer_states(trip) == {holder.pk: Offer.Status.PENDING}


@pytest.mark.django_db
def test_the_offered_driver_declines(rider, driver, client_for, django_capture_on_commit_callbacks):
    trip = make_trip(rider)
    make_offer(trip, driver)
    before = snapshot(trip)
    client = client_for(driver)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(trip, "decline"))
    again = client.post(url(trip, "decline"))

    assert response.status_code == 204
    assert response.content == b""
    assert offer_states(trip) == {driver.pk: Offer.Status.DECLINED}
    assert snapshot(trip) == before
    assert queued_dispatches() == 1
    assert again.status_code == 409
    assert error_code(again) == "offer_not_available"
    # And the trip is no longer theirs to read.
    assert client.get(url(trip)).status_code == 404


@pytest.mark.django_db
def test_declining_without_an_offer_is_offer_not_available(rider, driver, client_for):
    trip = make_trip(rider)

    response = client_for(driver).post(url(trip, "decline"))

    assert response.status_code == 409
    assert error_code(response) == "offer_not_available"
    assert queued_dispatches() == 0


# status and cancel


@pytest.mark.django_db
def test_the_assigned_driver_picks_up_and_drops_off(rider, driver, client_for):
    trip = make_trip(rider, status=S.STARTED, driver=driver, version=2)
    client = client_for(driver)

    picked_up = client.post(url(trip, "status"), {"status": "IN_PROGRESS"}, format="json")
    dropped_off = client.post(url(trip, "status"), {"status": "COMPLETED"}, format="json")

    assert (picked_up.status_code, dropped_off.status_code) == (200, 200)
    assert (picked_up.json()["status"], picked_up.json()["version"]) == (S.IN_PROGRESS, 3)
    assert (dropped_off.json()["status"], dropped_off.json()["version"]) == (S.COMPLETED, 4)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"status": "STARTED"},
        {"status": "CANCELED"},
        {"status": "EXPIRED"},
        {"status": "REQUESTED"},
        {"status": "in_progress"},
        {"status": None},
        {"status": ["IN_PROGRESS"]},
        {},
    ],
)
def test_status_takes_only_the_drivers_moves(rider, driver, client_for, body):
    trip = make_trip(rider, status=S.STARTED, driver=driver)
    before = snapshot(trip)

    response = client_for(driver).post(url(trip, "status"), body, format="json")

    assert response.status_code == 400
    assert "status" in response.json()
    assert snapshot(trip) == before


@pytest.mark.django_db
def test_the_rider_cancels_with_a_reason(rider, driver, client_for):
    trip = make_trip(rider)
    make_offer(trip, driver)

    response = client_for(rider).post(
        url(trip, "cancel"), {"reason": "changed plans"}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_reason"]) == (
        S.CANCELED,
        "changed plans",
    )
    assert offer_states(trip) == {driver.pk: Offer.Status.REVOKED}


@pytest.mark.django_db
def test_cancel_without_a_body_works(rider, client_for):
    trip = make_trip(rider)

    response = client_for(rider).post(url(trip, "cancel"))

    assert response.status_code == 200
    assert response.json()["status_reason"] == "canceled_by_rider"


@pytest.mark.django_db
def test_an_overlong_cancel_reason_is_a_400(rider, client_for):
    trip = make_trip(rider)
    before = snapshot(trip)

    response = client_for(rider).post(url(trip, "cancel"), {"reason": "x" * 256}, format="json")

    assert response.status_code == 400
    assert "reason" in response.json()
    assert snapshot(trip) == before


# The whole table again, over REST.


def _rest_act(client: APIClient, action: str, trip: Trip):
    if action == "accept":
        return client.post(url(trip, "accept"))
    if action == "cancel":
        return client.post(url(trip, "cancel"), {}, format="json")
    return client.post(url(trip, "status"), {"status": action.upper()}, format="json")


@pytest.fixture
def world(make_user):
    return make_world(make_user)


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "action", "role"), ALLOWED_CASES)
def test_allowed_moves_over_rest(world, client_for, status, action, role):
    trip = build(world, status)
    before = snapshot(trip)

    response = _rest_act(client_for(world[role]), action, trip)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["version"]) == (ALLOWED[(status, action, role)], before[1] + 1)
    assert Trip.objects.get(pk=trip.pk).status == body["status"]


def _expected_refusal(status: str, action: str, role: str) -> tuple[int, str]:
    error = refusal(status, action, role)
    return error.http_status, error.code


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "action", "role"), REFUSED_CASES)
def test_refused_moves_over_rest_change_nothing(world, client_for, status, action, role):
    trip = build(world, status)
    before, offers_before = snapshot(trip), offer_states(trip)

    response = _rest_act(client_for(world[role]), action, trip)

    assert (response.status_code, error_code(response)) == _expected_refusal(status, action, role)
    assert snapshot(trip) == before
    assert offer_states(trip) == offers_before


# Pushes: what reaches the users' streams (and what must not).


async def listen(user_id: int) -> str:
    """A test channel subscribed to `user_id`'s own stream, as their sockets are."""
    layer = get_channel_layer()
    channel = await layer.new_channel("test.listener.")
    await layer.group_add(push.user_stream(user_id), channel)
    return channel


async def next_push(channel: str) -> dict:
    message = await asyncio.wait_for(get_channel_layer().receive(channel), timeout=5)
    assert message["type"] == push.STREAM_PUSH
    return message["frame"]


async def nothing_pushed(channel: str, within_s: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(get_channel_layer().receive(channel), timeout=within_s)
    except TimeoutError:
        return True
    return False


@database_sync_to_async
def post_as(user, path: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user)['access']}")
    return client.post(path)


@pytest.fixture
async def sync_thread_connection_closed():
    """The async tests reach the database from asgiref's one sync thread; close
    that thread's (persistent) connection afterwards, so PostgreSQL can drop
    the test database at the end of the run."""
    yield
    await database_sync_to_async(lambda: connection.close())()


@database_sync_to_async
def _offered_trip(make_user):
    rider, driver, stranger = make_user("rider"), make_user("driver"), make_user("rider")
    trip = make_trip(rider)
    make_offer(trip, driver)
    return trip, rider, driver, stranger


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sync_thread_connection_closed")
async def test_an_accept_pushes_trip_updated_to_rider_and_driver_only(make_user):
    # Given a trip offered to a driver, and listeners on three users' streams
    trip, rider, driver, stranger = await _offered_trip(make_user)
    to_rider, to_driver, to_stranger = (
        await listen(rider.pk),
        await listen(driver.pk),
        await listen(stranger.pk),
    )

    # When the driver accepts over REST
    response = await post_as(driver, url(trip, "accept"))

    # Then the rider and the driver hear `trip.updated` with the new version,
    # and the unrelated user hears nothing.
    assert response.status_code == 200
    for channel in (to_rider, to_driver):
        push = await next_push(channel)
        assert push["type"] == events.TRIP_UPDATED
        data = push["data"]
        assert (data["id"], data["status"], data["version"]) == (str(trip.pk), S.STARTED, 2)
        assert data["driver"]["id"] == driver.pk
    assert await nothing_pushed(to_stranger)
    assert await nothing_pushed(to_rider)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sync_thread_connection_closed")
async def test_a_decline_tells_the_rider_nothing(make_user):
    trip, rider, driver, _ = await _offered_trip(make_user)
    to_rider = await listen(rider.pk)

    response = await post_as(driver, url(trip, "decline"))

    assert response.status_code == 204
    assert await nothing_pushed(to_rider)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sync_thread_connection_closed")
async def test_a_refused_call_pushes_nothing(make_user):
    trip, rider, driver, stranger = await _offered_trip(make_user)
    to_rider, to_driver = await listen(rider.pk), await listen(driver.pk)
    intruder = await database_sync_to_async(make_user)("driver")

    responses = [
        await post_as(intruder, url(trip, "accept")),
        await post_as(intruder, url(trip, "cancel")),
        await post_as(stranger, url(trip, "cancel")),
    ]

    assert [r.status_code for r in responses] == [409, 404, 404]
    assert await nothing_pushed(to_rider)
    assert await nothing_pushed(to_driver)
    assert (await database_sync_to_async(snapshot)(trip))[:3] == (S.REQUESTED, 1, None)
