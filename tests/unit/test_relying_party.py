"""The ID token checks a real provider cannot be made to fail: tokens signed here with
joserfc, the provider's answers played by httpx.MockTransport."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from application.relying_party import RelyingParty, stored_metadata
from domain.errors import (
    IdentityProviderUnavailableError,
    InvalidIdentityProviderError,
    InvalidOidcResponseError,
)
from domain.identity import IdentityProvider, entra_tenant, secret_hash, valid_provider_issuer

TENANT = "7f3c1e52-9a4b-4d6e-8f21-3b5c7d9e0a14"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
CLIENT = "client-1"
NONCE = "nonce-of-this-login"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
NOW = datetime.fromtimestamp(int(time.time()), UTC)


def provider(**changes: Any) -> IdentityProvider:
    values: dict[str, Any] = {
        "connection_id": "c1",
        "issuer": ISSUER,
        "client_id": CLIENT,
        "encrypted_client_secret": "k1.x",
        "display_name": "Microsoft",
        "redirect_uris": frozenset({"https://aero.example.com/cb"}),
        "password_login": "admins",
        "provisioning": "auto",
        "username_claim": "preferred_username",
        "groups_claim": None,
        "two_factor": "aero",
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/keys",
        "signing_algorithms": frozenset({"RS256", "HS256"}),
        "discovered_at": NOW,
    }
    values.update(changes)
    return IdentityProvider(**values)


def claims(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "subject-1",
        "aud": CLIENT,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 3600,
        "nonce": NONCE,
        "tid": TENANT,
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


class Keys:
    """The provider's JWKS endpoint: what it lists, and how often it was asked."""

    def __init__(self, *keys: RSAKey) -> None:
        self.keys = list(keys)
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        return httpx.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})


def party(handler: Callable[[httpx.Request], httpx.Response]) -> RelyingParty:
    return RelyingParty(timeout=1, transport=httpx.MockTransport(handler))


def verify(rp: RelyingParty, token: str, at: datetime = NOW, **changes: Any) -> dict[str, Any]:
    p = provider(**changes)
    return rp.verify_id_token(token, p, stored_metadata(p), secret_hash(NONCE), at)


def signed(key: Any = KEY, alg: str = "RS256", **changes: Any) -> str:
    header = {"alg": alg}
    if isinstance(key, RSAKey):
        header["kid"] = str(key.kid)
    return jwt.encode(header, claims(**changes), key, algorithms=[alg])


def reason(call: Callable[[], Any]) -> str:
    with pytest.raises(InvalidOidcResponseError) as refused:
        call()
    return refused.value.reason


def test_a_token_passing_every_check_gives_its_claims() -> None:
    rp = party(Keys(KEY).handler)
    assert verify(rp, signed())["sub"] == "subject-1"


def test_none_and_hmac_are_never_accepted_even_when_the_provider_lists_them() -> None:
    rp = party(Keys(KEY).handler)
    hmac_key = OctKey.import_key(b"the client secret, known to us too")
    assert reason(lambda: verify(rp, signed(hmac_key, "HS256"))) == "algorithm_not_allowed"
    unsigned = signed().rsplit(".", 1)[0].split(".", 1)[1]
    none = f"eyJhbGciOiJub25lIn0.{unsigned}."
    assert reason(lambda: verify(rp, none)) == "algorithm_not_allowed"


def test_an_algorithm_the_provider_does_not_list_is_refused() -> None:
    rs384 = RSAKey.generate_key(2048, parameters={"kid": "k384", "use": "sig"})
    rp = party(Keys(KEY, rs384).handler)
    token = signed(rs384, alg="RS384")
    assert reason(lambda: verify(rp, token, signing_algorithms=frozenset({"RS256"}))) == (
        "algorithm_not_allowed"
    )


def test_a_forged_signature_is_refused() -> None:
    rp = party(Keys(KEY).handler)
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    assert reason(lambda: verify(rp, signed(other))) == "bad_signature"


def test_issuer_audience_and_authorized_party() -> None:
    rp = party(Keys(KEY).handler)
    assert reason(lambda: verify(rp, signed(iss=f"{ISSUER}/"))) == "wrong_issuer"
    assert reason(lambda: verify(rp, signed(aud="another-client"))) == "wrong_audience"
    several = ["another-client", CLIENT]
    assert reason(lambda: verify(rp, signed(aud=several))) == "wrong_authorized_party"
    assert reason(lambda: verify(rp, signed(aud=CLIENT, azp="x"))) == "wrong_authorized_party"
    assert verify(rp, signed(aud=several, azp=CLIENT))["sub"] == "subject-1"


def test_times_hold_within_two_minutes_of_skew() -> None:
    rp = party(Keys(KEY).handler)
    exp = int(NOW.timestamp()) + 60
    assert verify(rp, signed(exp=exp), NOW + timedelta(seconds=179))
    assert reason(lambda: verify(rp, signed(exp=exp), NOW + timedelta(seconds=181))) == (
        "token_expired"
    )
    later = int(NOW.timestamp()) + 150
    assert reason(lambda: verify(rp, signed(nbf=later))) == "not_yet_valid"
    assert reason(lambda: verify(rp, signed(iat=later))) == "issued_in_future"
    assert verify(rp, signed(iat=int(NOW.timestamp()) + 110))
    assert reason(lambda: verify(rp, signed(exp=None))) == "missing_claim"


def test_nonce_and_entra_tenant() -> None:
    rp = party(Keys(KEY).handler)
    assert reason(lambda: verify(rp, signed(nonce="another"))) == "wrong_nonce"
    assert reason(lambda: verify(rp, signed(nonce=None))) == "wrong_nonce"
    assert reason(lambda: verify(rp, signed(tid="another-tenant"))) == "wrong_tenant"
    assert reason(lambda: verify(rp, signed(tid=None))) == "wrong_tenant"
    # Not an Entra issuer: no tid to check.
    plain = "https://idp.example.com"
    assert verify(rp, signed(iss=plain, tid=None), issuer=plain)


def test_keys_are_cached_and_fetched_again_once_for_an_unknown_kid() -> None:
    keys = Keys(KEY)
    rp = party(keys.handler)
    verify(rp, signed())
    verify(rp, signed())
    assert keys.fetches == 1

    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig"})
    keys.keys.insert(0, rotated)
    assert verify(rp, signed(rotated))
    assert keys.fetches == 2
    unknown = RSAKey.generate_key(2048, parameters={"kid": "k3"})
    assert reason(lambda: verify(rp, signed(unknown))) == "unknown_key"
    assert keys.fetches == 3


def discovery(document: Any, status: int = 200) -> RelyingParty:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/.well-known/openid-configuration")
        if isinstance(document, str):
            return httpx.Response(status, text=document)
        return httpx.Response(status, json=document)

    return party(handler)


DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/keys",
    "id_token_signing_alg_values_supported": ["RS256"],
}


def test_discovery_needs_this_issuer_and_its_endpoints() -> None:
    assert discovery(DOCUMENT).discover(ISSUER).jwks_uri == f"{ISSUER}/keys"
    refused = [
        discovery(DOCUMENT, 404),
        discovery("<html>not json</html>"),
        discovery({**DOCUMENT, "issuer": "https://login.microsoftonline.com/other/v2.0"}),
        discovery({k: v for k, v in DOCUMENT.items() if k != "jwks_uri"}),
        discovery({**DOCUMENT, "id_token_signing_alg_values_supported": ["HS256", "none"]}),
    ]
    for rp in refused:
        with pytest.raises(InvalidIdentityProviderError):
            rp.discover(ISSUER)
    for rp in (discovery(DOCUMENT, 503), party(_refuse_connection), party(_time_out)):
        with pytest.raises(IdentityProviderUnavailableError):
            rp.discover(ISSUER)


def _refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def _time_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def test_endpoints_are_read_again_after_a_day_and_kept_when_that_fails() -> None:
    answers = [DOCUMENT | {"token_endpoint": f"{ISSUER}/token2"}]

    def handler(request: httpx.Request) -> httpx.Response:
        if not answers:
            return httpx.Response(503)
        return httpx.Response(200, json=answers.pop())

    rp = party(handler)
    p = provider()
    assert rp.metadata(p, NOW + timedelta(hours=23)).token_endpoint == f"{ISSUER}/token"
    assert rp.metadata(p, NOW + timedelta(days=1)).token_endpoint == f"{ISSUER}/token2"
    assert rp.metadata(p, NOW + timedelta(days=2, hours=1)).token_endpoint == f"{ISSUER}/token2"


def test_issuers_are_https_or_loopback_http_and_entra_tenants_are_read_from_the_path() -> None:
    assert valid_provider_issuer("http://127.0.0.1:8080/t/v2.0")
    assert valid_provider_issuer("http://[::1]/x")
    for bad in ("http://idp.example.com", "ftp://127.0.0.1", "https://x/?q=1", "https://"):
        with pytest.raises(InvalidIdentityProviderError):
            valid_provider_issuer(bad)
    assert entra_tenant(ISSUER) == TENANT
    assert entra_tenant("https://login.microsoftonline.com/common/v2.0") == "common"
    assert entra_tenant(f"http://127.0.0.1:9/{TENANT}/v2.0") == TENANT
    assert entra_tenant("https://accounts.google.com") is None
