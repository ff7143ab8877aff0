"""Settings from environment variables with the prefix AERO_ (see the README's table)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
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
    argon2_memory_kib: int = Field(19456, ge=19456)
    argon2_iterations: int = Field(2, ge=2)
    argon2_parallelism: int = Field(1, ge=1)
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
        default_factory=list, description="IPs or CIDRs whose X-Forwarded-For is honoured"
    )
    postgres_pool_size: int = Field(5, ge=1)
