"""The `workers.push_notification` task through a real Celery worker thread,
to the providers' local servers: every device of the user reached once,
tokens the provider says are gone deleted, transient failures retried for
the devices not yet reached, a task run twice sending nothing twice, and a
notification past its expiry not sent."""

import time

import pytest

from notifications import tokens
from notifications.messages import Notification
from notifications.models import Device
from notifications.services import device_register, notify, notify_offer
from tests.notifications.providers import Answer
from tests.notifications.support import Browser, apns_token, fcm_token
from tests.trips.factories import make_offer, make_trip
from trips.services import trip_accept
from workers.tasks import push_notification

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_S = 1.0


def register(user, platform: str, token: object) -> Device:
    return device_register(user=user, token=tokens.parse(platform, token))


def phones(user, providers) -> dict[str, tuple[Device, str]]:
    """One device of each platform; the provider-side name of each."""
    fcm, apns = fcm_token(), apns_token()
    browser = Browser.make(providers["webpush"].endpoint(f"user-{user.pk}"))
    return {
        "fcm": (register(user, "fcm", fcm), fcm),
        "apns": (register(user, "apns", apns), apns),
        "webpush": (register(user, "webpush", browser.subscription()), f"user-{user.pk}"),
    }


def counts(providers) -> dict[str, int]:
    return {name: len(server.received) for name, server in providers.items()}


def settle(providers, expected: dict[str, int], timeout_s: float = 15) -> dict[str, int]:
    """Wait for the expected arrivals, then a quiet moment for any extra one."""
    for name, count in expected.items():
        providers[name].wait_for(count, timeout_s)
    time.sleep(QUIET_S)
    return counts(providers)


def test_a_trip_update_reaches_each_device_of_a_rider_without_a_socket(
    providers, dispatch_worker, rider, driver
):
    # Given a rider with a phone of each kind and no socket open
    phones(rider, providers)
    trip = make_trip(rider)
    make_offer(trip, driver)

    # When a driver accepts the trip
    trip_accept(trip_id=trip.pk, driver=driver)

    # Then each provider is asked once to show it
    assert settle(providers, {"fcm": 1, "apns": 1, "webpush": 1}) == {
        "fcm": 1,
        "apns": 1,
        "webpush": 1,
    }
    fcm_data = providers["fcm"].received[0].json()["message"]["data"]
    assert fcm_data == {
        "type": "trip.updated",
        "trip_id": str(trip.pk),
        "status": "STARTED",
        "version": "2",
    }
    apns_body = providers["apns"].received[0].json()
    assert (apns_body["trip_id"], apns_body["status"]) == (str(trip.pk), "STARTED")
    assert Device.objects.count() == 3


def test_tokens_the_providers_say_are_gone_are_deleted(
    providers, dispatch_worker, rider, make_user
):
    # Given a rider's three devices, each gone at its provider, and another
    # user's device
    devices = phones(rider, providers)
    providers["fcm"].answers[devices["fcm"][1]].append(
        Answer(404, {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}})
    )
    providers["apns"].answers[devices["apns"][1]].append(Answer(410, {"reason": "Unregistered"}))
    providers["webpush"].answers[devices["webpush"][1]].append(Answer(410))
    other = register(make_user("rider"), "fcm", fcm_token())

    # When a notification is sent to the rider
    notify(user_id=rider.pk, notification=_notification())

    # Then each device is deleted, and nothing else
    deadline = time.monotonic() + 15
    while Device.objects.filter(user=rider).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(Device.objects.values_list("pk", flat=True)) == [other.pk]


def test_a_transient_failure_is_retried_for_that_device_only(providers, dispatch_worker, rider):
    # Given FCM busy for a moment (503, retry after 1 s) and the others fine
    devices = phones(rider, providers)
    providers["fcm"].answers[devices["fcm"][1]].append(
        Answer(503, {"error": {"status": "UNAVAILABLE"}}, {"retry-after": "1"})
    )

    notify(user_id=rider.pk, notification=_notification())

    # Then FCM is asked again and takes it; APNs and Web Push got it once
    assert settle(providers, {"fcm": 2, "apns": 1, "webpush": 1}) == {
        "fcm": 2,
        "apns": 1,
        "webpush": 1,
    }
    assert Device.objects.count() == 3


def test_the_task_run_twice_reaches_each_device_once(providers, dispatch_worker, rider):
    phones(rider, providers)
    notification = _notification().to_json()

    push_notification.delay(rider.pk, notification)
    push_notification.delay(rider.pk, notification)

    assert settle(providers, {"fcm": 1, "apns": 1, "webpush": 1}) == {
        "fcm": 1,
        "apns": 1,
        "webpush": 1,
    }


def test_an_offer_notification_lives_until_the_offer_s_deadline(
    providers, dispatch_worker, rider, driver
):
    # The entry point the acknowledgement machinery calls for an offer
    # none of the driver's sockets acknowledged.
    phones(driver, providers)
    trip = make_trip(rider)
    offer = make_offer(trip, driver, expires_in_s=12)

    notify_offer(offer=offer, trip=trip)

    settle(providers, {"fcm": 1, "apns": 1, "webpush": 1})
    received = providers["apns"].received
    fcm = providers["fcm"].received[0].json()["message"]
    assert fcm["data"]["type"] == "trip.offer"
    assert 0 < int(fcm["android"]["ttl"].removesuffix("s")) <= 12
    assert {r.headers["apns-expiration"] for r in received} == {
        str(int(offer.expires_at.timestamp()))
    }
    body = received[0].json()
    assert (body["type"], body["offer_id"], body["trip_id"]) == (
        "trip.offer",
        str(offer.pk),
        str(trip.pk),
    )
    assert {r.headers["apns-collapse-id"] for r in received} == {f"offer-{offer.pk}"}


def test_a_notification_past_its_expiry_is_not_sent(providers, rider):
    phones(rider, providers)

    push_notification.apply(args=(rider.pk, _notification(expires_at=time.time() - 1).to_json()))

    assert counts(providers) == {"fcm": 0, "apns": 0, "webpush": 0}


BAD_ARGUMENTS = {
    "user id not a number": lambda user: (str(user.pk), _notification().to_json()),
    "not a notification": lambda user: (user.pk, {"kind": "trip.updated"}),
    "not an object": lambda user: (user.pk, "trip.updated"),
    "data not strings": lambda user: (user.pk, {**_notification().to_json(), "data": {"a": 1}}),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_are_dropped_quietly(providers, rider, case):
    phones(rider, providers)

    result = push_notification.apply(args=BAD_ARGUMENTS[case](rider))

    assert result.successful()
    assert counts(providers) == {"fcm": 0, "apns": 0, "webpush": 0}


def test_a_device_whose_provider_is_off_is_skipped(providers, settings, rider):
    phones(rider, providers)
    settings.APNS_AUTH_KEY = ""

    push_notification.apply(args=(rider.pk, _notification().to_json()))

    assert counts(providers) == {"fcm": 1, "apns": 0, "webpush": 1}


def test_an_inactive_user_s_devices_are_not_sent_to(providers, rider):
    phones(rider, providers)
    rider.is_active = False
    rider.save()

    push_notification.apply(args=(rider.pk, _notification().to_json()))

    assert counts(providers) == {"fcm": 0, "apns": 0, "webpush": 0}


def _notification(**changes) -> Notification:
    fields = {
        "kind": "trip.updated",
        "title": "Your driver is on the way",
        "body": "A driver accepted your ride.",
        "data": {"type": "trip.updated", "trip_id": "t", "status": "STARTED", "version": "2"},
        "collapse_key": "trip-t",
        "expires_at": time.time() + 300,
    }
    return Notification(**{**fields, **changes})


def test_no_token_or_endpoint_reaches_the_logs(providers, rider, caplog):
    # Given a device of each kind, each answered with trouble: busy, gone, refused
    devices = phones(rider, providers)
    providers["fcm"].answers[devices["fcm"][1]].append(Answer(503, {"error": {}}))
    providers["apns"].answers[devices["apns"][1]].append(Answer(410, {"reason": "Unregistered"}))
    providers["webpush"].answers[devices["webpush"][1]].append(Answer(413))
    secrets = [devices["fcm"][1], devices["apns"][1], providers["webpush"].endpoint("")]

    # When the task runs (and retries) with every log line kept
    with caplog.at_level("DEBUG"):
        push_notification.apply(args=(rider.pk, _notification().to_json()))

    # Then the lines say what happened to which device, and carry no token
    events = [record.getMessage() for record in caplog.records]
    assert {"push.retry", "push.token_invalid_deleted", "push.rejected", "push.sent"} <= set(events)
    for record in caplog.records:
        line = f"{record.getMessage()} {record.__dict__}"
        assert not any(secret in line for secret in secrets), line
