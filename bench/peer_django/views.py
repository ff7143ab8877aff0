"""The two login steps, with aero-auth's URLs, bodies and statuses (see __init__)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.core import signing
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import LoginAudit

LOGIN_SALT = "peer.login"
ACCESS_SALT = "peer.access"
LOGIN_SECONDS = 300
ACCESS_SECONDS = 3600
SIX_DIGITS = re.compile(r"[0-9]{6}\Z")


def _error(status: int, code: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": code}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


def _body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@require_POST
def password_step(request: HttpRequest, env: str) -> JsonResponse:
    if env != settings.PEER_ENVIRONMENT:
        return _error(404, "environment_not_found")
    body = _body(request)
    if (
        body is None
        or not isinstance(body.get("username"), str)
        or not isinstance(body.get("password"), str)
    ):
        return _error(422, "invalid_request")
    # ModelBackend: the user by username, then the argon2id verify (or a dummy
    # hash for an unknown user, so both take as long).
    user = authenticate(request, username=body["username"], password=body["password"])
    if user is None:
        return _error(401, "invalid_credentials")
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return _error(409, "no_authenticator")  # the benchmark's users all have one
    token = signing.dumps({"u": user.pk}, salt=LOGIN_SALT, compress=False)
    return JsonResponse(
        {"status": "two_factor_required", "login_token": token, "expires_in": LOGIN_SECONDS}
    )


@require_POST
def code_step(request: HttpRequest, env: str) -> JsonResponse:
    if env != settings.PEER_ENVIRONMENT:
        return _error(404, "environment_not_found")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        claims = signing.loads(token, salt=LOGIN_SALT, max_age=LOGIN_SECONDS)
    except signing.BadSignature:  # forged or expired (SignatureExpired is a subclass)
        return _error(401, "invalid_token")
    if scheme != "Bearer":
        return _error(401, "invalid_token")
    body = _body(request)
    if body is None or not isinstance(body.get("code"), str):
        return _error(422, "invalid_request")
    code = body["code"]
    now = timezone.now()
    with transaction.atomic():
        # The row lock makes "a time step is accepted once" hold between
        # concurrent requests; django-otp itself reads, checks and saves
        # without one. SQLite takes its write lock at BEGIN (IMMEDIATE).
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user_id=claims["u"], confirmed=True)
            .first()
        )
        if device is None:
            return _error(401, "invalid_token")
        allowed, why = device.verify_is_allowed()
        if not allowed:
            until = (why or {}).get("locked_until") or now
            wait = max(1, int((until - now).total_seconds()) + 1)
            return _error(429, "too_many_attempts", **{"Retry-After": str(wait)})
        # verify_token refuses a used step (last_t), counts a failure and saves.
        ok = bool(SIX_DIGITS.match(code)) and device.verify_token(code)
        if not ok and not SIX_DIGITS.match(code):
            device.throttle_increment()
        LoginAudit.objects.create(
            user_id=claims["u"],
            device_id=device.pk,
            outcome="login.completed" if ok else "code.failed",
            at=now,
            client_ip=request.META.get("REMOTE_ADDR", ""),
            user_agent=request.headers.get("User-Agent", "")[:256],
        )
    if not ok:
        return _error(401, "invalid_code")
    access = signing.dumps({"u": claims["u"], "k": "access"}, salt=ACCESS_SALT, compress=False)
    return JsonResponse(
        {"status": "authenticated", "access_token": access, "expires_in": ACCESS_SECONDS}
    )


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready once the database answers; names the worker, so a caller can see each one."""
    connection.ensure_connection()
    return JsonResponse({"status": "ready", "pid": os.getpid()})
