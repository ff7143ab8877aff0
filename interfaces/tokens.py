"""Signed tokens: access tokens and login tokens, both EdDSA (Ed25519) JWTs.

Asymmetric signatures let other services check access tokens with the public
key from ``/.well-known/jwks.json`` and never hold the signing key. The two
kinds differ in audience and ``typ`` header, so neither passes for the other
(SECURITY.md 12). Expiry is checked against the application's clock, not
PyJWT's wall clock, so a test clock governs tokens as it governs codes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from application.clock import Clock
from domain.credential import UserCredential
from interfaces.files import warn_if_exposed
from interfaces.keys import KeyConfigurationError, read_or_create
from interfaces.settings import Settings

ISSUER = "aero-auth"
ALGORITHM = "EdDSA"
ACCESS_AUDIENCE = "aero-auth:access"
LOGIN_AUDIENCE = "aero-auth:login"
# RFC 9068 names the access token type; the login token gets its own.
ACCESS_TYPE = "at+jwt"
LOGIN_TYPE = "aero-login+jwt"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class InvalidTokenError(Exception):
    """Forged, expired, malformed, or of the wrong kind: all one answer (401 invalid_token)."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    environment: str
    username: str
    roles: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class LoginClaims:
    user_id: UUID
    environment: str
    username: str
    challenge_id: str
    step: str
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


def _numeric_date(at: datetime) -> float:
    """RFC 7519 NumericDate with microseconds: a token issued just after a reset
    must outlive it while one issued just before must not (session_valid)."""
    return ((at - _EPOCH) // _MICROSECOND) / 1_000_000


def _from_numeric_date(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError("a date claim is not a number")
    try:
        return _EPOCH + timedelta(microseconds=round(value * 1_000_000))
    except (OverflowError, ValueError) as e:
        raise InvalidTokenError("a date claim is out of range") from e


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
        path = settings.data_dir / "token-signing.pem"
        fresh = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pem = read_or_create(path, fresh, "the token signing key")
        source = str(path)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise KeyConfigurationError(f"{source} is not an unencrypted PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyConfigurationError(f"{source} must hold an Ed25519 key")
    return key


class TokenService:
    def __init__(self, key: Ed25519PrivateKey, clock: Clock, access_ttl: timedelta) -> None:
        self._key = key
        self._public = key.public_key()
        self._clock = clock
        self._access_ttl = access_ttl
        public_jwk = OKPAlgorithm.to_jwk(self._public, as_dict=True)
        self.kid = _thumbprint(public_jwk)
        self._jwk = {**public_jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    # ----- issuing -----

    def issue_access(self, user: UserCredential) -> IssuedToken:
        """Issued at the login's own event time, so a reset after the login ends the token."""
        issued_at = user.last_login_at or self._clock.now()
        expires_at = issued_at + self._access_ttl
        claims = {
            "iss": ISSUER,
            "aud": ACCESS_AUDIENCE,
            "sub": str(user.id),
            "env": user.environment,
            "username": user.username,
            "roles": sorted(user.roles),
            "iat": _numeric_date(issued_at),
            "exp": _numeric_date(expires_at),
        }
        return IssuedToken(self._sign(claims, ACCESS_TYPE), self._expires_in(expires_at))

    def issue_login(
        self, user: UserCredential, challenge_id: str, step: str, expires_at: datetime
    ) -> IssuedToken:
        claims = {
            "iss": ISSUER,
            "aud": LOGIN_AUDIENCE,
            "sub": str(user.id),
            "env": user.environment,
            "username": user.username,
            "cid": challenge_id,
            "step": step,
            "iat": _numeric_date(self._clock.now()),
            "exp": _numeric_date(expires_at),
        }
        return IssuedToken(self._sign(claims, LOGIN_TYPE), self._expires_in(expires_at))

    # ----- verifying -----

    def verify_access(self, token: str) -> AccessClaims:
        claims = self._verify(token, ACCESS_TYPE, ACCESS_AUDIENCE)
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidTokenError("roles claim is malformed")
        return AccessClaims(
            user_id=_uuid(claims["sub"]),
            environment=_text(claims, "env"),
            username=_text(claims, "username"),
            roles=tuple(roles),
            issued_at=_from_numeric_date(claims["iat"]),
            expires_at=_from_numeric_date(claims["exp"]),
        )

    def verify_login(self, token: str) -> LoginClaims:
        claims = self._verify(token, LOGIN_TYPE, LOGIN_AUDIENCE)
        return LoginClaims(
            user_id=_uuid(claims["sub"]),
            environment=_text(claims, "env"),
            username=_text(claims, "username"),
            challenge_id=_text(claims, "cid"),
            step=_text(claims, "step"),
            expires_at=_from_numeric_date(claims["exp"]),
        )

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        return jwt.encode(
            claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": typ}
        )

    def _expires_in(self, expires_at: datetime) -> int:
        return max(0, int((expires_at - self._clock.now()).total_seconds()))

    def _verify(self, token: str, typ: str, audience: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != typ or header.get("kid") != self.kid:
                raise InvalidTokenError("not a token of this kind from this service")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                options={
                    "require": ["iss", "aud", "sub", "env", "username", "iat", "exp"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as e:
            raise InvalidTokenError(str(e)) from e
        if self._clock.now() >= _from_numeric_date(claims["exp"]):
            raise InvalidTokenError("the token has expired")
        return claims


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 over the required members, sorted, no spaces."""
    required = {name: jwk[name] for name in ("crv", "kty", "x")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _uuid(value: object) -> UUID:
    try:
        return UUID(str(value))
    except ValueError as e:
        raise InvalidTokenError("sub is not a user id") from e


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise InvalidTokenError(f"{name} claim is missing or not a string")
    return value
