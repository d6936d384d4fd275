"""Test settings: the real stack, on its own Redis database and a fast clock.

The Redis database number moves so a running development server's data is
never touched by the suite.
"""

import os
import secrets
import sys

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from taxi.settings import *  # noqa: E402,F403
from taxi.settings import REDIS_URL, redis_dependent_settings, redis_url_with_db  # noqa: E402

TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "9"))
globals().update(redis_dependent_settings(redis_url_with_db(REDIS_URL, TEST_REDIS_DB)))

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405

# Async tests reach the database from asgiref's worker thread; a persistent
# connection there outlives the suite and blocks dropping the PostgreSQL test
# database. Closing after each call (what database_sync_to_async does at 0) frees it.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# The suite's own process takes no pool: the race tests hold 50 connections at
# once, more than a pool of DB_POOL_MAX lends. The processes the tests start
# (tests/web.py's web loads these settings too, outside pytest) keep the pool,
# as production does.
if "pytest" in sys.modules:
    DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405

# Suites run side by side (several checkouts, or CI beside a developer) each
# set TEST_RUN_ID, and get their own test database.
TEST_RUN_ID = os.environ.get("TEST_RUN_ID", "")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not SQLite's shared in-memory database: threads in the race
    # tests then get SQLite's real locking (WAL, busy timeout) as processes do.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test{TEST_RUN_ID}.sqlite3")}  # noqa: F405
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{TEST_RUN_ID}"}  # noqa: F405

STATIC_ROOT = VAR_DIR / "test-static"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
