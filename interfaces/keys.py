"""Keys come from configuration or from files the embedded default creates (SECURITY.md 16)."""

from __future__ import annotations

import base64
import binascii
import os
import sys
from pathlib import Path

from interfaces.files import private_directory, warn_if_exposed


class KeyConfigurationError(Exception):
    pass


def read_or_create(path: Path, create: bytes, describe: str) -> bytes:
    """The file's bytes; on first start write ``create`` with mode 0600 and say where.

    The directory is made 0700; an existing key file others may read or write
    is used, with a warning at start.
    """
    private_directory(path.parent)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        pass
    else:
        warn_if_exposed(path, describe)
        return content
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our create.
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(create)
    print(f"aero-auth: created {describe} at {path.resolve()} (mode 0600)", file=sys.stderr)
    return create


def decode_key(encoded: str, source: str) -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise KeyConfigurationError(
            f"{source} is not base64 (expected base64 of 32 random bytes: openssl rand -base64 32)"
        ) from e
    if len(key) != 32:
        raise KeyConfigurationError(
            f"{source} decodes to {len(key)} bytes (expected base64 of 32 bytes: "
            "openssl rand -base64 32)"
        )
    return key
