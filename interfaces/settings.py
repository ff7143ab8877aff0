"""Settings from environment variables with the prefix AERO_ (see the README's table)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AERO_", extra="ignore")

    database_url: str = Field(
        "sqlite:///var/aero.db",
        description="sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db",
    )
    data_dir: Path = Field(Path("var"), description="where generated keys and the token live")
    operator_token: SecretStr | None = Field(None, description="may only create environments")
    secret_key: SecretStr | None = Field(
        None, description="base64 of 32 bytes: AES-256-GCM key for TOTP secrets"
    )
    secret_key_file: Path | None = Field(None, description="file holding AERO_SECRET_KEY")
    secret_keys: SecretStr | None = Field(
        None,
        description="several AES-256-GCM keys by id, the current one first: "
        "'k2:BASE64,k1:BASE64'; new secrets are encrypted under the first, older ones "
        "stay readable; takes the place of AERO_SECRET_KEY and AERO_SECRET_KEY_FILE",
    )
    audit_key: SecretStr | None = Field(
        None, description="base64 of 32 bytes: HMAC-SHA256 key of the audit log's hash chain"
    )
    audit_key_file: Path | None = Field(
        None,
        description="file holding AERO_AUDIT_KEY; without either the first start creates "
        "$AERO_DATA_DIR/audit.key (mode 0600)",
    )
    audit_checkpoint_key_file: Path | None = Field(
        None,
        description="PEM (PKCS#8) Ed25519 key that signs audit checkpoints; without it "
        "`aero-auth audit checkpoint` creates $AERO_DATA_DIR/audit-checkpoint.pem (mode 0600)",
    )
    argon2_memory_kib: int = Field(19456, ge=19456)
    argon2_iterations: int = Field(2, ge=2)
    argon2_parallelism: int = Field(1, ge=1)
    hash_concurrency: int | None = Field(
        None,
        ge=1,
        description="argon2id hashes computed at once by one server process; by default the "
        "cores, and `aero-auth serve --workers N` gives each worker its share of them",
    )
    code_max_failures: int = Field(5, ge=1)
    code_lock_seconds: int = Field(300, ge=1)
    code_lock_max_seconds: int = Field(3600, ge=1)
    code_disable_after_failures: int = Field(100, ge=1)
    password_max_failures: int = Field(10, ge=1)
    password_lock_seconds: int = Field(60, ge=1)
    password_lock_max_seconds: int = Field(900, ge=1)
    login_token_ttl_seconds: int = Field(300, ge=10, le=300)
    access_token_ttl_seconds: int = Field(3600, ge=60)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='a JSON list of IPs or CIDRs, e.g. ["10.0.0.0/8"], whose X-Forwarded-For '
        "is honoured",
    )
    postgres_pool_size: int = Field(5, ge=1)
    token_signing_key_file: Path | None = Field(
        None,
        description="PEM (PKCS#8) Ed25519 key that signs tokens; without it the first start "
        "creates $AERO_DATA_DIR/token-signing.pem (mode 0600)",
    )
    token_previous_key_file: Path | None = Field(
        None,
        description="PEM public key of the previous signing key, still published and accepted; "
        "by default `<signing key name>.previous.pem` beside the signing key, written by "
        "`aero-auth tokens rotate-signing-key`",
    )
    read_model_wait_seconds: float = Field(
        5.0, gt=0, description="how long an admin write waits for the read models to include it"
    )
    ready_max_lag_seconds: float = Field(
        60.0,
        gt=0,
        description="/readyz answers 503 while a view's oldest unprocessed event is older",
    )
    oidc_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="time-out of each call to an identity provider"
    )
    max_request_bytes: int = Field(64 * 1024, ge=1024, description="largest request body accepted")
    project_in_process: bool = Field(
        True,
        description="the server keeps the read models up to date itself; false when a separate "
        "`aero-auth project` worker does it",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the bad entry
        return [entry.strip() for entry in value]


def from_environment() -> Settings:
    """Settings from the AERO_* environment variables, defaults for the rest."""
    # mypy without pydantic's plugin reads positional Field defaults as required fields.
    return Settings()  # type: ignore[call-arg]
