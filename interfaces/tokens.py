"""Signed tokens: access tokens and login tokens, both EdDSA (Ed25519) JWTs.

Asymmetric signatures let other services check access tokens with the public
keys from ``/.well-known/jwks.json`` and never hold the signing key. The two
kinds differ in audience and ``typ`` header, so neither passes for the other
(SECURITY.md 12). Expiry is checked against the application's clock, not
PyJWT's wall clock, so a test clock governs tokens as it governs codes.

Two keys verify: the current one, which signs, and the previous one, kept after
a rotation until the tokens it signed have expired (docs/tokens.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from application.clock import Clock
from domain.credential import UserCredential
from domain.errors import UserNotFoundError

ISSUER = "aero-auth"
ALGORITHM = "EdDSA"
ACCESS_AUDIENCE = "aero-auth:access"
LOGIN_AUDIENCE = "aero-auth:login"
# RFC 9068 names the access token type; the login token gets its own.
ACCESS_TYPE = "at+jwt"
LOGIN_TYPE = "aero-login+jwt"
# The claim that orders a token against resets and password changes (UserCredential.session_valid).
LOGIN_VERSION_CLAIM = "ver"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidTokenError(Exception):
    """Forged, expired, malformed, or of the wrong kind: all one answer (401 invalid_token).

    ``detail`` is what a client may be told; the message may say more, for logs.
    """

    def __init__(self, message: str, detail: str = "the token is not accepted here") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class AccessClaims:
    user_id: UUID
    environment: str
    username: str
    roles: tuple[str, ...]
    login_version: int
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


def _numeric_date(at: datetime) -> int:
    """RFC 7519 NumericDate in whole seconds (rounded down): several verifiers refuse
    fractions. Nothing orders sessions by these times (see session_valid)."""
    return int((at - _EPOCH).total_seconds() // 1)


def _from_numeric_date(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTokenError("a date claim is not a whole number")
    try:
        return _EPOCH + timedelta(seconds=value)
    except (OverflowError, ValueError) as e:
        raise InvalidTokenError("a date claim is out of range") from e


def _jwk(public: Ed25519PublicKey) -> dict[str, Any]:
    public_jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**public_jwk, "kid": _thumbprint(public_jwk), "alg": ALGORITHM, "use": "sig"}


def kid_of(public: Ed25519PublicKey) -> str:
    """The key id JWKS gives ``public``: its RFC 7638 thumbprint."""
    return str(_jwk(public)["kid"])


# ----- the token service -----


class TokenService:
    def __init__(
        self,
        key: Ed25519PrivateKey,
        clock: Clock,
        access_ttl: timedelta,
        previous: Ed25519PublicKey | None = None,
    ) -> None:
        self._key = key
        self._clock = clock
        self._access_ttl_seconds = int(access_ttl.total_seconds())
        current = _jwk(key.public_key())
        self.kid: str = current["kid"]
        self._jwks = [current]
        self._verifiers: dict[str, Ed25519PublicKey] = {self.kid: key.public_key()}
        if previous is not None:
            older = _jwk(previous)
            if older["kid"] != self.kid:
                self._jwks.append(older)
                self._verifiers[older["kid"]] = previous

    def jwks(self) -> dict[str, Any]:
        """The current key first, then the previous one (RFC 7517)."""
        return {"keys": [dict(jwk) for jwk in self._jwks]}

    # ----- issuing -----

    def issue_access(self, user: UserCredential) -> IssuedToken:
        """For the login the user just completed: the token carries that login's version,
        so a reset or password change saved after the login ends it, whatever the clocks say."""
        if user.last_login_version is None:
            raise ValueError("an access token is issued only for a completed login")
        issued_at = _numeric_date(self._clock.now())
        claims = {
            "iss": ISSUER,
            "aud": ACCESS_AUDIENCE,
            "sub": str(user.id),
            "env": user.environment,
            "username": user.username,
            "roles": sorted(user.roles),
            LOGIN_VERSION_CLAIM: user.last_login_version,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self._access_ttl_seconds,
        }
        return IssuedToken(self._sign(claims, ACCESS_TYPE), self._access_ttl_seconds)

    def issue_login(
        self, user: UserCredential, challenge_id: str, step: str, expires_at: datetime
    ) -> IssuedToken:
        issued_at = _numeric_date(self._clock.now())
        # Rounded down: the token never outlives its challenge.
        expires = _numeric_date(expires_at)
        claims = {
            "iss": ISSUER,
            "aud": LOGIN_AUDIENCE,
            "sub": str(user.id),
            "env": user.environment,
            "username": user.username,
            "cid": challenge_id,
            "step": step,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires,
        }
        return IssuedToken(self._sign(claims, LOGIN_TYPE), max(0, expires - issued_at))

    # ----- verifying -----

    def verify_access(self, token: str) -> AccessClaims:
        claims = self._verify(token, ACCESS_TYPE, ACCESS_AUDIENCE, [LOGIN_VERSION_CLAIM])
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidTokenError("roles claim is malformed")
        version = claims[LOGIN_VERSION_CLAIM]
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidTokenError("ver claim is not a whole number")
        return AccessClaims(
            user_id=_uuid(claims["sub"]),
            environment=_text(claims, "env"),
            username=_text(claims, "username"),
            roles=tuple(roles),
            login_version=version,
            issued_at=_from_numeric_date(claims["iat"]),
            expires_at=_from_numeric_date(claims["exp"]),
        )

    def verify_login(self, token: str) -> LoginClaims:
        claims = self._verify(token, LOGIN_TYPE, LOGIN_AUDIENCE, ["cid", "step"])
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

    def _verify(self, token: str, typ: str, audience: str, required: list[str]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._verifiers.get(header.get("kid", ""))
            if header.get("typ") != typ or key is None:
                raise InvalidTokenError("not a token of this kind from this service")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=ISSUER,
                options={
                    "require": ["iss", "aud", "sub", "env", "username", "iat", "exp", *required],
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


# ----- sessions: the one check every interface makes -----


class UserSource(Protocol):
    def user_by_id(self, user_uuid: UUID) -> UserCredential: ...


@dataclass(frozen=True)
class Session:
    """A live access token and its user, loaded now: roles and sessions are current."""

    user: UserCredential
    claims: AccessClaims


def authenticate(tokens: TokenService, users: UserSource, token: str, environment: str) -> Session:
    """The access token's user, if the token is good in ``environment`` now.

    Signature, kind, expiry, environment, and that no reset or password change
    came after its login. The API and the web UI both call this, so a session
    ends everywhere at once. Raises InvalidTokenError.
    """
    claims = tokens.verify_access(token)
    if claims.environment != environment:
        raise InvalidTokenError("another environment", "the token is for another environment")
    # By id: the user's own record says which environment it belongs to, so the
    # environment need not be loaded as well on every authenticated request.
    try:
        user = users.user_by_id(claims.user_id)
    except UserNotFoundError:
        raise InvalidTokenError("no such user") from None
    if user.environment != environment:
        raise InvalidTokenError("another environment", "the token is for another environment")
    if not user.session_valid(claims.login_version):
        raise InvalidTokenError("session ended", "the session has ended; log in again")
    return Session(user=user, claims=claims)


def introspect(
    tokens: TokenService, users: UserSource, token: str, environment: str
) -> Session | None:
    """RFC 7662: the session if the token is active, else None, whatever the reason.

    Stricter than :func:`authenticate`: a role change since the login also makes the
    token inactive, because its ``roles`` claim, which offline verifiers trust, is stale.
    """
    try:
        session = authenticate(tokens, users, token, environment)
    except InvalidTokenError:
        return None
    if not session.user.claims_current(session.claims.login_version):
        return None
    return session


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
