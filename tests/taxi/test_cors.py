"""Browsers: a web app on an allowed origin (CORS_ALLOWED_ORIGINS) may call
the API with a Bearer token and JSON; no other origin may, no path outside
/api/ answers CORS, and cookies are never allowed across origins."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"


@pytest.fixture(autouse=True)
def allowed_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]


def preflight(url: str, origin: str, headers: str = "content-type"):
    return Client().options(
        url,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def test_the_log_in_preflight_from_an_allowed_origin_succeeds():
    response = preflight("/api/log_in/", APP, "content-type, authorization, idempotency-key")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_the_log_in_itself_from_an_allowed_origin_is_readable_by_the_app(rider):
    response = Client().post(
        "/api/log_in/",
        {"username": rider.username, "password": PASSWORD},
        content_type="application/json",
        HTTP_ORIGIN=APP,
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in response
    assert "retry-after" in response["Access-Control-Expose-Headers"].lower()


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://app.example.com", "https://app.example.com.evil"]
)
def test_another_origin_gets_no_allow_header(origin):
    response = preflight("/api/log_in/", origin)

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


def test_paths_outside_the_api_answer_no_cors():
    response = preflight("/admin/login/", APP)

    assert "Access-Control-Allow-Origin" not in response


def test_no_origin_is_allowed_by_default(settings):
    settings.CORS_ALLOWED_ORIGINS = []

    assert "Access-Control-Allow-Origin" not in preflight("/api/log_in/", APP)


def test_an_error_from_an_allowed_origin_is_readable_too():
    # A 404 JSON body an app can show, rather than an opaque network error.
    response = Client().get("/api/no-such-thing/", HTTP_ORIGIN=APP)

    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == APP
