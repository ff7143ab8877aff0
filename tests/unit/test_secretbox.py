"""TOTP secrets are sealed with AES-256-GCM, bound to their user (SECURITY.md 15-16)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from application.secretbox import SecretBox, SecretBoxError
from domain.rules import user_id
from interfaces.composition import secret_box
from interfaces.settings import Settings

KEY = bytes(range(32))
BOB = str(user_id("acme", "bob"))
CAROL = str(user_id("acme", "carol"))
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_seals_with_aes_gcm_under_a_256_bit_key_and_the_user_id_as_associated_data() -> None:
    box = SecretBox({"k1": KEY}, "k1")

    sealed = box.encrypt(SECRET, context=BOB)

    key_id, _, body = sealed.partition(".")
    raw = base64.urlsafe_b64decode(body)
    assert key_id == "k1"
    assert SECRET not in sealed
    assert AESGCM(KEY).decrypt(raw[:12], raw[12:], BOB.encode()).decode() == SECRET
    assert box.decrypt(sealed, context=BOB) == SECRET


def test_a_ciphertext_moved_to_another_user_does_not_open() -> None:
    box = SecretBox({"k1": KEY}, "k1")
    sealed = box.encrypt(SECRET, context=BOB)

    with pytest.raises(SecretBoxError):
        box.decrypt(sealed, context=CAROL)


def test_a_tampered_ciphertext_does_not_open() -> None:
    box = SecretBox({"k1": KEY}, "k1")
    key_id, _, body = box.encrypt(SECRET, context=BOB).partition(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1

    with pytest.raises(SecretBoxError):
        box.decrypt(f"{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode()}", context=BOB)


def test_each_sealing_uses_a_fresh_nonce() -> None:
    box = SecretBox({"k1": KEY}, "k1")

    assert box.encrypt(SECRET, BOB) != box.encrypt(SECRET, BOB)


@pytest.mark.parametrize("key", [b"k" * 16, b"k" * 24, b"k" * 31])
def test_refuses_keys_shorter_than_256_bits(key: bytes) -> None:
    with pytest.raises(SecretBoxError, match="256 bits"):
        SecretBox({"k1": key}, "k1")


def test_old_ciphertexts_stay_readable_after_a_key_rotation() -> None:
    old = SecretBox({"k1": KEY}, "k1").encrypt(SECRET, BOB)
    rotated = SecretBox({"k1": KEY, "k2": b"n" * 32}, "k2")

    assert rotated.decrypt(old, BOB) == SECRET
    assert rotated.encrypt(SECRET, BOB).startswith("k2.")


def unconfigured(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, secret_key=None, secret_key_file=None)


def test_embedded_default_creates_its_key_file_with_mode_0600_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AERO_SECRET_KEY", raising=False)
    monkeypatch.delenv("AERO_SECRET_KEY_FILE", raising=False)
    key_file = tmp_path / "data" / "secret.key"

    box = secret_box(unconfigured(tmp_path / "data"))

    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    assert str(key_file) in capsys.readouterr().err
    assert box.decrypt(box.encrypt(SECRET, BOB), BOB) == SECRET


def test_embedded_default_reuses_its_key_file_on_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AERO_SECRET_KEY", raising=False)
    monkeypatch.delenv("AERO_SECRET_KEY_FILE", raising=False)
    sealed = secret_box(unconfigured(tmp_path / "data")).encrypt(SECRET, BOB)
    key_before = (tmp_path / "data" / "secret.key").read_bytes()

    next_start = secret_box(unconfigured(tmp_path / "data"))

    assert next_start.decrypt(sealed, BOB) == SECRET
    assert (tmp_path / "data" / "secret.key").read_bytes() == key_before
