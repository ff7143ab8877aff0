"""The one composition root: settings in, a wired application out. Nothing at import time."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import psycopg

from application.clock import Clock
from application.federation import FederatedLogins
from application.passwords import Argon2Hasher, Argon2Parameters
from application.relying_party import RelyingParty
from application.secretbox import SecretBox
from application.service import AeroAuth, SecurityPolicy
from domain.throttle import Throttle
from interfaces.keys import KeyConfigurationError, decode_key, read_or_create
from interfaces.settings import Settings
from projections.lease import CONNECTION_OPTIONS
from projections.runtime import LiveReadModels
from projections.store import advisory_key


@dataclass(frozen=True)
class Store:
    """Where events live, parsed from AERO_DATABASE_URL."""

    kind: str  # "sqlite" or "postgres"
    sqlite_path: Path | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""

    @classmethod
    def from_url(cls, url: str) -> Store:
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            # SQLAlchemy's form: three slashes relative, four absolute.
            if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
                raise ValueError("a SQLite URL looks like sqlite:///var/aero.db")
            return cls(kind="sqlite", sqlite_path=Path(url[len("sqlite:///") :]))
        if parsed.scheme in ("postgresql", "postgres"):
            if not parsed.hostname or not parsed.path.strip("/"):
                raise ValueError("a PostgreSQL URL looks like postgresql://user@host:5432/dbname")
            return cls(
                kind="postgres",
                host=parsed.hostname,
                port=parsed.port or 5432,
                user=unquote(parsed.username or "postgres"),
                password=unquote(parsed.password or ""),
                dbname=parsed.path.strip("/"),
            )
        raise ValueError(f"AERO_DATABASE_URL must be sqlite:/// or postgresql://, not {url!r}")

    def eventsourcing_env(self, pool_size: int = 5) -> dict[str, str]:
        """Every key the library reads, explicitly: it merges os.environ underneath."""
        # Recently used aggregates stay in memory and are brought up to date with
        # one query for their newer events (fast-forward), instead of a snapshot
        # and the events after it; commands get deep copies, so a failed command
        # leaves no trace in the cache. Bounded: 1,000 credentials are a few MB.
        cache = {
            "AGGREGATE_CACHE_MAXSIZE": "1000",
            "AGGREGATE_CACHE_FASTFORWARD": "y",
            "AGGREGATE_CACHE_FASTFORWARD_SKIPPING": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
        }
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            return {
                **cache,
                "PERSISTENCE_MODULE": "application.sqlite_writes:SerialisedWritesFactory",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        return {
            **cache,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size * 2),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_LOCK_TIMEOUT": "5",
        }


def secret_box(settings: Settings) -> SecretBox:
    if settings.secret_key is not None:
        key = decode_key(settings.secret_key.get_secret_value(), "AERO_SECRET_KEY")
    elif settings.secret_key_file is not None:
        try:
            text = settings.secret_key_file.read_text()
        except OSError as e:
            raise KeyConfigurationError(f"cannot read AERO_SECRET_KEY_FILE: {e}") from e
        key = decode_key(text, "AERO_SECRET_KEY_FILE")
    else:
        fresh = base64.b64encode(SecretBox.generate_key())
        path = settings.data_dir / "secret.key"
        key = decode_key(read_or_create(path, fresh, "the TOTP secret key").decode(), str(path))
    return SecretBox({"k1": key}, "k1")


def operator_token(settings: Settings) -> str:
    if settings.operator_token is not None:
        return settings.operator_token.get_secret_value()
    path = settings.data_dir / "operator.token"
    fresh = secrets.token_urlsafe(32).encode()
    return read_or_create(path, fresh, "the operator token").decode().strip()


def security_policy(settings: Settings) -> SecurityPolicy:
    return SecurityPolicy(
        password_throttle=Throttle(
            settings.password_max_failures,
            timedelta(seconds=settings.password_lock_seconds),
            timedelta(seconds=settings.password_lock_max_seconds),
        ),
        code_throttle=Throttle(
            settings.code_max_failures,
            timedelta(seconds=settings.code_lock_seconds),
            timedelta(seconds=settings.code_lock_max_seconds),
            disable_after=settings.code_disable_after_failures,
        ),
        login_ttl=timedelta(seconds=settings.login_token_ttl_seconds),
    )


SCHEMA_LOCK_TIMEOUT_SECONDS = 60


@contextmanager
def schema_lock(store: Store) -> Iterator[None]:
    """PostgreSQL: one process at a time runs the library's CREATE statements.

    Processes that start together (``serve --workers N``, several hosts) would
    otherwise run CREATE OR REPLACE FUNCTION at the same moment, and PostgreSQL
    fails one with "tuple concurrently updated". A session advisory lock on a
    connection of its own, freed when it closes. SQLite needs none: its CREATE
    statements take the database's write lock.
    """
    if store.kind != "postgres":
        yield
        return
    with psycopg.connect(
        host=store.host,
        port=store.port,
        user=store.user,
        password=store.password,
        dbname=store.dbname,
        autocommit=True,
        **CONNECTION_OPTIONS,
    ) as conn:
        try:
            conn.execute(f"SET lock_timeout = '{SCHEMA_LOCK_TIMEOUT_SECONDS}s'")
            conn.execute(
                "SELECT pg_advisory_lock(%s)", (advisory_key("aero-auth/event-store-schema"),)
            )
        except psycopg.errors.LockNotAvailable:
            raise RuntimeError(
                f"another process has been creating the event store's tables for "
                f"{SCHEMA_LOCK_TIMEOUT_SECONDS} s (PostgreSQL advisory lock): giving up"
            ) from None
        yield


def build_application(settings: Settings, clock: Clock | None = None) -> AeroAuth:
    store = Store.from_url(settings.database_url)
    with schema_lock(store):
        return AeroAuth(
            store.eventsourcing_env(settings.postgres_pool_size),
            clock=clock,
            hasher=Argon2Hasher(
                Argon2Parameters(
                    settings.argon2_memory_kib,
                    settings.argon2_iterations,
                    settings.argon2_parallelism,
                ),
                concurrency=settings.hash_concurrency,
            ),
            secret_box=secret_box(settings),
            security=security_policy(settings),
        )


def build_read_models(settings: Settings, application: AeroAuth) -> LiveReadModels:
    """The user directory and the audit log, fed from ``application``'s events."""
    return LiveReadModels.for_app(
        application,
        postgres_pool_size=settings.postgres_pool_size,
        process=settings.project_in_process,
    )


def build_federated_logins(settings: Settings, application: AeroAuth) -> FederatedLogins:
    """Logins through an environment's identity provider, with this process's caches."""
    return FederatedLogins(application, RelyingParty(timeout=settings.oidc_timeout_seconds))
