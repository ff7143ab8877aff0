"""AES-256-GCM for TOTP secrets inside events (SECURITY.md 15).

The key id travels with each ciphertext so keys can be rotated: old events
stay readable while new ones use the new key.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.credential import secret_key_id

KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBoxError(Exception):
    pass


class SecretBox:
    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise SecretBoxError(f"no key with id {current!r}")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise SecretBoxError(f"key {key_id!r} must be 256 bits")
            if "." in key_id:
                raise SecretBoxError("key ids may not contain '.'")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._current = current

    @property
    def current(self) -> str:
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def ordered_key_ids(self) -> tuple[str, ...]:
        """The key ids in the order they were configured (the current one first, by
        AERO_SECRET_KEYS' convention)."""
        return tuple(self._keys)

    @staticmethod
    def key_id_of(token: str) -> str:
        """The id of the key a ciphertext was made with (the credential reads it too)."""
        return secret_key_id(token)

    @staticmethod
    def generate_key() -> bytes:
        return secrets.token_bytes(KEY_BYTES)

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt with ``context`` (the user id) as authenticated data.

        A ciphertext copied into another user's events then fails to decrypt.
        """
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{self._current}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, context: str) -> str:
        key_id, _, body = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(body)
            aead = self._keys[key_id]
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except KeyError as e:
            raise SecretBoxError(f"no key with id {key_id!r} to decrypt with") from e
        except Exception as e:
            raise SecretBoxError("ciphertext does not decrypt under its key") from e
