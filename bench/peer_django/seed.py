"""Create the peer's tables and the benchmark's users: ``python -m peer_django.seed``.

The same users as aero-auth's seeding (bench/_harness.py): the same names and
password, one argon2id hash computed once with the peer's hasher and shared
(verifying it costs what any login costs), and a confirmed TOTP device with
the same secret, last used two time steps ago.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_django.settings")

BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    args = parser.parse_args()

    import django

    django.setup()
    from _harness import PASSWORD, totp_secret, username
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction
    from django_otp.plugins.otp_totp.models import TOTPDevice

    call_command("migrate", verbosity=0, interactive=False)
    password_hash = make_password(PASSWORD)
    last_t = int(time.time()) // 30 - 2
    for start in range(0, args.users, BATCH):
        names = [username(i) for i in range(start, min(start + BATCH, args.users))]
        with transaction.atomic():
            users = User.objects.bulk_create(
                User(username=name, password=password_hash, is_active=True) for name in names
            )
            TOTPDevice.objects.bulk_create(
                TOTPDevice(
                    user=user,
                    name="default",
                    confirmed=True,
                    key=base64.b32decode(totp_secret(user.username)).hex(),
                    last_t=last_t,
                )
                for user in users
            )
    print(f"seeded {args.users} users, hash {password_hash.split('$', 4)[:4]}")


if __name__ == "__main__":
    main()
