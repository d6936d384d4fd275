"""The pages as the server renders them: who may see which, what they link,
and that nothing in them points at another host."""

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from dispatch.models import Offer
from pages.views import content_security_policy
from tests.trips.factories import make_offer, make_trip

pytestmark = pytest.mark.django_db

PAGES = ("/", "/app/")
ASSET = re.compile(r'(?:src|href)="([^"]+)"')


def assets(html: str) -> list[str]:
    return [url for url in ASSET.findall(html) if not url.startswith("#")]


@pytest.fixture
def staff_client(client, make_user):
    staff = make_user("rider", is_staff=True)
    client.force_login(staff)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_public_pages_load_only_this_hosts_files(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == content_security_policy()
    for url in assets(response.content.decode()):
        assert url.startswith("/"), f"{path} links {url}, which is not on this host"
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file"


def test_the_landing_page_links_the_app_the_console_the_docs_and_the_admin(client):
    html = client.get("/").content.decode()

    for url in ("/app/", "/ops/", "/api/docs/", "/admin/"):
        assert f'href="{url}"' in html


def test_the_app_gets_its_map_settings_and_no_tiles_by_default(client):
    html = client.get("/app/").content.decode()
    config = json.loads(
        re.search(r'<script id="config" type="application/json">(.*?)</script>', html)[1]
    )

    assert config["tileUrl"] == ""
    assert config["center"] == [38.9, -77.04]
    assert "img-src 'self' data:;" in content_security_policy()


def test_a_tile_url_setting_lets_the_pages_load_tiles_from_that_host_only(client, settings):
    settings.MAP_TILE_URL = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"

    response = client.get("/app/")

    assert "https://{s}.tiles.example.org" in response.content.decode()
    assert (
        "img-src 'self' data: https://*.tiles.example.org;" in response["Content-Security-Policy"]
    )
    assert "connect-src 'self';" in response["Content-Security-Policy"]


def test_the_console_sends_anonymous_visitors_to_the_admin_log_in(client):
    response = client.get("/ops/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/ops/"


def test_the_console_sends_riders_and_drivers_to_the_admin_log_in(client, rider, driver):
    for user in (rider, driver):
        client.force_login(user)
        response = client.get("/ops/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_the_console_opens_for_staff(staff_client):
    response = staff_client.get("/ops/")

    assert response.status_code == 200
    assert '"streamPath": "/ops/stream/"' in response.content.decode()


def test_a_trips_history_lists_its_offers_for_staff(staff_client, rider, make_user):
    first, second = make_user("driver"), make_user("driver")
    trip = make_trip(rider)
    declined = make_offer(trip, first, status=Offer.Status.DECLINED)
    Offer.objects.filter(pk=declined.pk).update(closed_at=timezone.now(), distance_km=0.4321)
    make_offer(trip, second)

    history = staff_client.get(f"/ops/trip/{trip.id}/").json()

    assert (history["id"], history["status"], history["driver"]) == (
        str(trip.id),
        "REQUESTED",
        None,
    )
    assert [(o["driver"], o["status"]) for o in history["offers"]] == [
        (first.id, "DECLINED"),
        (second.id, "PENDING"),
    ]
    assert history["offers"][0]["distance_km"] == 0.43
    assert history["offers"][1]["closed_at"] is None


def test_a_trips_history_is_hidden_from_everyone_else(client, rider):
    trip = make_trip(rider)
    client.force_login(rider)

    assert client.get(f"/ops/trip/{trip.id}/").status_code == 404
    assert client.logout() is None
    assert client.get(f"/ops/trip/{trip.id}/").status_code == 404


def test_an_unknown_trip_has_no_history(staff_client):
    response = staff_client.get(f"/ops/trip/{uuid.uuid4()}/")

    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_the_favicon_is_served_not_a_404(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert finders.find(response["Location"].removeprefix("/static/"))


def test_trip_history_offers_are_oldest_first(staff_client, rider, make_user):
    trip = make_trip(rider)
    later, earlier = make_user("driver"), make_user("driver")
    make_offer(trip, later, status=Offer.Status.EXPIRED)
    make_offer(trip, earlier, status=Offer.Status.EXPIRED)
    Offer.objects.filter(driver=earlier).update(created=timezone.now() - timedelta(minutes=1))

    offers = staff_client.get(f"/ops/trip/{trip.id}/").json()["offers"]

    assert [o["driver"] for o in offers] == [earlier.id, later.id]
