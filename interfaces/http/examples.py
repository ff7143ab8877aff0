"""Examples for the OpenAPI document: every request body and every success answer.

One story runs through them, as docs/api.md tells it: the operator creates the
environment ``acme`` with its admin alice; alice creates bob in the group finance;
the policy requires 2FA of finance; bob registers an authenticator and logs in.
Tokens are shaped as the service issues them (EdDSA JWTs with the claims it
writes), their signatures made up. tests/http/test_openapi.py validates each
example against its schema.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.rules import user_id
from domain.totp import provisioning_uri
from projections.api import AuditEntry
from projections.export import csv_lines, entry_json, jsonl_lines

# An OpenAPI Example Object by name: {"summary": ..., "value": ...}.
Examples = dict[str, dict[str, Any]]

ENV = "acme"
ISSUER = "BizzStream Aero"
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
# RFC 8037's example Ed25519 public key, and its RFC 7638 thumbprint as the key id.
_PUBLIC_KEY = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}


def example(value: Any, summary: str) -> dict[str, Any]:
    return {"summary": summary, "value": value}


def one(value: Any, summary: str, name: str = "example") -> Examples:
    return {name: example(value, summary)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(typ: str, claims: dict[str, Any]) -> str:
    header = {"alg": "EdDSA", "kid": _KID, "typ": typ}
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    # 64 bytes, as an Ed25519 signature has; made up, so no example token is ever valid.
    return f"{signing_input}.{_b64(hashlib.sha512(signing_input.encode()).digest())}"


_KID = _b64(hashlib.sha256(json.dumps(_PUBLIC_KEY, separators=(",", ":")).encode()).digest())


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


BOB_ID = str(user_id(ENV, "bob"))
ACCESS_TOKEN = _jwt(
    "at+jwt",
    {
        "iss": "aero-auth",
        "aud": "aero-auth:access",
        "sub": BOB_ID,
        "env": ENV,
        "username": "bob",
        "roles": [],
        "ver": 7,
        "iat": _epoch(NOW),
        "nbf": _epoch(NOW),
        "exp": _epoch(NOW + timedelta(hours=1)),
    },
)


def _login_token(step: str) -> str:
    return _jwt(
        "aero-login+jwt",
        {
            "iss": "aero-auth",
            "aud": "aero-auth:login",
            "sub": BOB_ID,
            "env": ENV,
            "username": "bob",
            "cid": "q3Xv0bJ7lK2sNw9eR4tYzA",
            "step": step,
            "iat": _epoch(NOW),
            "nbf": _epoch(NOW),
            "exp": _epoch(NOW + timedelta(minutes=5)),
        },
    )


SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # noqa: S105 (an example, shown in the docs)
RECOVERY_CODES = [
    "3f2a-9c41-07be-d5e8",
    "8b0d-41f7-c2a9-6e13",
    "a47c-0e92-5bd1-f368",
    "61e5-d83a-97c0-2f4b",
    "c9b2-7a16-e04d-83f5",
    "0d7e-b5c3-1a98-64f2",
    "f15a-3c8e-d260-9b74",
    "5e83-92fd-4b07-a1c6",
    "2b69-e40c-87a5-d31f",
    "946f-1d2b-c578-0ea3",
]

# ----- environments -----

CREATE_ENVIRONMENT = one(
    {
        "slug": ENV,
        "display_name": "Acme",
        "issuer": ISSUER,
        "admin": {"username": "alice", "password": "correct horse battery"},
    },
    "the environment acme, with alice as its first admin",
)
ENVIRONMENT = one(
    {"slug": ENV, "display_name": "Acme", "issuer": ISSUER}, "the environment as created"
)

# ----- policy -----

_FINANCE_POLICY = {"require_2fa": True, "groups": ["finance"]}
SET_POLICY = {
    "groups": example(_FINANCE_POLICY, "2FA for the members of finance"),
    "everyone": example({"require_2fa": True, "groups": []}, "2FA for every user"),
    "nobody": example({"require_2fa": False, "groups": []}, "2FA required of nobody"),
}
POLICY = one(_FINANCE_POLICY, "2FA is required of the members of finance")

# ----- users -----


def _user(
    username: str = "bob",
    *,
    groups: list[str] | None = None,
    roles: list[str] | None = None,
    required: bool = True,
    registered: bool = False,
    locked_until: str | None = None,
    identity: dict[str, str] | None = None,
    listed: bool = False,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "username": username,
        "groups": ["finance"] if groups is None else groups,
        "roles": roles or [],
        "two_factor": {
            "required": required,
            "registered": registered,
            "locked_until": locked_until,
            "disabled": False,
        },
    }
    if not listed:  # the users list leaves `identity` out
        view["identity"] = identity
    return view


CREATE_USER = one(
    {"username": "bob", "password": "plum tractor sunrise", "groups": ["finance"], "roles": []},
    "bob, in the group finance, without roles",
)
USER_CREATED = one(_user(), "bob: 2FA required by the policy, no authenticator yet")
USER = {
    "registered": example(
        _user(registered=True), "bob: 2FA required and an authenticator registered"
    ),
    "locked": example(
        _user(registered=True, locked_until="2026-11-28T10:05:00Z"),
        "bob's code step locked after five wrong codes in a row",
    ),
}
USERS = one(
    {
        "users": [
            _user("alice", groups=[], roles=["admin", "auditor"], required=False, listed=True),
            _user("bob", registered=True, listed=True),
        ],
        "next_cursor": None,
    },
    "the last (here the only) page",
)
CHANGE_GROUPS = one({"groups": ["finance", "sales"]}, "bob is in finance and sales")
GROUPS_CHANGED = one(
    _user(groups=["finance", "sales"], registered=True), "bob's groups, sorted"
)
CHANGE_ROLES = one({"roles": ["auditor"]}, "bob may read the audit log")
ROLES_CHANGED = one(_user(roles=["auditor"], registered=True), "bob with the role auditor")
SET_PASSWORD = one({"password": "violet canyon lantern"}, "a new password for bob")
PASSWORD_SET = one(_user(registered=True), "bob; his logins and access tokens have ended")
RESET_TWO_FACTOR = one({"reason": "lost phone, ticket 4711"}, "why, for the audit log")
TWO_FACTOR_RESET = one(
    _user(), "bob without an authenticator: his next login registers one again"
)

# ----- login -----

LOGIN = one({"username": "bob", "password": "plum tractor sunrise"}, "bob's password step")
LOGIN_STEP = {
    "authenticated": example(
        {"status": "authenticated", "access_token": ACCESS_TOKEN, "expires_in": 3600},
        "2FA neither required nor registered: the login is complete",
    ),
    "two_factor_required": example(
        {
            "status": "two_factor_required",
            "login_token": _login_token("two_factor"),
            "expires_in": 300,
        },
        "an authenticator is registered: send its code (or a recovery code) next",
    ),
    "two_factor_registration_required": example(
        {
            "status": "two_factor_registration_required",
            "login_token": _login_token("registration"),
            "expires_in": 300,
        },
        "2FA is required and no authenticator is registered: register one next",
    ),
}
_QR_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="148" height="148" class="segno">'
    "<title>Scan with your authenticator app</title>"
    '<path transform="scale(4)" stroke="#000" d="M4 4.5h7m2 0h1m1 0h3m1 0h1m3 0h7"/></svg>'
)
REGISTRATION = one(
    {
        "secret": SECRET,
        "otpauth_uri": provisioning_uri(SECRET, "bob", ISSUER),
        "qr_code_svg": _QR_SVG,
    },
    "the secret as text, as an otpauth URI and as a QR code (shortened here)",
)
CODE = one({"code": "492039"}, "the six digits the authenticator app shows")
AUTHENTICATED = one(
    {"status": "authenticated", "access_token": ACCESS_TOKEN, "expires_in": 3600},
    "the login is complete",
)
REGISTERED = one(
    {
        "status": "authenticated",
        "access_token": ACCESS_TOKEN,
        "expires_in": 3600,
        "recovery_codes": RECOVERY_CODES,
    },
    "the authenticator is registered; the recovery codes are shown this once",
)
RECOVERY_CODE = {
    "dashed": example({"recovery_code": "3f2a-9c41-07be-d5e8"}, "as shown"),
    "compact": example({"recovery_code": "3F2A9C4107BED5E8"}, "either case, without dashes"),
}

# ----- self -----

ME = one(_user(registered=True), "the caller")
CHANGE_OWN_PASSWORD = one(
    {"current_password": "plum tractor sunrise", "new_password": "violet canyon lantern"},
    "bob proves his password and picks a new one",
)
RECOVERY_CODES_ISSUED = one(
    {"recovery_codes": RECOVERY_CODES}, "ten new codes; the previous ones stop working"
)

# ----- audit -----


def _entry(position: int, seconds: int, type: str, outcome: str, **details: Any) -> AuditEntry:
    return AuditEntry(
        position=position,
        occurred_at=NOW + timedelta(seconds=seconds),
        type=type,
        environment=ENV,
        username="bob",
        actor="bob",
        outcome=outcome,
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        details=details,
    )


_LOGIN = [
    _entry(1041, 0, "login_password_succeeded", "success", next_step="two_factor"),
    _entry(1042, 9, "two_factor_failed", "failure", kind="totp", reason="wrong"),
    _entry(1043, 31, "two_factor_succeeded", "success", kind="totp"),
    _entry(1044, 31, "login_succeeded", "success", method="totp"),
]
_ENTRIES = [entry_json(entry) for entry in _LOGIN]
AUDIT_PAGE = {
    "more": example(
        {"entries": _ENTRIES[:2], "next_cursor": "eyJwIjoxMDQyfQ"},
        "a page of two (limit=2); pass next_cursor as cursor for the next",
    ),
    "last": example({"entries": _ENTRIES[2:], "next_cursor": None}, "the last page"),
}
# The exports' own formatters write them: the examples are what a client receives.
AUDIT_CSV = "".join(csv_lines(_LOGIN))
AUDIT_JSONL = "".join(jsonl_lines(_LOGIN))
HISTORY = one({"entries": _ENTRIES}, "everything that happened to bob, oldest first")

# ----- token introspection -----

INTROSPECT_FORM = one({"token": ACCESS_TOKEN}, "RFC 7662: form-encoded")
INTROSPECT_JSON = one(
    {"token": ACCESS_TOKEN, "token_type_hint": "access_token"}, "the same, as JSON"
)
INTROSPECTION = {
    "active": example(
        {
            "active": True,
            "sub": BOB_ID,
            "username": "bob",
            "env": ENV,
            "roles": [],
            "iss": "aero-auth",
            "aud": "aero-auth:access",
            "iat": _epoch(NOW),
            "nbf": _epoch(NOW),
            "exp": _epoch(NOW + timedelta(hours=1)),
            "token_type": "Bearer",
        },
        "a live access token of this environment",
    ),
    "inactive": example(
        {"active": False}, "any other token: expired, forged, another environment's, ended"
    ),
}

# ----- identity provider -----

_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_ENTRA = f"https://login.microsoftonline.com/{_TENANT}/v2.0"
_CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
_REDIRECT = "https://aero.example.com/ui/acme/login/oidc"
_PROVIDER = {
    "issuer": _ENTRA,
    "client_id": _CLIENT_ID,
    "display_name": "Microsoft",
    "redirect_uris": [_REDIRECT],
    "password_login": "admins",
    "provisioning": "auto",
    "username_claim": "preferred_username",
    "groups_claim": None,
    "two_factor": "aero",
}
SET_IDENTITY_PROVIDER = {
    "connect": example(
        {**_PROVIDER, "client_secret": "Qx58Q~k3vN.Jd1rTbw0pZyXe7uHsG2mLcA9fVo_"},
        "connect the Entra tenant; only admins keep a local password",
    ),
    "change": example(
        {**_PROVIDER, "groups_claim": "groups", "two_factor": "provider"},
        "a later change keeps the stored secret: the provider's groups, its MFA",
    ),
}
IDENTITY_PROVIDER = one(
    {**_PROVIDER, "client_secret_set": True}, "the connected provider, without the secret"
)
_SUBJECT = "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"
LINK_IDENTITY = one({"subject": _SUBJECT}, "the provider's sub for bob")
IDENTITY_LINKED = one(
    _user(registered=True, identity={"issuer": _ENTRA, "subject": _SUBJECT}),
    "bob, linked to the provider's subject",
)
IDENTITY_UNLINKED = one(_user(registered=True), "bob, no longer linked")
START_FEDERATED_LOGIN = one({"redirect_uri": _REDIRECT}, "one of the provider's redirect_uris")
_STATE = "u7Ww3Lr0k9JxPzM1dV5sQe2NcYbA8hTfGi4oKj6RnE0"
FEDERATED_LOGIN = one(
    {
        "authorization_url": f"https://login.microsoftonline.com/{_TENANT}/oauth2/v2.0/authorize"
        f"?response_type=code&client_id={_CLIENT_ID}"
        "&redirect_uri=https%3A%2F%2Faero.example.com%2Fui%2Facme%2Flogin%2Foidc"
        f"&scope=openid+profile+email&state={_STATE}"
        "&nonce=Zt1mC0xq8vR4pN6bW2yL9sJ3kF7dH5gA1eU0oTiQ3Xc"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        "state": _STATE,
        "expires_in": 600,
    },
    "send the browser to authorization_url",
)
FEDERATED_CALLBACK = {
    "code": example(
        {
            "state": _STATE,
            "code": "0.AUYAjdFVrSaSaFHy782bbtaQ1.AgABAAIAAAD--DLA3VO7QrddgJg7WevrAgDs_wUA9P",
            "iss": _ENTRA,
        },
        "the provider sent the browser back with a code",
    ),
    "refused": example(
        {
            "state": _STATE,
            "error": "access_denied",
            "error_description": "AADSTS65004: User declined to consent.",
        },
        "the provider refused the login (answered 401 invalid_oidc_response)",
    ),
}

# ----- operations -----

HEALTH = one({"status": "ok"}, "the process answers")
READY = one({"status": "ready"}, "the store answers and the views have caught up")
_LAGGING = (
    "directory view lags 42 s behind the store (64 events; bound AERO_READY_MAX_LAG_SECONDS=30)"
)
NOT_READY = one(
    {"error": "not_ready", "detail": _LAGGING, "problems": [_LAGGING]},
    "a view lags behind the store",
)
METRICS = (
    "# HELP aero_login_steps_total Login steps by step (password, registration, two_factor, "
    "recovery) and outcome\n"
    "# TYPE aero_login_steps_total counter\n"
    'aero_login_steps_total{outcome="authenticated",step="two_factor"} 412.0\n'
    'aero_login_steps_total{outcome="invalid_code",step="two_factor"} 9.0\n'
)
JWKS = one(
    {
        "keys": [
            {**_PUBLIC_KEY, "kid": _KID, "alg": "EdDSA", "use": "sig"}
        ]
    },
    "the current signing key (a previous one follows it while its tokens may live)",
)

# ----- errors -----

# invalid_request's detail: FastAPI's list of problems, without the input.
VALIDATION_PROBLEMS = [
    {"type": "extra_forbidden", "loc": ["body", "otp"], "msg": "Extra inputs are not permitted"}
]
