"""The API's own documentation: the OpenAPI document and the docs page
(PROTOCOL.md, "Operations"), public and usable with no internet access."""

import io
import json
import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import Resolver404, resolve
from drf_spectacular.drainage import GENERATOR_STATS

from tests.trips.factories import TRIP_KEYS, TRIP_REQUEST
from trips import errors

SCHEMA = "/api/schema/"
DOCS = "/api/docs/"

# Every REST call in PROTOCOL.md, as (method, path) with OpenAPI's `{...}` for ids.
PROTOCOL_CALLS = [
    ("post", "/api/sign_up/"),
    ("post", "/api/log_in/"),
    ("post", "/api/log_out/"),
    ("post", "/api/token/refresh/"),
    ("post", "/api/trip/"),
    ("get", "/api/trip/"),
    ("get", "/api/trip/{trip_id}/"),
    ("post", "/api/trip/{trip_id}/accept/"),
    ("post", "/api/trip/{trip_id}/decline/"),
    ("post", "/api/trip/{trip_id}/status/"),
    ("post", "/api/trip/{trip_id}/cancel/"),
    ("post", "/api/driver/online/"),
    ("post", "/api/driver/offline/"),
    ("post", "/api/driver/location/"),
    ("get", "/api/driver/nearby/"),
    # Part 2, "Devices and push notifications".
    ("post", "/api/devices/"),
    ("delete", "/api/devices/{device_id}/"),
]
# The calls that must exist already; the drivers' arrive with dispatch.
REQUIRED_PREFIXES = ("/api/sign_up/", "/api/log_in/", "/api/log_out/", "/api/token/", "/api/trip/")


def _routed(path: str) -> bool:
    try:
        resolve(re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path))
    except Resolver404:
        return False
    return True


@pytest.fixture
def schema(api) -> dict:
    response = api.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_is_public_as_yaml_and_json(api):
    as_yaml = api.get(SCHEMA)
    as_json = api.get(SCHEMA, HTTP_ACCEPT="application/json")

    assert as_yaml.status_code == as_json.status_code == 200
    assert as_yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert as_json["Content-Type"].startswith("application/json")
    from_yaml = yaml.safe_load(as_yaml.content)
    assert from_yaml == json.loads(as_json.content)
    assert from_yaml["openapi"].startswith("3.")


def test_a_stale_token_does_not_lock_the_docs(api):
    # The docs take no credentials at all: a bad Bearer token sent along out
    # of habit is not a 401.
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    assert api.get(SCHEMA).status_code == 200
    assert api.get(DOCS).status_code == 200


def test_the_schema_generates_with_no_warnings_and_validates(tmp_path):
    # The generator counts warnings per process; start from none.
    GENERATOR_STATS.reset()
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(tmp_path / "schema.yaml"),
        stdout=out,
        stderr=err,
    )

    assert "Warning" not in err.getvalue() and "Error" not in err.getvalue(), err.getvalue()
    assert yaml.safe_load((tmp_path / "schema.yaml").read_text())["paths"]


def test_every_protocol_call_in_place_is_documented(schema):
    documented = {
        (method, path) for path, operations in schema["paths"].items() for method in operations
    }
    for method, path in PROTOCOL_CALLS:
        if path.startswith(REQUIRED_PREFIXES):
            assert _routed(path), f"{method.upper()} {path} is not routed"
        if _routed(path):
            assert (method, path) in documented, f"{method.upper()} {path} is not documented"


def _body_schema(schema: dict, operation: dict) -> dict:
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_trip_calls_describe_bodies_and_errors(schema):
    paths = schema["paths"]
    create = paths["/api/trip/"]["post"]
    listing = paths["/api/trip/"]["get"]
    detail = paths["/api/trip/{trip_id}/"]["get"]
    accept = paths["/api/trip/{trip_id}/accept/"]["post"]
    decline = paths["/api/trip/{trip_id}/decline/"]["post"]
    move = paths["/api/trip/{trip_id}/status/"]["post"]
    cancel = paths["/api/trip/{trip_id}/cancel/"]["post"]

    # Request bodies: what a client may send, and nothing a rider may not set.
    create_body = _body_schema(schema, create)
    # Part 2's optional fields beside Part 1's body.
    assert set(create_body["properties"]) == set(TRIP_REQUEST) | {
        "product",
        "quote_id",
        "scheduled_for",
    }
    assert set(create_body["required"]) == {
        "pick_up_address",
        "pick_up_lat",
        "pick_up_lng",
        "drop_off_address",
    }
    assert set(_body_schema(schema, move)["properties"]) == {"status", "pin"}
    assert set(_body_schema(schema, cancel)["properties"]) == {"reason", "reason_code"}
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    assert {p["name"] for p in listing["parameters"]} >= {"status", "limit", "offset"}

    # Responses, errors included.
    assert set(create["responses"]) >= {"201", "400", "401", "403", "409", "429"}
    assert set(listing["responses"]) >= {"200", "400", "401"}
    assert set(detail["responses"]) >= {"200", "401", "404"}
    assert set(accept["responses"]) >= {"200", "401", "409"}
    assert set(decline["responses"]) >= {"204", "401", "409"}
    assert set(move["responses"]) >= {"200", "400", "401", "404", "409"}
    assert set(cancel["responses"]) >= {"200", "400", "401", "404", "409"}
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"detail", "code"}
    conflict = accept["responses"]["409"]["content"]["application/json"]["schema"]
    assert conflict == {"$ref": "#/components/schemas/Error"}

    # The trip object as PROTOCOL.md shows it.
    trip = schema["components"]["schemas"]["Trip"]
    # ... and the rider's PIN, in the rider's view only: documented, not required.
    assert set(trip["properties"]) == TRIP_KEYS | {"pin"}
    assert "pin" not in trip["required"]


def test_the_error_body_names_every_code_the_services_answer_with(schema):
    codes = {
        value.code
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError)
    }
    described = schema["components"]["schemas"]["Error"]["properties"]["code"]["description"]

    assert codes <= set(re.findall(r"[a-z_]+", described))


def test_the_docs_page_is_public_and_needs_no_internet(api):
    response = api.get(DOCS)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    # Swagger UI's script, preset, stylesheet and icon, all from this server...
    assert len(assets) >= 3
    assert all(url.startswith("/static/") for url in assets), assets
    # ...and really shipped with it (drf-spectacular-sidecar), not fetched.
    for url in assets:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a local static file"
    assert not re.search(r"https?://", html), "the page reaches out to another host"
    assert "cdn" not in html.lower()
    assert f'url: "{SCHEMA}"' in html
