from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class BenchArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2id with aero-auth's parameters (Django's default is m=102400, p=8)."""

    algorithm = "argon2"
    memory_cost = 19456  # KiB
    time_cost = 2
    parallelism = 1
