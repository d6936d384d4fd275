"""`POST /api/devices/` and `DELETE /api/devices/<id>/` (PROTOCOL.md Part 2,
"Devices and push notifications"), and log-out forgetting the devices of
that log-in or session."""

import json

import pytest

from notifications.models import Device
from tests.conftest import PASSWORD
from tests.notifications.support import Browser, apns_token, fcm_token
from trips.auth import tokens_for

pytestmark = pytest.mark.django_db

PUSH_SERVICE = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABm"


def register(client, platform: str, token: object):
    return client.post("/api/devices/", {"platform": platform, "token": token}, format="json")


def bearer(api, user):
    tokens = tokens_for(user)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return tokens


def test_a_device_is_registered_and_its_token_is_not_echoed(client_for, rider):
    token = fcm_token()

    response = register(client_for(rider), "fcm", token)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "platform", "created", "updated"}
    assert body["platform"] == "fcm"
    device = Device.objects.get()
    assert str(device.pk) == body["id"]
    assert (device.user, device.token) == (rider, token)
    assert token not in response.content.decode()


def test_registering_the_same_token_again_keeps_one_device(client_for, rider):
    token = fcm_token()
    first = register(client_for(rider), "fcm", token)

    again = register(client_for(rider), "fcm", token)

    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert Device.objects.count() == 1


def test_a_token_registered_by_another_user_moves_to_them(client_for, rider, make_user):
    # Given a phone registered by one rider
    token = apns_token()
    first = register(client_for(rider), "apns", token)
    other = make_user("driver")

    # When someone else logs in on it and registers the same token
    again = register(client_for(other), "apns", token.upper())

    # Then the one device is theirs now
    assert again.json()["id"] == first.json()["id"]
    assert list(Device.objects.values_list("user_id", "token")) == [(other.pk, token)]


def test_a_web_push_subscription_as_object_or_json_string(client_for, rider):
    browser = Browser.make(PUSH_SERVICE)

    as_object = register(client_for(rider), "webpush", browser.subscription())
    # the same endpoint with new keys, as a string: the same device, new keys
    renewed = Browser.make(PUSH_SERVICE)
    as_string = register(client_for(rider), "webpush", json.dumps(renewed.subscription()))

    assert as_object.status_code == as_string.status_code == 201
    assert as_object.json()["id"] == as_string.json()["id"]
    stored = json.loads(Device.objects.get().token)
    assert stored == {
        "endpoint": PUSH_SERVICE,
        "keys": renewed.subscription()["keys"],
    }


BAD = [
    ({"platform": "fcm"}, "token"),
    ({"token": fcm_token()}, "platform"),
    ({"platform": "sms", "token": fcm_token()}, "platform"),
    ({"platform": "fcm", "token": 42}, "token"),
    ({"platform": "fcm", "token": ""}, "token"),
    ({"platform": "fcm", "token": "short"}, "token"),
    ({"platform": "fcm", "token": "has spaces in it"}, "token"),
    ({"platform": "fcm", "token": "a\x00" + "b" * 20}, "token"),
    ({"platform": "fcm", "token": "x" * 4097}, "token"),
    ({"platform": "fcm", "token": {"endpoint": PUSH_SERVICE}}, "token"),
    ({"platform": "apns", "token": "zz" * 32}, "token"),
    ({"platform": "apns", "token": "ab" * 31}, "token"),
    ({"platform": "webpush", "token": "not json"}, "token"),
    ({"platform": "webpush", "token": "[1, 2]"}, "token"),
    ({"platform": "webpush", "token": {"endpoint": PUSH_SERVICE}}, "token"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=range(len(BAD)))
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(client_for, rider, body, field):
    response = client_for(rider).post("/api/devices/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Device.objects.exists()


def _subscription(**changes) -> dict:
    subscription = Browser.make(PUSH_SERVICE).subscription()
    keys = {**subscription["keys"], **changes.pop("keys", {})}
    return {**subscription, **changes, "keys": keys}


BAD_SUBSCRIPTIONS = {
    "another host": _subscription(endpoint="https://push.example.com/x"),
    "a look-alike host": _subscription(endpoint="https://evilpush.services.mozilla.com.example/x"),
    "plain http": _subscription(endpoint="http://updates.push.services.mozilla.com/x"),
    "an internal address": _subscription(endpoint="https://127.0.0.1/x"),
    "userinfo": _subscription(endpoint="https://u:p@updates.push.services.mozilla.com/x"),
    "not a url": _subscription(endpoint="updates.push.services.mozilla.com"),
    "a short auth": _subscription(keys={"auth": "AAAA"}),
    "auth not base64url": _subscription(keys={"auth": "%%%%%%%%%%%%%%%%%%%%%%"}),
    "p256dh not a point": _subscription(keys={"p256dh": "BA" + "A" * 85}),
    "p256dh compressed": _subscription(keys={"p256dh": "Ag" + "A" * 41}),
    "keys missing": {"endpoint": PUSH_SERVICE},
}


@pytest.mark.parametrize("case", BAD_SUBSCRIPTIONS)
def test_a_subscription_is_checked_before_it_is_kept(client_for, rider, case):
    response = register(client_for(rider), "webpush", BAD_SUBSCRIPTIONS[case])

    assert response.status_code == 400, response.json()
    assert "token" in response.json()
    assert not Device.objects.exists()


def test_the_owner_deletes_a_device(client_for, rider):
    client = client_for(rider)
    device_id = register(client, "fcm", fcm_token()).json()["id"]

    response = client.delete(f"/api/devices/{device_id}/")

    assert response.status_code == 204
    assert not Device.objects.exists()


@pytest.mark.parametrize(
    "device_id", ["someone-elses", "00000000-0000-0000-0000-000000000000", "x"]
)
def test_anyone_elses_device_or_no_device_is_a_404(client_for, rider, make_user, device_id):
    theirs = register(client_for(rider), "fcm", fcm_token()).json()["id"]
    if device_id == "someone-elses":
        device_id = theirs

    response = client_for(make_user("rider")).delete(f"/api/devices/{device_id}/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert Device.objects.filter(pk=theirs).exists()


def test_anonymous_calls_are_401(api, client_for, rider):
    device_id = register(client_for(rider), "fcm", fcm_token()).json()["id"]

    assert register(api, "fcm", fcm_token()).status_code == 401
    assert api.delete(f"/api/devices/{device_id}/").status_code == 401
    assert Device.objects.count() == 1


def test_a_user_keeps_their_most_recent_devices(client_for, rider, settings):
    settings.DEVICES_MAX_PER_USER = 2
    client = client_for(rider)
    ids = [register(client, "fcm", fcm_token()).json()["id"] for _ in range(3)]

    assert sorted(str(pk) for pk in Device.objects.values_list("pk", flat=True)) == sorted(ids[1:])


def test_registration_is_throttled_per_user(client_for, rider, make_user, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "devices": "2/min",
        },
    }
    client = client_for(rider)
    answers = [register(client, "fcm", fcm_token()).status_code for _ in range(3)]

    assert answers == [201, 201, 429]
    assert Device.objects.count() == 2
    # another user has a budget of their own
    assert register(client_for(make_user("rider")), "fcm", fcm_token()).status_code == 201


# --- log-out ------------------------------------------------------------------------


def test_log_out_forgets_the_devices_of_that_log_in_only(api, rider):
    # Given a phone and a tablet, each logged in on its own
    phone, tablet = tokens_for(rider), tokens_for(rider)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {phone['access']}")
    register(api, "fcm", fcm_token())
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tablet['access']}")
    kept = register(api, "apns", apns_token()).json()["id"]

    # When the phone logs out
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {phone['access']}")
    response = api.post("/api/log_out/", {"refresh": phone["refresh"]}, format="json")

    # Then its device is gone and the tablet's stays
    assert response.status_code == 204
    assert [str(pk) for pk in Device.objects.values_list("pk", flat=True)] == [kept]


def test_log_out_with_the_access_token_alone_forgets_its_devices(api, rider):
    tokens = bearer(api, rider)
    register(api, "fcm", fcm_token())

    assert api.post("/api/log_out/").status_code == 204
    assert not Device.objects.exists()
    assert tokens  # its refresh token was not sent: only the access token's log-in


def test_log_out_of_a_session_forgets_the_devices_it_registered(api, client_for, rider):
    # Given a browser logged in with the session cookie, and another device
    assert (
        api.post(
            "/api/log_in/", {"username": rider.username, "password": PASSWORD}, format="json"
        ).status_code
        == 200
    )
    api.credentials()  # the cookie only
    register(api, "webpush", Browser.make(PUSH_SERVICE).subscription())
    kept = register(client_for(rider), "fcm", fcm_token()).json()["id"]

    # When the browser logs out
    assert api.post("/api/log_out/").status_code == 204

    # Then only the browser's subscription is gone
    assert [str(pk) for pk in Device.objects.values_list("pk", flat=True)] == [kept]
