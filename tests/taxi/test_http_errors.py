"""Errors on API paths are `{"detail", "code"}` JSON whatever DEBUG says; a
body over the limit is a 413; other paths keep Django's pages
(taxi/http_errors.py). The same over the network: tests/hardening/test_web_exposure_live.py.
"""

import json

import pytest
from django.http import HttpRequest
from django.test import Client
from django.urls import path

import taxi.urls
from taxi.http_errors import request_body_limit
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def crash(request: HttpRequest):
    raise RuntimeError("a bug")


# This module is also the URLconf of the tests marked `urls(__name__)`: the
# site's, plus a view that crashes on an API path and one elsewhere.
urlpatterns = [
    path("api/crash/", crash),
    path("crash/", crash),
    *taxi.urls.urlpatterns,
]
handler400 = taxi.urls.handler400
handler404 = taxi.urls.handler404
handler500 = taxi.urls.handler500


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


def assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"detail", "code"}
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]


@pytest.mark.parametrize("url", ["/api/no-such-thing/", "/api/", "/api/trip/x/y/z/"])
def test_an_unknown_api_url_is_a_json_404(debug, url):
    assert_json_error(Client().get(url), 404, "not_found")


@pytest.mark.parametrize("url", ["/api/trip/", "/api/log_in/", "/healthz"])
def test_a_host_not_allowed_is_a_json_400_on_api_paths(debug, url):
    response = Client().get(url, HTTP_HOST="evil.example")

    assert_json_error(response, 400, "invalid")
    assert b"ALLOWED_HOSTS" not in response.content


@pytest.mark.urls(__name__)
def test_a_crash_on_an_api_path_is_a_json_500(debug):
    response = Client(raise_request_exception=False).get("/api/crash/")

    assert_json_error(response, 500, "server_error")
    assert b"a bug" not in response.content and b"Traceback" not in response.content


@pytest.mark.urls(__name__)
def test_other_paths_keep_html_pages(settings):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)

    for url, status in (("/no-such-page/", 404), ("/crash/", 500)):
        response = client.get(url)
        assert response.status_code == status
        assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("content_type", "limit"),
    [("application/json", 2_621_440), ("multipart/form-data; boundary=x", 2_621_440 + 5_242_880)],
)
def test_the_body_limit_is_djangos_plus_one_photo_for_multipart(content_type, limit):
    assert request_body_limit(content_type) == limit


def test_an_announced_body_over_the_limit_is_a_413_before_it_is_read(debug, rider):
    # 1 byte over DATA_UPLOAD_MAX_MEMORY_SIZE, on the log-in call
    body = json.dumps({"username": rider.username, "password": PASSWORD})
    body += " " * (request_body_limit("application/json") + 1 - len(body))

    response = Client().post("/api/log_in/", body, content_type="application/json")

    assert_json_error(response, 413, "too_large")
    assert "sessionid" not in response.cookies


def test_a_body_at_the_limit_is_read(rider):
    body = json.dumps({"username": rider.username, "password": PASSWORD})
    body += " " * (request_body_limit("application/json") - len(body))

    response = Client().post("/api/log_in/", body, content_type="application/json")

    assert response.status_code == 200, response.content[:300]


def test_multipart_fields_over_djangos_limit_are_a_413_not_a_400(debug, settings):
    # Within the multipart limit (which leaves room for a photo), but the
    # form fields alone are more than Django reads into memory.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = Client().post("/api/sign_up/", {"first_name": "x" * 2000, "username": "a"})

    assert_json_error(response, 413, "too_large")
