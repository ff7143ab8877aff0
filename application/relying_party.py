"""The OpenID Connect relying party: discovery, the authorization URL, the code
exchange and the ID token's checks, against any provider (Microsoft Entra ID first).

JOSE is the libraries' work, never ours: joserfc parses the ID token, checks its
signature with the provider's JWKS and its registered claims; authlib makes the
PKCE S256 challenge (RFC 7636); httpx talks to the provider, with a time-out on
every call. What the libraries do not know is checked here: which algorithms an
ID token may use, the audience as OpenID Connect Core §3.1.3.7 reads it, the
nonce, and Entra's tenant.

Caches (discovery documents, key sets) live in this process only: each worker
fills its own from the provider, and a key set is fetched again, once per
callback, when a token names a key it does not hold, which is how a provider's
key rotation reaches every worker. Nothing here has to agree between workers;
the state of a login does, and lives in the event store (domain/identity.py).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from domain.errors import (
    IdentityProviderUnavailableError,
    InvalidIdentityProviderError,
    InvalidOidcResponseError,
)
from domain.identity import IdentityProvider, ProviderMetadata, secret_hash

# Only asymmetric signatures: "none" proves nothing, and an HMAC key would be the
# client secret, which this service holds too (OpenID Connect Core §10.1).
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# OpenID Connect Discovery §3: RS256 when the document names no algorithm.
DEFAULT_ALGORITHMS = frozenset({"RS256"})
SKEW_SECONDS = 120
METADATA_MAX_AGE = timedelta(days=1)
SCOPE = "openid profile email"
USER_AGENT = "aero-auth"


def _refused(reason: str, detail: str) -> InvalidOidcResponseError:
    return InvalidOidcResponseError(reason, detail)


class RelyingParty:
    """Talks to providers for every environment of one process; thread-safe."""

    def __init__(self, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )
        self._lock = threading.Lock()
        self._keys: dict[str, KeySet] = {}
        self._metadata: dict[tuple[str, str], tuple[ProviderMetadata, datetime]] = {}

    def close(self) -> None:
        self._client.close()

    # ----- HTTP -----

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call to the provider: no answer in time, no connection, a TLS failure
        or a 5xx is the provider being unavailable (502), whatever the step."""
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise IdentityProviderUnavailableError(
                f"the identity provider did not answer within {self._timeout()} s"
            ) from None
        except httpx.HTTPError as e:
            raise IdentityProviderUnavailableError(
                f"the identity provider could not be reached ({type(e).__name__})"
            ) from None
        if response.status_code >= 500:
            raise IdentityProviderUnavailableError(
                f"the identity provider answered {response.status_code}"
            )
        return response

    def _timeout(self) -> float | None:
        return self._client.timeout.read

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    # ----- discovery -----

    def discover(self, issuer: str) -> ProviderMetadata:
        """Read ``{issuer}/.well-known/openid-configuration`` (Discovery §4)."""
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        response = self._request("GET", url, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise InvalidIdentityProviderError(
                f"{url} answered {response.status_code}, not a discovery document"
            )
        document = self._json(response)
        if not isinstance(document, dict):
            raise InvalidIdentityProviderError(f"{url} did not answer a JSON object")
        if document.get("issuer") != issuer:
            # Discovery §4.3: the issuer must be exactly the one asked about.
            raise InvalidIdentityProviderError(
                f"the discovery document names the issuer {document.get('issuer')!r}, "
                f"not {issuer!r}"
            )
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
                raise InvalidIdentityProviderError(f"the discovery document has no {name}")
            endpoints[name] = value
        listed = document.get("id_token_signing_alg_values_supported")
        algorithms = (
            frozenset(a for a in listed if isinstance(a, str))
            if isinstance(listed, list)
            else DEFAULT_ALGORITHMS
        )
        if not algorithms & ASYMMETRIC:
            raise InvalidIdentityProviderError(
                "the provider signs ID tokens with no asymmetric algorithm this service accepts"
            )
        return ProviderMetadata(
            issuer=issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            signing_algorithms=algorithms,
        )

    def metadata(self, provider: IdentityProvider, now: datetime) -> ProviderMetadata:
        """The endpoints read when the provider was connected, read again at most daily.

        When the provider cannot be read, the last document known stays in use: a
        login should not fail because a refresh did.
        """
        key = (provider.issuer, provider.connection_id)
        with self._lock:
            known = self._metadata.get(key)
        if known is None:
            known = (stored_metadata(provider), provider.discovered_at)
        metadata, read_at = known
        if now - read_at >= METADATA_MAX_AGE:
            try:
                metadata, read_at = self.discover(provider.issuer), now
            except (IdentityProviderUnavailableError, InvalidIdentityProviderError):
                read_at = now
        with self._lock:
            self._metadata[key] = (metadata, read_at)
        return metadata

    # ----- the authorization request -----

    @staticmethod
    def authorization_url(
        metadata: ProviderMetadata,
        client_id: str,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
    ) -> str:
        """The authorization code flow's request (Core §3.1.2.1) with PKCE S256."""
        parameters = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        parts = urlsplit(metadata.authorization_endpoint)
        query = f"{parts.query}&{urlencode(parameters)}" if parts.query else urlencode(parameters)
        return urlunsplit(parts._replace(query=query))

    # ----- the callback -----

    def exchange_code(
        self,
        metadata: ProviderMetadata,
        client_id: str,
        client_secret: str,
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> str:
        """The code for tokens at the token endpoint (``client_secret_post``); the ID token."""
        response = self._request(
            "POST",
            metadata.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "client_secret": client_secret,
                "code_verifier": code_verifier,
            },
            headers={"Accept": "application/json"},
        )
        body = self._json(response)
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            raise _refused(
                "code_refused",
                f"the identity provider refused the code ({error or response.status_code})",
            )
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str):
            raise _refused("no_id_token", "the identity provider answered without an ID token")
        return id_token

    def verify_id_token(
        self,
        id_token: str,
        provider: IdentityProvider,
        metadata: ProviderMetadata,
        nonce_hash: str,
        now: datetime,
    ) -> dict[str, Any]:
        """Every check of Core §3.1.3.7 that applies to a confidential client; the claims."""
        try:
            header = extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError):
            raise _refused("malformed_token", "the ID token is not a compact JWS") from None
        algorithm = header.get("alg")
        allowed = metadata.signing_algorithms & ASYMMETRIC
        if algorithm not in allowed:
            raise _refused(
                "algorithm_not_allowed", f"the ID token's algorithm {algorithm!r} is not accepted"
            )
        keys = self._key_set(metadata.jwks_uri, header.get("kid"))
        try:
            token = jwt.decode(id_token, keys, algorithms=[algorithm])
        except BadSignatureError:
            raise _refused("bad_signature", "the ID token's signature does not verify") from None
        except (JoseError, ValueError):
            raise _refused("malformed_token", "the ID token cannot be verified") from None
        claims = dict(token.claims)
        self._check_claims(claims, provider, nonce_hash, now)
        return claims

    def _key_set(self, jwks_uri: str, kid: Any) -> KeySet:
        """The provider's keys holding ``kid``: the cached set, else fetched again once."""
        with self._lock:
            keys = self._keys.get(jwks_uri)
        if keys is not None and _holds(keys, kid):
            return keys
        keys = self._fetch_keys(jwks_uri)
        if not _holds(keys, kid):
            raise _refused(
                "unknown_key", "the ID token is signed by a key the provider does not list"
            )
        return keys

    def _fetch_keys(self, jwks_uri: str) -> KeySet:
        response = self._request("GET", jwks_uri, headers={"Accept": "application/json"})
        document = self._json(response)
        if response.status_code != 200 or not isinstance(document, dict):
            raise IdentityProviderUnavailableError("the identity provider's key set cannot be read")
        usable = [
            key
            for key in document.get("keys", [])
            if isinstance(key, dict) and key.get("use", "sig") == "sig" and key.get("kty") != "oct"
        ]
        try:
            # An empty set is a set: every token is then signed by an unknown key.
            keys = KeySet.import_key_set({"keys": usable}) if usable else KeySet([])
        except (JoseError, ValueError):
            raise IdentityProviderUnavailableError(
                "the identity provider's key set is not valid JWKS"
            ) from None
        with self._lock:
            self._keys[jwks_uri] = keys
        return keys

    @staticmethod
    def _check_claims(
        claims: Mapping[str, Any], provider: IdentityProvider, nonce_hash: str, now: datetime
    ) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            leeway=SKEW_SECONDS,
            iss={"essential": True, "value": provider.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(dict(claims))
        except ExpiredTokenError:
            raise _refused("token_expired", "the ID token has expired") from None
        except MissingClaimError as e:
            raise _refused("missing_claim", f"the ID token lacks a claim: {e}") from None
        except InvalidClaimError as e:
            reason = {"iss": "wrong_issuer", "nbf": "not_yet_valid", "iat": "issued_in_future"}
            raise _refused(
                reason.get(getattr(e, "claim", ""), "invalid_claim"), f"the ID token: {e}"
            ) from None
        except JoseError as e:
            raise _refused("invalid_claim", f"the ID token: {e}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
            # Core §2: at most 255 ASCII characters.
            raise _refused("missing_claim", "the ID token names no valid subject")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or provider.client_id not in audiences:
            raise _refused("wrong_audience", "the ID token is not for this client")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
            raise _refused("wrong_authorized_party", "the ID token's azp is not this client")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(secret_hash(nonce), nonce_hash):
            raise _refused("wrong_nonce", "the ID token's nonce is not this login's")
        tenant = provider.entra_tenant
        if tenant is not None and claims.get("tid") != tenant:
            raise _refused("wrong_tenant", "the ID token is from another tenant")


def stored_metadata(provider: IdentityProvider) -> ProviderMetadata:
    """The discovery document as read when the provider was connected or changed."""
    return ProviderMetadata(
        issuer=provider.issuer,
        authorization_endpoint=provider.authorization_endpoint,
        token_endpoint=provider.token_endpoint,
        jwks_uri=provider.jwks_uri,
        signing_algorithms=provider.signing_algorithms,
    )


def _holds(keys: KeySet, kid: Any) -> bool:
    if kid is None:
        # A token without kid: usable only when the set leaves no choice.
        return len(list(keys)) == 1
    try:
        keys.get_by_kid(kid)
    except (ValueError, KeyError, JoseError):
        return False
    return True
