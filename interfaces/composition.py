"""The one composition root: settings in, everything wired out. Nothing at import time.

Every entry point gets what it runs on from here: the HTTP app a ``Container``
(application, read models, tokens, trusted proxies, settings), the commands
the application, the views or the read-only investigator application. Only
this module reads settings, parses the database URL, or touches keys.

It is longer than the other modules on purpose: wiring kept in one place is the
point of a composition root, and each function here is a few lines of it (the
store, the keys, the views, the container). Splitting it would scatter the
wiring it exists to gather.

What only a serving process needs (FastAPI and the routes, the web UI with
Jinja, tokens, the identity provider's HTTP client) is imported in the
functions that build it. A command such as ``rebuild``, ``project`` or
``verify-audit`` then loads half the modules and objects a server does; a full
garbage collection walks every tracked object, so one during a rebuild costs a
third of what it did (docs/benchmarks.md, "What a command imports").
"""

from __future__ import annotations

import base64
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.postgres import PostgresDatastore
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from application.clock import Clock, SystemClock
from application.passwords import Argon2Hasher, Argon2Parameters
from application.secret_keys import stored_secrets
from application.secretbox import SecretBox, SecretBoxError
from application.service import AeroAuth, SecurityPolicy
from domain.throttle import Throttle
from infrastructure.write_probe import PostgresWriteProbe, SQLiteWriteProbe
from interfaces.files import private_sqlite_files, warn_if_exposed
from interfaces.keys import KeyConfigurationError, decode_key, read_or_create
from interfaces.settings import Settings, from_environment
from projections.api import ReadModels
from projections.audit_store import SqlAuditView
from projections.dialects import advisory_key
from projections.directory_store import SqlDirectoryView
from projections.lease import CONNECTION_OPTIONS
from projections.live import LiveReadModels
from projections.views import Views, postgres_views, sibling_path, sqlite_views

if TYPE_CHECKING:
    from fastapi import FastAPI

    from application.federation import FederatedLogins
    from interfaces.http.clientip import TrustedProxies
    from interfaces.tokens import TokenService
    from interfaces.web.sessions import Sealer, SessionList

ReadModelsFactory = Callable[[AeroAuth], ReadModels]


class ConfigurationError(Exception):
    """The AERO_* settings cannot be used; the message names the setting."""


class StoreNotFoundError(ConfigurationError):
    """The configured event store does not exist, and this command does not create one."""


def load_settings() -> Settings:
    """Settings from the AERO_* environment variables, defaults for the rest."""
    try:
        return from_environment()
    except ValidationError as e:
        first = e.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise ConfigurationError(
            f"AERO_{field.upper()}: {first['msg']}{_expected(field)}"
        ) from None
    except SettingsError as e:  # a value that is not the JSON its field needs
        field = next((f for f in Settings.model_fields if f'"{f}"' in str(e)), "")
        raise ConfigurationError(
            f"AERO_{field.upper()} cannot be parsed{_expected(field)}"
        ) from None


def _expected(field: str) -> str:
    info = Settings.model_fields.get(field)
    return f" (expected: {info.description})" if info and info.description else ""


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

    @classmethod
    def configured(cls, settings: Settings) -> Store:
        try:
            return cls.from_url(settings.database_url)
        except ValueError as e:
            raise ConfigurationError(str(e)) from None

    def describe(self) -> str:
        """Where the store is, never with its password."""
        if self.kind == "sqlite":
            assert self.sqlite_path is not None
            return str(self.sqlite_path.resolve())
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def sqlite_view_paths(self) -> list[Path]:
        """The read models' SQLite files beside the event store's (projections.views)."""
        stems = (SqlAuditView.file_stem, SqlDirectoryView.file_stem)
        return [Path(sibling_path(str(self.sqlite_path), stem)) for stem in stems]

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
            private_sqlite_files(self.sqlite_path)
            # Only narrowed when present: investigations tell a store whose views were
            # never built by these files' absence.
            for view in self.sqlite_view_paths():
                private_sqlite_files(view, create=False)
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


def _secret_keys(text: str) -> SecretBox:
    """AERO_SECRET_KEYS: ``id:base64`` pairs separated by commas, the current key first."""
    keys: dict[str, bytes] = {}
    for part in (p.strip() for p in text.split(",")):
        key_id, colon, encoded = part.partition(":")
        key_id = key_id.strip()
        if not colon or not key_id or "." in key_id:
            raise KeyConfigurationError(
                "AERO_SECRET_KEYS: each entry is ID:BASE64 (an id without '.'), e.g. k2:...,k1:..."
            )
        if key_id in keys:
            raise KeyConfigurationError(f"AERO_SECRET_KEYS: the key id {key_id!r} appears twice")
        keys[key_id] = decode_key(encoded, f"AERO_SECRET_KEYS ({key_id})")
    if not keys:
        raise KeyConfigurationError("AERO_SECRET_KEYS names no key")
    return SecretBox(keys, next(iter(keys)))


def secret_box(settings: Settings, *, create: bool = True) -> SecretBox:
    """The TOTP secrets' keys. AERO_SECRET_KEYS holds several by id (rotation); the single
    key of AERO_SECRET_KEY, AERO_SECRET_KEY_FILE or secret.key has the id ``k1``.

    ``create`` False (``aero-auth keys``): a missing secret.key is an error, not a new
    key, since a new key would decrypt none of the stored secrets.
    """
    if settings.secret_keys is not None:
        return _secret_keys(settings.secret_keys.get_secret_value())
    if settings.secret_key is not None:
        key = decode_key(settings.secret_key.get_secret_value(), "AERO_SECRET_KEY")
    elif settings.secret_key_file is not None:
        try:
            text = settings.secret_key_file.read_text()
        except OSError as e:
            raise KeyConfigurationError(f"cannot read AERO_SECRET_KEY_FILE: {e}") from e
        warn_if_exposed(settings.secret_key_file, "AERO_SECRET_KEY_FILE")
        key = decode_key(text, "AERO_SECRET_KEY_FILE")
    else:
        fresh = base64.b64encode(SecretBox.generate_key())
        path = settings.data_dir / "secret.key"
        if not create and not path.exists():
            raise KeyConfigurationError(
                f"no TOTP secret key at {path}: set AERO_SECRET_KEYS, AERO_SECRET_KEY, "
                "AERO_SECRET_KEY_FILE or AERO_DATA_DIR as the service has them"
            )
        key = decode_key(read_or_create(path, fresh, "the TOTP secret key").decode(), str(path))
    return SecretBox({"k1": key}, "k1")


def audit_chain_key(settings: Settings, *, create: bool = True) -> bytes:
    """The audit chain's HMAC key (projections/audit_chain.py): a setting, a key file, or
    the one the first start creates in the data directory (mode 0600). Kept outside the
    database, so that write access to the database is not enough to recompute the chain.

    ``create`` False (investigations): a missing generated key is an error, not a new key.
    """
    if settings.audit_key is not None:
        return decode_key(settings.audit_key.get_secret_value(), "AERO_AUDIT_KEY")
    if settings.audit_key_file is not None:
        try:
            text = settings.audit_key_file.read_text()
        except OSError as e:
            raise KeyConfigurationError(f"cannot read AERO_AUDIT_KEY_FILE: {e}") from e
        warn_if_exposed(settings.audit_key_file, "AERO_AUDIT_KEY_FILE")
        return decode_key(text, "AERO_AUDIT_KEY_FILE")
    path = settings.data_dir / "audit.key"
    if not create and not path.exists():
        raise KeyConfigurationError(
            f"no audit key at {path}: set AERO_AUDIT_KEY, AERO_AUDIT_KEY_FILE or AERO_DATA_DIR"
        )
    fresh = base64.b64encode(secrets.token_bytes(32))
    return decode_key(read_or_create(path, fresh, "the audit chain key").decode(), str(path))


def _ed25519_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise KeyConfigurationError(f"{source} is not an unencrypted PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{source} must hold an Ed25519 key")
    return key


def _fresh_ed25519_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def checkpoint_signing_key(settings: Settings, *, create: bool) -> Ed25519PrivateKey | None:
    """The operator's key for audit checkpoints: AERO_AUDIT_CHECKPOINT_KEY_FILE, or
    audit-checkpoint.pem in the data directory (made by the first checkpoint when
    ``create``; None when absent and not ``create``).

    A key of its own rather than the token signing key: tokens' key is rotated
    on the service's schedule and any checkpoint must stay checkable for years,
    and a key that signs only checkpoints cannot be made to sign one by asking
    the service for a token.
    """
    if settings.audit_checkpoint_key_file is not None:
        source = "AERO_AUDIT_CHECKPOINT_KEY_FILE"
        try:
            pem = settings.audit_checkpoint_key_file.read_bytes()
        except OSError as e:
            raise KeyConfigurationError(f"cannot read {source}: {e}") from e
        warn_if_exposed(settings.audit_checkpoint_key_file, source)
        return _ed25519_key(pem, source)
    path = settings.data_dir / "audit-checkpoint.pem"
    if not create and not path.exists():
        return None
    return _ed25519_key(
        read_or_create(path, _fresh_ed25519_pem(), "the audit checkpoint signing key"), str(path)
    )


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


EVENTS_TABLE = "aeroauth_events"  # the library's name for AeroAuth's events


def check_store(settings: Settings, *, must_exist: bool = True) -> Store:
    """The configured store, after checking it can be reached and, when ``must_exist``,
    that it holds an event store: only the commands that create a store may get a new
    empty one (a mistyped path or another working directory would otherwise pass).
    ConfigurationError (StoreNotFoundError) says what is wrong."""
    store = Store.configured(settings)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        if must_exist and not store.sqlite_path.is_file():
            raise StoreNotFoundError(
                f"no event store at {store.describe()} (AERO_DATABASE_URL="
                f"{settings.database_url}, relative to {Path.cwd()}): only `aero-auth serve` "
                "and `aero-auth environments create` create one"
            )
        return store
    try:
        with psycopg.connect(
            host=store.host,
            port=store.port,
            user=store.user,
            password=store.password,
            dbname=store.dbname,
            connect_timeout=10,
        ) as conn:
            row = conn.execute("SELECT to_regclass(%s)", (EVENTS_TABLE,)).fetchone()
    except psycopg.Error as e:
        reason = " ".join(line.strip() for line in str(e).splitlines()) or type(e).__name__
        raise ConfigurationError(
            f"cannot reach PostgreSQL at {store.describe()}: {reason} "
            "(expected a reachable server and database in AERO_DATABASE_URL)"
        ) from None
    if must_exist and (row is None or row[0] is None):
        raise StoreNotFoundError(
            f"no event store in {store.describe()} (no table {EVENTS_TABLE}): only "
            "`aero-auth serve` and `aero-auth environments create` create one"
        )
    return store


def build_application(
    settings: Settings, clock: Clock | None = None, *, create_keys: bool = True
) -> AeroAuth:
    """``create_keys`` False: a missing generated TOTP secret key is an error (see secret_box)."""
    store = Store.configured(settings)
    # A bad key is refused before any store file is made.
    box = secret_box(settings, create=create_keys)
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
            secret_box=box,
            security=security_policy(settings),
        )


def build_views(
    settings: Settings,
    pool_size: int | None = None,
    *,
    create_keys: bool = True,
    chain_key: bytes | None = None,
) -> Views:
    """The views of the configured store: in its PostgreSQL database, or in files beside
    its SQLite file. On PostgreSQL they share a pool of their own, ``pool_size``
    connections (the configured size by default). ``create_keys`` False: a missing
    audit key is an error (investigations), not a new key. ``chain_key``: views that
    are only asked whether they exist, under a key that writes nothing."""
    store = Store.configured(settings)
    if chain_key is None:
        chain_key = audit_chain_key(settings, create=create_keys)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        store.sqlite_path.parent.mkdir(parents=True, exist_ok=True)  # as the event store's
        return sqlite_views(str(store.sqlite_path), chain_key)
    size = pool_size or settings.postgres_pool_size
    datastore = PostgresDatastore(
        dbname=store.dbname,
        host=store.host,
        port=str(store.port),
        user=store.user,
        password=store.password,
        connect_timeout=10,
        idle_in_transaction_session_timeout=60,
        pool_size=size,
        max_overflow=size * 2,
    )
    return postgres_views(datastore, chain_key)


def build_read_models(settings: Settings, application: AeroAuth, **options: Any) -> LiveReadModels:
    """The user directory and the audit log, fed from ``application``'s events.

    ``options`` (batch_size, poll_interval, standby_interval, batch_interval)
    tune LiveReadModels; tests shorten its waits.
    """
    return LiveReadModels(
        application,
        build_views(settings),
        process=settings.project_in_process,
        **options,
    )


def build_tokens(settings: Settings, clock: Clock) -> TokenService:
    from interfaces.signing_keys import load_previous_key, load_signing_key
    from interfaces.tokens import TokenService

    return TokenService(
        load_signing_key(settings),
        clock,
        timedelta(seconds=settings.access_token_ttl_seconds),
        previous=load_previous_key(settings),
    )


def check_secret_keys(application: AeroAuth) -> None:
    """Refuse to start when the users hold TOTP secrets that the configured keys cannot
    decrypt: a key id not configured, or a key replaced under the same id.

    Without this every user with an authenticator would get a 500 at the code step.
    The secrets the users hold now count, not those of history: after a rotation
    (``aero-auth keys rotate``) the old key may go although old events still hold
    ciphertexts under it. One secret per key id is tried, the latest stored.
    """
    box = application.secret_box
    latest = {stored.key_id: stored for stored in stored_secrets(application)}
    missing = sorted(set(latest) - box.key_ids)
    if missing:
        raise KeyConfigurationError(
            f"the store holds TOTP secrets encrypted under key id(s) {', '.join(missing)}, "
            f"which are not configured (configured: {', '.join(sorted(box.key_ids))}): "
            "set AERO_SECRET_KEYS (or the key file) to include them"
        )
    for key_id, stored in sorted(latest.items()):
        try:
            box.decrypt(stored.encrypted_secret, str(stored.user_id))
        except SecretBoxError:
            raise KeyConfigurationError(
                f"the configured key {key_id!r} does not decrypt the TOTP secrets stored under "
                f"that id: the key was replaced; configure the key they were encrypted with"
            ) from None


@dataclass
class Container:
    """What a running service holds for its whole life; the HTTP app receives one.

    The read models are built but not started: starting them is the server's
    (ReadModelLifecycle). None when the app serves without them.
    """

    settings: Settings
    clock: Clock
    application: AeroAuth
    tokens: TokenService
    operator_token: str
    proxies: TrustedProxies
    read_models: ReadModels | None
    # The web UI's cookie sealer and, opened on its first page, its list of sessions.
    web_sealer: Sealer
    open_web_sessions: Callable[[], SessionList]
    # Logins through an environment's identity provider: this process's HTTP client
    # for providers, with its discovery and key caches.
    identity: FederatedLogins
    # Raises unless the event store accepts a write (/readyz); None: not probed.
    write_probe: Callable[[], None] | None = None

    def close(self) -> None:
        try:
            if self.read_models is not None:
                self.read_models.close()
        finally:
            try:
                self.identity.relying_party.close()
            finally:
                self.application.close()


def build_container(
    settings: Settings,
    *,
    clock: Clock | None = None,
    read_models: ReadModelsFactory | None = None,
) -> Container:
    from interfaces.http.clientip import TrustedProxies
    from interfaces.signing_keys import load_previous_cookie_key, load_signing_key
    from interfaces.web.sessions import Sealer

    clock = clock or SystemClock()
    tokens = build_tokens(settings, clock)
    operator = operator_token(settings)
    proxies = TrustedProxies(settings.trusted_proxies)
    application = build_application(settings, clock=clock)
    try:
        check_secret_keys(application)
        models = read_models(application) if read_models is not None else None
    except BaseException:
        application.close()
        raise
    return Container(
        settings,
        clock,
        application,
        tokens,
        operator,
        proxies,
        models,
        web_sealer=Sealer.from_signing_key(
            load_signing_key(settings), load_previous_cookie_key(settings)
        ),
        open_web_sessions=partial(web_sessions, Store.from_url(settings.database_url)),
        identity=build_federated_logins(settings, application),
        write_probe=build_write_probe(settings),
    )


def build_federated_logins(settings: Settings, application: AeroAuth) -> FederatedLogins:
    """Logins through an environment's identity provider, with this process's caches."""
    from application.federation import FederatedLogins
    from application.relying_party import RelyingParty

    return FederatedLogins(application, RelyingParty(timeout=settings.oidc_timeout_seconds))


def web_sessions(store: Store) -> SessionList:
    """The web UI's sessions, beside the event store: a SQLite file next to its file,
    or a table in its PostgreSQL database."""
    from interfaces.web.sessions import PostgresSessionList, SQLiteSessionList

    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteSessionList(
            store.sqlite_path.with_name(store.sqlite_path.stem + "-web-sessions.db")
        )
    return PostgresSessionList(store)


# /readyz answers within a second; the probe gives up before that.
WRITE_PROBE_TIMEOUT_SECONDS = 0.7


def build_write_probe(settings: Settings) -> Callable[[], None]:
    """A write to the configured store's heartbeat table (infrastructure/write_probe.py)."""
    store = Store.from_url(settings.database_url)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return SQLiteWriteProbe(store.sqlite_path, WRITE_PROBE_TIMEOUT_SECONDS)
    return PostgresWriteProbe(
        {
            "host": store.host,
            "port": store.port,
            "user": store.user,
            "password": store.password,
            "dbname": store.dbname,
        },
        WRITE_PROBE_TIMEOUT_SECONDS,
    )


def http_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    read_models_factory: ReadModelsFactory | None = None,
) -> FastAPI:
    """An app over the store ``settings`` name; the container is built when it starts."""
    from interfaces.http.app import create_app

    wire = partial(build_container, settings, clock=clock, read_models=read_models_factory)
    return create_app(wire, max_request_bytes=settings.max_request_bytes)


def http_app_from_environment() -> FastAPI:
    """The uvicorn factory of ``aero-auth serve``: settings from AERO_* variables,
    with this process's read models (user directory, audit log)."""
    settings = load_settings()
    return http_app(settings, read_models_factory=partial(build_read_models, settings))


def prepare_first_start(settings: Settings) -> None:
    """Create the keys and the operator token once, before any worker starts, so that
    workers only read them; read_or_create says where it put each one."""
    from interfaces.signing_keys import load_signing_key

    secret_box(settings)
    audit_chain_key(settings)
    load_signing_key(settings)
    operator_token(settings)
    application = build_application(settings)
    try:
        check_secret_keys(application)  # before any worker: one line, not one per worker
    finally:
        application.close()
    if settings.operator_token is None:
        path = (settings.data_dir / "operator.token").resolve()
        print(f"aero-auth: the operator token is in {path}", file=sys.stderr)


def describe_store(settings: Settings) -> str:
    """The configured event store as a copy of it records it: never a password."""
    store = Store.from_url(settings.database_url)
    if store.kind == "sqlite":
        assert store.sqlite_path is not None
        return f"sqlite:///{store.sqlite_path.resolve()}"
    return f"postgresql://{store.user}@{store.host}:{store.port}/{store.dbname}"


def build_investigator(settings: Settings) -> AeroAuth:
    """A read-only application for investigations, on the configured store.

    It never decrypts a TOTP secret, so it gets a throwaway key: no access to
    the real one, and no key file created in the data directory. A SQLite
    store that does not exist is an error, not a new empty store.
    """
    check_store(settings)
    throwaway = base64.b64encode(secrets.token_bytes(32)).decode()
    return build_application(
        settings.model_copy(update={"secret_key": SecretStr(throwaway), "secret_keys": None})
    )
