"""The token signing key files: the current key, the previous key's public half, rotation.

Only the composition root loads them (and ``aero-auth tokens rotate-signing-key``
rotates them); the token service receives the keys. A rotation also keeps the
previous key's web cookie key (derived from it, interfaces/web/sessions.py), so
that browsers' sessions outlive a rotation as API tokens do.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interfaces.files import warn_if_exposed
from interfaces.keys import KeyConfigurationError, read_or_create
from interfaces.settings import Settings
from interfaces.tokens import kid_of
from interfaces.web.sessions import cookie_key


def signing_key_path(settings: Settings) -> Path:
    """Where the current signing key lives: the configured file, or one in the data directory."""
    if settings.token_signing_key_file is not None:
        return settings.token_signing_key_file
    return settings.data_dir / "token-signing.pem"


def previous_key_path(settings: Settings) -> Path:
    """The public half of the previous signing key, written by a rotation."""
    if settings.token_previous_key_file is not None:
        return settings.token_previous_key_file
    current = signing_key_path(settings)
    return current.with_name(f"{current.stem}.previous.pem")


def previous_cookie_key_path(settings: Settings) -> Path:
    """The previous signing key's web cookie key, beside its public half (a rotation writes
    both): ``token-signing.previous-cookies.key`` by default."""
    previous = previous_key_path(settings)
    return previous.with_name(f"{previous.stem}-cookies.key")


def _new_private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise KeyConfigurationError(f"{source} is not an unencrypted PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{source} must hold an Ed25519 key")
    return key


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The configured key file, or one the first start creates (mode 0600, SECURITY.md 16)."""
    if settings.token_signing_key_file is not None:
        try:
            pem = settings.token_signing_key_file.read_bytes()
        except OSError as e:
            raise KeyConfigurationError(f"cannot read AERO_TOKEN_SIGNING_KEY_FILE: {e}") from e
        warn_if_exposed(settings.token_signing_key_file, "AERO_TOKEN_SIGNING_KEY_FILE")
        source = "AERO_TOKEN_SIGNING_KEY_FILE"
    else:
        path = signing_key_path(settings)
        pem = read_or_create(path, _new_private_pem(), "the token signing key")
        source = str(path)
    return _private_key(pem, source)


def load_previous_key(settings: Settings) -> Ed25519PublicKey | None:
    """The previous signing key's public half, if a rotation left one; it only verifies."""
    path = previous_key_path(settings)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        if settings.token_previous_key_file is not None:
            raise KeyConfigurationError(
                f"AERO_TOKEN_PREVIOUS_KEY_FILE {path} does not exist"
            ) from None
        return None
    except OSError as e:
        raise KeyConfigurationError(f"cannot read {path}: {e}") from e
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise KeyConfigurationError(f"{path} is not a PEM public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise KeyConfigurationError(f"{path} must hold an Ed25519 public key")
    return key


def load_previous_cookie_key(settings: Settings) -> bytes | None:
    """The previous signing key's cookie key, if a rotation left one: browsers' cookies
    sealed before the rotation still open (the web UI seals only with the current one)."""
    path = previous_cookie_key_path(settings)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise KeyConfigurationError(f"cannot read {path}: {e}") from e
    warn_if_exposed(path, "the previous web cookie key")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyConfigurationError(f"{path} must hold 32 bytes in base64")
    return key


class RotationTooSoonError(Exception):
    """The previous key may still verify live tokens; rotating now would end them."""


@dataclass(frozen=True)
class Rotation:
    current_kid: str
    previous_kid: str
    current_path: Path
    previous_path: Path


def rotate_signing_key(settings: Settings, now: datetime, force: bool = False) -> Rotation:
    """Make a new current signing key and keep the old one's public half for verification.

    Refused (unless ``force``) while the previous key of the last rotation may still
    have live tokens: the access token lifetime has not passed since that rotation.
    Running servers read the keys at start: restart them afterwards (docs/tokens.md).
    """
    current_path, previous_path = signing_key_path(settings), previous_key_path(settings)
    old = load_signing_key(settings)
    if not force and previous_path.exists():
        rotated_at = datetime.fromtimestamp(previous_path.stat().st_mtime, UTC)
        live_until = rotated_at + timedelta(seconds=settings.access_token_ttl_seconds)
        if now < live_until:
            raise RotationTooSoonError(
                f"the last rotation was at {rotated_at:%Y-%m-%dT%H:%M:%SZ}; tokens signed by "
                f"the key before it may be valid until {live_until:%Y-%m-%dT%H:%M:%SZ}"
            )
    new_pem = _new_private_pem()
    # The previous key first: a crash between the writes leaves the old key
    # signing and also listed as previous, which is harmless.
    _replace(previous_path, _public_pem(old))
    _replace(previous_cookie_key_path(settings), base64.b64encode(cookie_key(old)))
    _replace(current_path, new_pem)
    return Rotation(
        current_kid=kid_of(_private_key(new_pem, str(current_path)).public_key()),
        previous_kid=kid_of(old.public_key()),
        current_path=current_path,
        previous_path=previous_path,
    )


def _replace(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` atomically, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
