"""Sign-up, log-in, log-out and token refresh (PROTOCOL.md, "Authentication")."""

import io
import random

import jwt
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from tests.conftest import PASSWORD
from trips.models import User

pytestmark = pytest.mark.django_db

# PROTOCOL.md Part 2 adds `rating` ({average, count}, null before any).
USER_FIELDS = {"id", "username", "first_name", "last_name", "group", "photo", "rating"}
CLAIMS = ("username", "first_name", "last_name", "group")

# The exact body of the issue's `curl` call.
CURL_BODY = (
    '{"username": "michael@something.com", "password1": "pAssw0rd!x9", '
    '"password2": "pAssw0rd!x9", "first_name": "michael", "last_name": "herman"}'
)


def sign_up_body(**overrides) -> dict:
    body = {
        "username": "michael@something.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "first_name": "michael",
        "last_name": "herman",
    }
    body.update(overrides)
    return body


def png(size: tuple[int, int] = (4, 4), *, noisy: bool = False) -> bytes:
    image = Image.new("RGB", size, "red")
    if noisy:  # random pixels do not compress: the file is about 3 bytes a pixel
        image.putdata([tuple(random.randbytes(3)) for _ in range(size[0] * size[1])])
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def decode(token: str) -> dict:
    """Verify with the site's key, independently of simplejwt."""
    return jwt.decode(token, settings.SECRET_KEY, algorithms=["HS256"])


def log_in(client: APIClient, user: User, password: str = PASSWORD):
    return client.post(
        "/api/log_in/", {"username": user.username, "password": password}, format="json"
    )


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


# --- sign-up ---------------------------------------------------------------


def test_sign_up_creates_a_rider_and_answers_the_user_object(api):
    response = api.post("/api/sign_up/", sign_up_body(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == USER_FIELDS
    user = User.objects.get()
    assert body == {
        "id": user.pk,
        "username": "michael@something.com",
        "first_name": "michael",
        "last_name": "herman",
        "group": "rider",
        "photo": None,
        "rating": None,
    }
    assert user.password != PASSWORD
    assert user.check_password(PASSWORD)


def test_sign_up_accepts_the_exact_curl_body_of_the_issue(api):
    response = api.post("/api/sign_up/", CURL_BODY, content_type="application/json")

    assert response.status_code == 201
    assert set(response.json()) == USER_FIELDS
    assert response.json()["group"] == "rider"


def test_sign_up_as_driver(api):
    response = api.post("/api/sign_up/", sign_up_body(group="driver"), format="json")

    assert response.status_code == 201
    assert response.json()["group"] == "driver"
    assert User.objects.get().group == "driver"


def test_multipart_sign_up_stores_the_photo_and_answers_its_url(api, media_root):
    data = png()
    photo = SimpleUploadedFile("me.png", data, content_type="image/png")

    response = api.post("/api/sign_up/", {**sign_up_body(), "photo": photo}, format="multipart")

    assert response.status_code == 201
    url = response.json()["photo"]
    assert url.startswith("http://testserver/media/photos/")
    # Stored re-encoded (a JPEG of the same pixels), never as uploaded.
    assert url.endswith(".jpg")
    user = User.objects.get()
    with Image.open(media_root / user.photo.name) as stored:
        assert (stored.format, stored.size) == ("JPEG", (4, 4))
        assert stored.getpixel((0, 0)) == pytest.approx((255, 0, 0), abs=8)


def test_a_stored_photo_keeps_no_metadata(api, media_root):
    # Given a JPEG carrying a camera make and a GPS position in its EXIF,
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (38.0, 53.0, 51.0)}  # GPSInfo
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), "blue").save(buffer, "JPEG", exif=exif, comment=b"secret note")
    assert b"SpyCam" in buffer.getvalue()
    upload = SimpleUploadedFile("me.jpg", buffer.getvalue(), content_type="image/jpeg")

    # When it is the sign-up photo,
    response = api.post("/api/sign_up/", {**sign_up_body(), "photo": upload}, format="multipart")

    # Then the stored file is the picture alone.
    assert response.status_code == 201
    stored = (media_root / User.objects.get().photo.name).read_bytes()
    assert b"SpyCam" not in stored and b"secret note" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (8, 6)
        assert not image.getexif()


def test_sign_up_refuses_a_photo_of_too_many_pixels_from_its_header(api, media_root):
    # A 12,000 x 12,000 PNG (144 megapixels) of a few KiB: decoded, hundreds of MB.
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 64 * 1024
    upload = SimpleUploadedFile("bomb.png", buffer.getvalue(), content_type="image/png")

    response = api.post("/api/sign_up/", {**sign_up_body(), "photo": upload}, format="multipart")

    assert response.status_code == 400
    assert list(response.json()) == ["photo"]
    assert "megapixels" in response.json()["photo"][0]
    assert not User.objects.exists()
    assert not any(media_root.iterdir())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"password2": "pAssw0rd!x8"}, "password2", id="passwords-differ"),
        pytest.param({"password1": "12345678", "password2": "12345678"}, "password1", id="weak"),
        pytest.param({"password1": "short1!", "password2": "short1!"}, "password1", id="short"),
        pytest.param(
            {"password1": "michael@something", "password2": "michael@something"},
            "password1",
            id="like-username",
        ),
        pytest.param({"group": "admin"}, "group", id="unknown-group"),
        pytest.param({"group": None}, "group", id="null-group"),
        pytest.param({"username": "not allowed!"}, "username", id="bad-username"),
        pytest.param({"username": ""}, "username", id="blank-username"),
        pytest.param({"first_name": "x" * 151}, "first_name", id="long-first-name"),
        pytest.param({"photo": "http://example.com/me.png"}, "photo", id="photo-not-a-file"),
    ],
)
def test_sign_up_refusals_name_the_field_and_write_nothing(api, overrides, field):
    response = api.post("/api/sign_up/", sign_up_body(**overrides), format="json")

    assert response.status_code == 400
    body = response.json()
    assert field in body
    assert isinstance(body[field], list)
    assert body[field]
    assert all(isinstance(message, str) and message for message in body[field])
    assert not User.objects.exists()


def test_sign_up_missing_fields_are_each_named(api):
    response = api.post("/api/sign_up/", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {
        "username",
        "password1",
        "password2",
        "first_name",
        "last_name",
    }
    assert not User.objects.exists()


@pytest.mark.parametrize("taken", ["michael@something.com", "Michael@Something.COM"])
def test_sign_up_refuses_a_taken_username_in_any_case(api, make_user, taken):
    make_user(username="michael@something.com")

    response = api.post("/api/sign_up/", sign_up_body(username=taken), format="json")

    assert response.status_code == 400
    assert response.json() == {"username": ["A user with that username already exists."]}
    assert User.objects.count() == 1


def test_sign_up_refuses_a_file_that_is_not_an_image(api, media_root):
    upload = SimpleUploadedFile("me.png", b"not an image at all", content_type="image/png")

    response = api.post("/api/sign_up/", {**sign_up_body(), "photo": upload}, format="multipart")

    assert response.status_code == 400
    assert list(response.json()) == ["photo"]
    assert not User.objects.exists()
    assert not any(media_root.iterdir())


def test_sign_up_refuses_an_oversized_photo(api, media_root, settings):
    settings.PHOTO_MAX_BYTES = 1024
    data = png((64, 64), noisy=True)
    assert len(data) > 1024
    upload = SimpleUploadedFile("big.png", data, content_type="image/png")

    response = api.post("/api/sign_up/", {**sign_up_body(), "photo": upload}, format="multipart")

    assert response.status_code == 400
    assert list(response.json()) == ["photo"]
    assert "at most" in response.json()["photo"][0]
    assert not User.objects.exists()
    assert not any(media_root.iterdir())


def test_sign_up_refuses_a_malformed_json_body(api):
    response = api.post("/api/sign_up/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not User.objects.exists()


# --- log-in ------------------------------------------------------------------


def test_log_in_answers_the_user_and_tokens_carrying_the_claims(api, rider):
    response = log_in(api, rider)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == USER_FIELDS | {"access", "refresh"}
    assert body["id"] == rider.pk
    assert body["username"] == rider.username
    claims = decode(body["access"])
    assert claims["token_type"] == "access"
    assert claims["id"] == rider.pk
    for claim in CLAIMS:
        assert claims[claim] == getattr(rider, claim)
    assert decode(body["refresh"])["token_type"] == "refresh"


def test_a_refreshed_access_token_carries_the_same_claims(api, driver):
    tokens = log_in(api, driver).json()

    response = api.post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == {"access"}
    claims = decode(response.json()["access"])
    assert claims["token_type"] == "access"
    assert claims["id"] == driver.pk
    for claim in CLAIMS:
        assert claims[claim] == getattr(driver, claim)
    assert claims["group"] == "driver"


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"password": "wrong-password"}, id="wrong-password"),
        pytest.param({"username": "nobody@example.com"}, id="unknown-user"),
    ],
)
def test_log_in_with_bad_credentials_is_401_and_starts_no_session(api, rider, credentials):
    body = {"username": rider.username, "password": PASSWORD, **credentials}

    response = api.post("/api/log_in/", body, format="json")

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == "not_authenticated"
    assert "sessionid" not in response.cookies


def test_log_in_of_a_deactivated_user_is_401(api, make_user):
    user = make_user(is_active=False)

    response = log_in(api, user)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_log_in_without_fields_names_them(api):
    response = api.post("/api/log_in/", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}


def test_log_in_starts_a_session_that_authenticates_rest_calls(rider):
    client = APIClient()

    response = log_in(client, rider)

    assert response.status_code == 200
    assert response.cookies["sessionid"].value
    # No Bearer header: the cookie alone authenticates this call.
    response = client.post("/api/log_out/")
    assert response.status_code == 204


def test_a_session_get_needs_no_csrf_token(rider):
    client = APIClient(enforce_csrf_checks=True)
    log_in(client, rider)

    response = client.get("/api/trip/")

    assert response.status_code == 200
    assert response.json() == []
    assert APIClient().get("/api/trip/").status_code == 401  # the cookie made the difference


def test_session_unsafe_call_needs_the_csrf_token(rider):
    client = APIClient(enforce_csrf_checks=True)
    log_in(client, rider)

    refused = client.post("/api/log_out/")

    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    assert "CSRF" in refused.json()["detail"]

    # The refused call changed nothing: the session is alive, and with the
    # token the same call goes through.
    accepted = client.post("/api/log_out/", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert accepted.status_code == 204


def test_bearer_calls_need_no_csrf_token(rider):
    client = APIClient(enforce_csrf_checks=True)
    access = log_in(APIClient(), rider).json()["access"]

    response = client.post("/api/log_out/", HTTP_AUTHORIZATION=f"Bearer {access}")

    assert response.status_code == 204


# --- log-out -------------------------------------------------------------------


def test_log_out_ends_the_session(rider):
    client = APIClient()
    log_in(client, rider)

    response = client.post("/api/log_out/")

    assert response.status_code == 204
    assert "sessionid" not in client.cookies or not client.cookies["sessionid"].value
    again = client.get("/api/trip/")
    assert again.status_code == 401
    assert again.json()["code"] == "not_authenticated"
    assert client.post("/api/log_out/").status_code == 401


def test_log_out_revokes_the_given_refresh_token(rider):
    client = APIClient()
    tokens = log_in(client, rider).json()

    response = client.post("/api/log_out/", {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 204
    assert BlacklistedToken.objects.filter(token__user=rider).count() == 1
    refresh = APIClient().post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refresh.status_code == 401
    assert refresh.json()["code"] == "not_authenticated"


def test_log_out_leaves_other_refresh_tokens_of_the_user_alone(rider):
    kept = log_in(APIClient(), rider).json()["refresh"]
    client = APIClient()
    revoked = log_in(client, rider).json()["refresh"]

    client.post("/api/log_out/", {"refresh": revoked}, format="json")

    refresh = APIClient().post("/api/token/refresh/", {"refresh": kept}, format="json")
    assert refresh.status_code == 200


def test_log_out_when_not_logged_in_is_401(api):
    response = api.post("/api/log_out/")

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("refresh", ["garbage", "", "eyJ.eyJ.x", 12345])
def test_log_out_with_a_malformed_refresh_is_400_and_keeps_the_session(rider, refresh):
    client = APIClient()
    log_in(client, rider)

    response = client.post("/api/log_out/", {"refresh": refresh}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["refresh"]
    assert client.post("/api/log_out/").status_code == 204  # the session was still alive


def test_log_out_with_an_access_token_as_refresh_is_400(rider):
    client = APIClient()
    tokens = log_in(client, rider).json()

    response = client.post("/api/log_out/", {"refresh": tokens["access"]}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["refresh"]


def test_log_out_refuses_someone_elses_refresh_and_does_not_revoke_it(rider, driver):
    theirs = log_in(APIClient(), driver).json()["refresh"]
    client = APIClient()
    log_in(client, rider)

    response = client.post("/api/log_out/", {"refresh": theirs}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["refresh"]
    assert not BlacklistedToken.objects.exists()
    refresh = APIClient().post("/api/token/refresh/", {"refresh": theirs}, format="json")
    assert refresh.status_code == 200
    assert client.post("/api/log_out/").status_code == 204  # the session was still alive


def test_log_out_with_bearer_revokes_the_refresh(rider):
    tokens = log_in(APIClient(), rider).json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")

    response = client.post("/api/log_out/", {"refresh": tokens["refresh"]}, format="json")

    assert response.status_code == 204
    refresh = APIClient().post("/api/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refresh.status_code == 401


# --- token refresh -------------------------------------------------------------


@pytest.mark.parametrize("refresh", ["garbage", "eyJ.eyJ.x", "a" * 4096])
def test_refresh_with_garbage_is_401(api, refresh):
    response = api.post("/api/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}
    assert response.json()["code"] == "not_authenticated"


def test_refresh_with_an_access_token_is_401(api, rider):
    access = log_in(APIClient(), rider).json()["access"]

    response = api.post("/api/token/refresh/", {"refresh": access}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_refresh_without_a_token_is_400(api):
    response = api.post("/api/token/refresh/", {}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["refresh"]


def test_refresh_for_a_deactivated_user_is_401(api, rider):
    refresh = log_in(APIClient(), rider).json()["refresh"]
    User.objects.filter(pk=rider.pk).update(is_active=False)

    response = api.post("/api/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_refresh_for_a_deleted_user_is_401(api, make_user):
    user = make_user()
    refresh = log_in(APIClient(), user).json()["refresh"]
    user.delete()

    response = api.post("/api/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
