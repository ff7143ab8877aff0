from __future__ import annotations

from django.conf import settings
from django.db import models


class LoginAudit(models.Model):
    """One row per code step, as aero-auth's audit log records each login."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    device_id = models.BigIntegerField()
    outcome = models.CharField(max_length=32)
    at = models.DateTimeField()
    client_ip = models.CharField(max_length=45, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
