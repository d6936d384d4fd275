"""A driver cannot teleport to the front of the queue (issue 10, item 7).

The issue's scenario over the real REST API and the real dispatch service:
an honest driver 110 m from the pick-up, and a cheater 3,000 km away who
reports three jumps of about 1,000 km, a second apart, ending on the
pick-up. Presence's clock is set by hand so that "a second apart" is exact.
"""

import pytest

from dispatch import presence
from dispatch.loop import trip_offer_next
from tests.dispatch.support import PICK_UP, driver_state, km_north, request_trip

pytestmark = pytest.mark.django_db(transaction=True)


def post(client, path: str, position: tuple[float, float]):
    return client.post(path, {"lat": position[0], "lng": position[1]}, format="json")


def test_a_driver_jumping_1000_km_a_second_is_not_offered_the_trip_over_an_honest_one(
    clock, make_user, rider, client_for, caplog
):
    honest, cheater = make_user("driver"), make_user("driver")
    honest_app, cheater_app = client_for(honest), client_for(cheater)
    # Given an honest driver 110 m from the pick-up, and a cheater 3,000 km away
    assert post(honest_app, "/api/driver/online/", km_north(0.11)).status_code == 200
    assert post(cheater_app, "/api/driver/online/", km_north(3000)).status_code == 200

    # When the cheater reports three jumps of 1,000 km, a second apart, the
    # last one onto the pick-up (every call answered as usual: a cheater is
    # not told which positions counted)
    for km in (2000, 1000, 0):
        clock.advance(1)
        assert post(cheater_app, "/api/driver/location/", km_north(km)).status_code == 204
    trip = request_trip(rider, at=PICK_UP)
    offer = trip_offer_next(trip_id=trip.pk)

    # Then the honest driver is offered the trip
    assert offer.driver_id == honest.pk
    assert offer.distance_km == pytest.approx(0.11, abs=0.01)
    # and the cheater's three jumps were refused, counted and logged
    assert presence.location_rejections() == {cheater.pk: 3}
    events = [r for r in caplog.records if r.getMessage() == "dispatch.location_rejected"]
    assert [e.driver_id for e in events] == [cheater.pk] * 3
    assert all(e.speed_kmh > 3_000_000 for e in events)
    # and the honest driver's position was never in doubt
    assert driver_state(honest.pk).get("held") is None
