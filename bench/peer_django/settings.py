"""Django settings of the peer, from PEER_* variables (set by bench/versus_peer.py).

PEER_DB: ``sqlite`` (PEER_SQLITE_PATH) or ``postgres`` (PEER_PG_NAME, PEER_PG_HOST,
PEER_PG_PORT, PEER_PG_USER). PEER_SECRET_KEY signs the tokens.
"""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = os.environ["PEER_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "peer_django.urls"
WSGI_APPLICATION = "peer_django.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PEER_ENVIRONMENT = "bench"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "peer_django",
]
# A JSON API with bearer tokens: no sessions, cookies, CSRF or templates.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
PASSWORD_HASHERS = ["peer_django.hashers.BenchArgon2PasswordHasher"]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

if os.environ.get("PEER_DB", "sqlite") == "postgres":
    DATABASES: dict[str, dict[str, Any]] = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["PEER_PG_NAME"],
            "HOST": os.environ.get("PEER_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("PEER_PG_PORT", "5432"),
            "USER": os.environ.get("PEER_PG_USER", "postgres"),
            "CONN_MAX_AGE": None,  # one connection per worker (thread), kept
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["PEER_SQLITE_PATH"],
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # As aero-auth's store: WAL, writers wait for the lock (10 s),
                # a write transaction takes the lock when it begins.
                "timeout": 10,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
