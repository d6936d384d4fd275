"""Settings, read from the environment (PROTOCOL.md, "Configuration").

Anything that can be wrong in the environment is checked here, at import, so a
misconfigured process stops at start-up with a message instead of failing on
its first request.
"""

import math
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError

from taxi.infra import provider_keys

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TAXI_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_number(name: str, default: float, *, minimum: float = 0.0, integer: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def redis_url_with_db(url: str, db: int) -> str:
    """The same Redis server on another database number."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def redis_db(url: str) -> int:
    """The database number a Redis URL names (0 when it names none)."""
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def _secret_key(debug: bool) -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    if not debug:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. It is required when DEBUG is off; "
            "set it to a long random string kept out of the repository."
        )
    # Development only: a key generated once and kept under var/, so sessions
    # and tokens survive restarts of `make run`.
    key_file = VAR_DIR / "secret_key"
    key = key_file.read_text().strip() if key_file.exists() else ""
    if not key:
        # Written aside and moved into place, so web, worker and beat starting
        # together never read a half-written key.
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        draft = VAR_DIR / f".secret_key.{os.getpid()}"
        draft.touch(mode=0o600)
        draft.write_text(secrets.token_urlsafe(50))
        draft.replace(key_file)
        key = key_file.read_text().strip()
    return key


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = _secret_key(DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")


def env_origins(name: str) -> list[str]:
    origins = env_list(name, "")
    for origin in origins:
        parts = urlsplit(origin)
        canonical = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme not in ("http", "https") or not parts.netloc or origin != canonical:
            raise ImproperlyConfigured(
                f"{name} takes origins like https://app.example.com (scheme, host, "
                f"optional port; no path or trailing slash), got {origin!r}"
            )
    return origins


# Browsers: web apps on these origins may call the API (/api/ only) with a
# Bearer token and JSON bodies. Credentials (cookies) are never allowed across
# origins, so the session and its CSRF protection stay same-origin.
CORS_ALLOWED_ORIGINS = env_origins("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ("authorization", "content-type", "idempotency-key")
# A throttled app reads how long to wait.
CORS_EXPOSE_HEADERS = ("retry-after",)

# Debug pages mask credentials in URL-valued settings (DATABASE_URL, REDIS_URL...)
# as well as the settings Django hides by name (taxi.debug_pages).
DEFAULT_EXCEPTION_REPORTER_FILTER = "taxi.debug_pages.SafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "taxi.debug_pages.ExceptionReporter"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "taxi",
    "trips",
    "dispatch",
    "workers",
    "pages",
    "pricing",
    "notifications",
]

MIDDLEWARE = [
    # First, so that every answer on an API path carries the CORS headers,
    # errors included (a browser app can read a 413 or a 429 too).
    "corsheaders.middleware.CorsMiddleware",
    # JSON errors on API paths and the body size limit (taxi.http_errors).
    "taxi.http_errors.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "taxi.urls"
ASGI_APPLICATION = "taxi.asgi.application"
AUTH_USER_MODEL = "trips.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: one URL; SQLite under var/ when none is given.
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'taxi.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=int(env_number("CONN_MAX_AGE", 60, integer=True)),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat write to one file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no lock-upgrade
    # deadlocks), and the timeout makes writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# PostgreSQL: each process borrows connections from a pool of at most
# DB_POOL_MAX, each request or task gives its one back when it ends, and one
# that finds none free within DB_POOL_TIMEOUT_S is answered 503 `unavailable`
# (taxi/postgresql/base.py). Persistent connections (CONN_MAX_AGE) do not suit
# daphne, which runs each request on a thread of its own: every thread kept
# one, and ordinary load exhausted PostgreSQL's `max_connections`.
DB_POOL_MAX = int(env_number("DB_POOL_MAX", 20, minimum=1, integer=True))
DB_POOL_TIMEOUT_S = env_number("DB_POOL_TIMEOUT_S", 5, minimum=0.1)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    if DATABASES["default"]["CONN_MAX_AGE"] and "CONN_MAX_AGE" in os.environ:
        raise ImproperlyConfigured(
            "CONN_MAX_AGE applies to SQLite only; on PostgreSQL connections come "
            "from a pool, sized by DB_POOL_MAX. Unset CONN_MAX_AGE."
        )
    DATABASES["default"]["ENGINE"] = "taxi.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX,
        "timeout": DB_POOL_TIMEOUT_S,
    }

# Redis: one URL for the broker, the channel layer, the cache and the geo index.
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


# When Redis restarts, every idle pooled connection is dead, and without a
# retry the first command on each fails: a lost push, a refused handshake, a
# 500. Pools built from a URL (Django's cache, channels_redis, taxi.infra.redis) get
# no retry from redis-py; this gives each command one immediate retry on a
# fresh connection (tests/faults/test_redis_restart.py).
REDIS_RETRY_ON_ERROR = [RedisConnectionError]
# Every Redis client of the processes: a command or a connection attempt that
# hangs (Redis unreachable, packets dropped) fails in seconds instead of
# holding a socket handler, or the channel layer's lock, for minutes.
REDIS_CLIENT_OPTIONS = {
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
    "retry_on_error": REDIS_RETRY_ON_ERROR,
}


def redis_dependent_settings(redis_url: str) -> dict:
    """Everything derived from REDIS_URL, so a test configuration can move it whole."""
    return {
        "REDIS_URL": redis_url,
        "CACHES": {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": "taxi",
                "OPTIONS": {"retry_on_error": REDIS_RETRY_ON_ERROR},
            }
        },
        "CHANNEL_LAYERS": {
            "default": {
                # Pub/sub: a push is one PUBLISH, and each web process reads
                # every message for its sockets off one subscription. The
                # list-based core layer pops one message per Redis round trip
                # per socket, which capped location ingest at ~300 a second
                # per web process (BENCHMARKS.md). Pushes are fire-and-forget
                # either way: a socket that is gone misses them, and apps
                # re-read `GET /api/trip/<id>/` after a reconnect (PROTOCOL.md).
                # taxi.infra.channel_layer closes this process's sockets (1012) when
                # its subscription breaks, so none stays open and deaf.
                "BACKEND": "taxi.infra.channel_layer.PubSubChannelLayer",
                "CONFIG": {
                    "hosts": [
                        {"address": redis_url, **REDIS_CLIENT_OPTIONS},
                    ],
                    # Pub/sub channels ignore the database number; the prefix
                    # keeps deployments on one Redis server apart.
                    "prefix": f"taxi.{redis_db(redis_url)}.",
                },
            }
        },
        "CELERY_BROKER_URL": redis_url,
    }


globals().update(redis_dependent_settings(REDIS_URL))

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Movable so a test stack can collect into a directory of its own.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Largest accepted sign-up photo; larger uploads get a 400, not a stored file.
PHOTO_MAX_BYTES = int(env_number("PHOTO_MAX_BYTES", 5 * 1024 * 1024, integer=True))
# Largest photo in pixels, read from the image's header before it is decoded:
# a few KiB of PNG can decode to gigabytes (trips/photos.py).
PHOTO_MAX_PIXELS = int(env_number("PHOTO_MAX_PIXELS", 25_000_000, minimum=1, integer=True))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's, refusing the access tokens of a log-in that logged out.
        "trips.authentication.LoginJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bodies are JSON (PROTOCOL.md); sign-up also reads multipart, for the
    # photo. Form encodings elsewhere would read `""` as "not given" and
    # every number as a string.
    "DEFAULT_PARSER_CLASSES": ["taxi.infra.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "taxi.infra.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "taxi.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "log_in": os.environ.get("THROTTLE_LOG_IN", "10/min"),
        # Per username from one address: an address shared by many people
        # (a NAT) may get a larger "log_in" budget while one account's
        # guesses stay limited, and nobody elsewhere can spend it.
        "log_in_user": os.environ.get("THROTTLE_LOG_IN_USER", "10/min"),
        # The admin's log-in form (taxi/admin_log_in.py): per address, and per
        # username from one address.
        "admin_log_in": os.environ.get("THROTTLE_ADMIN_LOG_IN", "10/min"),
        "admin_log_in_user": os.environ.get("THROTTLE_ADMIN_LOG_IN_USER", "5/min"),
        "sign_up": os.environ.get("THROTTLE_SIGN_UP", "20/hour"),
        "trip_create": os.environ.get("THROTTLE_TRIP_CREATE", "30/min"),
        # The public map, per user: each query is a little of what a search
        # for one driver needs (dispatch/views.py, NEARBY_*).
        "nearby": os.environ.get("THROTTLE_NEARBY", "60/min"),
        # Quotes, per rider: each prices every product and searches for drivers.
        "quotes": os.environ.get("THROTTLE_QUOTES", "60/min"),
        # A shared trip's public view (no login), per client address.
        "shared": os.environ.get("THROTTLE_SHARED", "120/min"),
        # Device registrations, per user: an app registers at launch and when
        # its provider hands it a new token.
        "devices": os.environ.get("THROTTLE_DEVICES", "60/hour"),
    },
    # Who the client is, for the per-address throttles: with 0 (the default)
    # the address the connection came from; behind N trusted proxies, the
    # address the outermost one saw, N from the right in X-Forwarded-For.
    # Unset, DRF would key on the whole X-Forwarded-For header, which any
    # client writes: a new value per request would escape every throttle.
    "NUM_PROXIES": int(env_number("NUM_PROXIES", 0, integer=True)),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=env_number("JWT_ACCESS_LIFETIME_S", 15 * 60, minimum=1)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_number("JWT_REFRESH_LIFETIME_S", 7 * 24 * 3600, minimum=1)
    ),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "id",
    "SIGNING_KEY": SECRET_KEY,
    "UPDATE_LAST_LOGIN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "taxi API",
    "DESCRIPTION": (
        "Real-time ride-hailing dispatch. REST for accounts and trips; the "
        "/taxi/ WebSocket pushes offers and trip updates (see docs/asyncapi.yaml)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs page are public, and a stale token sent along
    # does not turn them into a 401.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Assets from drf-spectacular-sidecar, served as static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/",
    # One name per choice set that several fields share: a trip's status (the
    # trip, its history's `from`/`to`, a shared trip), and rider/driver (a
    # user's group, a rating's side).
    "ENUM_NAME_OVERRIDES": {
        "TripStatusEnum": "trips.models.TripStatus",
        "GroupEnum": "trips.models.User.Group",
    },
}

# Dispatch (PROTOCOL.md, "Configuration").
DISPATCH_OFFER_TIMEOUT_S = env_number("DISPATCH_OFFER_TIMEOUT_S", 15, minimum=0.1)


def env_radii(name: str, default: str) -> list[float]:
    message = f"{name} must be positive kilometres, like 2,5,10; got {os.environ.get(name)!r}"
    try:
        radii = sorted(float(r) for r in env_list(name, default))
    except ValueError:
        raise ImproperlyConfigured(message) from None
    if not radii or any(not math.isfinite(r) or r <= 0 for r in radii):
        raise ImproperlyConfigured(message)
    return radii


DISPATCH_RADII_KM = env_radii("DISPATCH_RADII_KM", "2,5,10")
DISPATCH_MAX_OFFERS = int(env_number("DISPATCH_MAX_OFFERS", 5, minimum=1, integer=True))
# The matching policy the dispatch loop asks: a module of dispatch/policies/.
DISPATCH_POLICY = os.environ.get("DISPATCH_POLICY", "nearest").strip() or "nearest"
if not DISPATCH_POLICY.isidentifier():
    raise ImproperlyConfigured(f"DISPATCH_POLICY must name a policy; got {DISPATCH_POLICY!r}")
# `batch` gathers the requests of this long and assigns them together (the
# matcher process, `manage.py run_matcher`).
DISPATCH_BATCH_WINDOW_MS = env_number("DISPATCH_BATCH_WINDOW_MS", 2000, minimum=10)
# `batch`'s knobs (dispatch/policies/batch.py): each request weighs its
# DISPATCH_BATCH_CANDIDATES nearest free drivers; a pickup longer than
# DISPATCH_BATCH_MAX_PICKUP_KM is not made, the request waits for the next
# window instead. Once it has waited DISPATCH_BATCH_FAIR_WINDOWS windows in a
# row it goes before the others to a driver within its first ring
# (DISPATCH_RADII_KM), and may take one beyond the ceiling that nobody took.
DISPATCH_BATCH_CANDIDATES = int(env_number("DISPATCH_BATCH_CANDIDATES", 8, minimum=1, integer=True))
DISPATCH_BATCH_MAX_PICKUP_KM = env_number("DISPATCH_BATCH_MAX_PICKUP_KM", 5.0, minimum=0.1)
DISPATCH_BATCH_FAIR_WINDOWS = int(
    env_number("DISPATCH_BATCH_FAIR_WINDOWS", 2, minimum=1, integer=True)
)
DRIVER_PRESENCE_TTL_S = env_number("DRIVER_PRESENCE_TTL_S", 30, minimum=1)
TRIP_STALE_AFTER_S = env_number("TRIP_STALE_AFTER_S", 600, minimum=1)
# A position implying a faster move than this since the driver's last accepted
# one is kept out of matching (dispatch/presence.py); 0 turns the check off
# (a simulation whose clock runs faster than the wall's).
LOCATION_MAX_SPEED_KMH = env_number("LOCATION_MAX_SPEED_KMH", 250)
# /api/driver/nearby/: a smaller radius is read as this one.
NEARBY_MIN_RADIUS_KM = env_number("NEARBY_MIN_RADIUS_KM", 0.5)
# How often the sweeper runs, and how much one run may touch.
DISPATCH_SWEEP_EVERY_S = env_number("DISPATCH_SWEEP_EVERY_S", 5, minimum=1)
DISPATCH_SWEEP_BATCH = int(env_number("DISPATCH_SWEEP_BATCH", 200, minimum=1, integer=True))

# Products, prices and times of arrival (PROTOCOL.md Part 2, "Products,
# vehicles and prices" and "Times of arrival").
DEFAULT_PRODUCT = os.environ.get("DEFAULT_PRODUCT", "standard").strip() or "standard"
QUOTE_TTL_S = env_number("QUOTE_TTL_S", 300, minimum=1)
# Surge: a multiplier per H3 cell of this resolution, within [1, SURGE_MAX],
# refreshed by beat every SURGE_REFRESH_S from the supply (available drivers)
# and the demand (requests over the last SURGE_DEMAND_WINDOW_S) around it,
# moving at most SURGE_MAX_STEP per refresh.
SURGE_MAX = env_number("SURGE_MAX", 3.0, minimum=1.0)
SURGE_H3_RES = int(env_number("SURGE_H3_RES", 8, integer=True))
if not 0 <= SURGE_H3_RES <= 15:
    raise ImproperlyConfigured(f"SURGE_H3_RES must be an H3 resolution 0-15; got {SURGE_H3_RES}")
# PROTOCOL.md: refreshed at least every 60 s.
SURGE_REFRESH_S = min(60.0, env_number("SURGE_REFRESH_S", 30, minimum=1))
SURGE_DEMAND_WINDOW_S = env_number("SURGE_DEMAND_WINDOW_S", 300, minimum=60)
SURGE_MAX_STEP = env_number("SURGE_MAX_STEP", 0.5, minimum=0.1)
# ETA: straight line x detour factor over an average speed, or a routing
# engine (OSRM's HTTP API at OSRM_URL) that falls back to it when it fails or
# takes longer than ETA_TIMEOUT_MS (at most 300).
ETA_DETOUR_FACTOR = env_number("ETA_DETOUR_FACTOR", 1.3, minimum=1.0)
ETA_SPEED_KMH = env_number("ETA_SPEED_KMH", 25, minimum=1)
OSRM_URL = os.environ.get("OSRM_URL", "").strip().rstrip("/")
ETA_PROVIDER = os.environ.get("ETA_PROVIDER", "").strip() or (
    "osrm" if OSRM_URL else "straight_line"
)
if ETA_PROVIDER not in ("straight_line", "osrm"):
    raise ImproperlyConfigured(f"ETA_PROVIDER must be straight_line or osrm; got {ETA_PROVIDER!r}")
if ETA_PROVIDER == "osrm" and not OSRM_URL:
    raise ImproperlyConfigured("ETA_PROVIDER=osrm needs OSRM_URL")
ETA_TIMEOUT_MS = min(300.0, env_number("ETA_TIMEOUT_MS", 300, minimum=10))

# The whole ride (PROTOCOL.md Part 2, "Statuses, extended" and "After the ride").
# A request with nobody free in range waits this long for a driver.
DISPATCH_SEARCH_TIMEOUT_S = env_number("DISPATCH_SEARCH_TIMEOUT_S", 120)
# Scheduled rides: booked SCHEDULE_MIN_AHEAD_S to SCHEDULE_MAX_AHEAD_S ahead,
# dispatched SCHEDULE_DISPATCH_LEAD_S before their time, at most
# SCHEDULE_MAX_PER_RIDER waiting per rider.
SCHEDULE_MIN_AHEAD_S = env_number("SCHEDULE_MIN_AHEAD_S", 900)
SCHEDULE_MAX_AHEAD_S = env_number("SCHEDULE_MAX_AHEAD_S", 7 * 24 * 3600, minimum=1)
SCHEDULE_DISPATCH_LEAD_S = env_number("SCHEDULE_DISPATCH_LEAD_S", 600)
SCHEDULE_MAX_PER_RIDER = int(env_number("SCHEDULE_MAX_PER_RIDER", 5, minimum=1, integer=True))
# How often beat looks for scheduled trips due and for searches that ran out.
SCHEDULE_SWEEP_EVERY_S = env_number("SCHEDULE_SWEEP_EVERY_S", 10, minimum=1)
# A driver may cancel for a no-show this long after arriving.
NO_SHOW_WAIT_S = env_number("NO_SHOW_WAIT_S", 300)
# A rider's cancel is free until this long after a driver accepted.
RIDER_FREE_CANCEL_S = env_number("RIDER_FREE_CANCEL_S", 120)
# With 1, the driver must give the rider's PIN to start the ride; five wrong
# tries lock it (the trip can then only be canceled).
RIDE_PIN_REQUIRED = env_bool("RIDE_PIN_REQUIRED", False)
RIDE_PIN_MAX_ATTEMPTS = 5
# Ratings are open this long after the trip ends; share links live this long.
RATING_WINDOW_S = env_number("RATING_WINDOW_S", 7 * 24 * 3600, minimum=1)
SHARE_LINK_AFTER_END_S = env_number("SHARE_LINK_AFTER_END_S", 1800, minimum=1)

# Web pages (pages/): maps draw on a plain background unless a tile URL is
# set, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png (the pages then load
# tiles from that host, and from no other).
MAP_TILE_URL = os.environ.get("MAP_TILE_URL", "")
MAP_TILE_ATTRIBUTION = os.environ.get("MAP_TILE_ATTRIBUTION", "")


def env_point(name: str, default: str) -> tuple[float, float]:
    raw = os.environ.get(name) or default
    try:
        lat, lng = (float(part) for part in raw.split(","))
    except ValueError:
        message = f"{name} must be lat,lng like 38.9,-77.04; got {raw!r}"
        raise ImproperlyConfigured(message) from None
    if not (-85 <= lat <= 85 and -180 <= lng <= 180):
        raise ImproperlyConfigured(f"{name} must be lat,lng within the map; got {raw!r}")
    return lat, lng


# Where the maps open before they know where the user is.
MAP_CENTER = env_point("MAP_CENTER", "38.9,-77.04")
# The staff console's stream: how often each web process reads the city and
# sends what changed (PROTOCOL.md Part 2, "Web pages").
OPS_TICK_S = env_number("OPS_TICK_S", 1.0, minimum=0.2)

# Devices and push notifications (PROTOCOL.md Part 2). Each provider is off
# until configured; the base URLs move only to point tests at local servers.
# FCM (HTTP v1): a service account key (JSON, inline or a file's path) of
# the Firebase project; its project id unless FCM_PROJECT_ID says otherwise.
FCM_SERVICE_ACCOUNT_KEY = provider_keys.fcm_service_account("FCM_CREDENTIALS")
FCM_PROJECT_ID = os.environ.get("FCM_PROJECT_ID", "").strip() or (
    (FCM_SERVICE_ACCOUNT_KEY or {}).get("project_id", "")
)
if FCM_SERVICE_ACCOUNT_KEY and not FCM_PROJECT_ID:
    raise ImproperlyConfigured("FCM_CREDENTIALS names no project_id; set FCM_PROJECT_ID")
FCM_URL = os.environ.get("FCM_URL", "").strip().rstrip("/") or "https://fcm.googleapis.com"
FCM_TOKEN_URL = os.environ.get("FCM_TOKEN_URL", "").strip() or (
    (FCM_SERVICE_ACCOUNT_KEY or {}).get("token_uri") or "https://oauth2.googleapis.com/token"
)
# APNs (HTTP/2, token auth): the signing key (.p8), its key id, the team id
# and the app's bundle id (the topic); all four or none. APNS_URL is the
# production gateway; https://api.sandbox.push.apple.com for development builds.
APNS_AUTH_KEY = provider_keys.apns_auth_key("APNS_KEY")
APNS_KEY_ID = os.environ.get("APNS_KEY_ID", "").strip()
APNS_TEAM_ID = os.environ.get("APNS_TEAM_ID", "").strip()
APNS_TOPIC = os.environ.get("APNS_TOPIC", "").strip()
_apns = {"APNS_KEY": APNS_AUTH_KEY, "APNS_KEY_ID": APNS_KEY_ID}
_apns |= {"APNS_TEAM_ID": APNS_TEAM_ID, "APNS_TOPIC": APNS_TOPIC}
if any(_apns.values()) and not all(_apns.values()):
    missing = ", ".join(name for name, value in _apns.items() if not value)
    raise ImproperlyConfigured(
        f"APNs needs APNS_KEY, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC; missing {missing}"
    )
APNS_URL = os.environ.get("APNS_URL", "").strip().rstrip("/") or "https://api.push.apple.com"
# Web Push (VAPID): the application server's key pair's private half (PEM or
# base64url) and a contact (mailto: or https:) the push services may use.
WEBPUSH_VAPID_PRIVATE_KEY = provider_keys.vapid_private_key("WEBPUSH_VAPID_PRIVATE_KEY")
WEBPUSH_VAPID_SUBJECT = os.environ.get("WEBPUSH_VAPID_SUBJECT", "").strip()
if WEBPUSH_VAPID_PRIVATE_KEY and not WEBPUSH_VAPID_SUBJECT.startswith(("mailto:", "https://")):
    raise ImproperlyConfigured("WEBPUSH_VAPID_SUBJECT must be a mailto: or https: contact")
# Browsers' push services a subscription's endpoint may name: hosts (https,
# subdomains included), or whole origins (scheme://host:port). The worker
# POSTs to the endpoint, so it is never a URL a client may choose freely.
WEBPUSH_ALLOWED_HOSTS = env_list(
    "WEBPUSH_ALLOWED_HOSTS",
    "fcm.googleapis.com,push.services.mozilla.com,notify.windows.com,push.apple.com",
)
# One provider call's time limit; a user's devices beyond the most recent
# DEVICES_MAX_PER_USER are forgotten.
PUSH_TIMEOUT_S = env_number("PUSH_TIMEOUT_S", 5, minimum=0.1)
DEVICES_MAX_PER_USER = int(env_number("DEVICES_MAX_PER_USER", 10, minimum=1, integer=True))

# WebSocket limits (PROTOCOL.md, "WebSocket").
WS_MAX_FRAME_BYTES = 64 * 1024
WS_RATE_PER_S = env_number("WS_RATE_PER_S", 50, minimum=1)
WS_RATE_BURST = env_number("WS_RATE_BURST", 100, minimum=1)
# Open sockets per user, across every web process; more are refused at the
# handshake (PROTOCOL.md, "Configuration, extended").
WS_MAX_SOCKETS_PER_USER = int(env_number("WS_MAX_SOCKETS_PER_USER", 5, minimum=1, integer=True))

# Celery: JSON only; the idempotent tasks acknowledge late so a killed worker's
# task is redelivered; the visibility timeout sits far above any countdown.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_SOFT_TIME_LIMIT = 45
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat looks at its schedule at least every second (one small query), so a
# SIGTERM, which only asks the loop to stop (taxi/celery.py), ends it in about
# a second instead of after the scheduler's default 5 s sleep.
CELERY_BEAT_MAX_LOOP_INTERVAL = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Production hardening, on whenever DEBUG is off; each can be relaxed by env.
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = int(env_number("SECURE_HSTS_SECONDS", 31536000, integer=True))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    # X-Forwarded-Proto is believed only from a trusted proxy, as X-Forwarded-For
    # is (NUM_PROXIES): without one, any client could write it.
    if env_bool("SECURE_PROXY_SSL_HEADER", REST_FRAMEWORK["NUM_PROXIES"] > 0):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Preloading is an opt-in the operator makes with the browsers' list.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "taxi.infra.logging.RedactSecretsFilter"}},
    "formatters": {"structured": {"()": "taxi.infra.logging.StructuredFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "structured",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own console handler would print unredacted, unstructured
        # copies of its lines; everything goes through the root handler.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        # httpx logs every request's URL at INFO: a routing engine's carry
        # riders' and drivers' positions, which do not belong in the logs.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # The push providers' URLs carry device tokens (APNs) and
        # subscription ids (Web Push): their clients' request lines stay out.
        "urllib3": {"level": "WARNING"},
        "hpack": {"level": "WARNING"},
        "h2": {"level": "WARNING"},
        "google": {"level": "WARNING"},
    },
}
