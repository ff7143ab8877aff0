"""How long a login through an OpenID Connect provider takes, against the test provider.

``aero-auth serve`` over a scratch store and panva's oidc-provider on Node.js
(tests/oidc, after ``npm ci`` there), both on 127.0.0.1. Each login: the start
(state, nonce, PKCE; one event), the browser at the provider (its development login
and consent screens, driven by httpx; the provider's time, not ours), and the
callback (code exchange, ID token checks, the user's events). The first login also
provisions the user; the figures are of the logins after it, as a user logs in again.

    .venv/bin/python bench/federated_login.py --store both --logins 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The test provider's harness lives with the tests, beside bench/.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import _harness as h

from tests.oidc.harness import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, running_provider

ADMIN_PASSWORD = "correct horse battery"
ENV = f"/v1/environments/{h.ENV}"


def measure(store: h.Store, logins: int) -> None:
    with (
        running_provider(store.directory / "provider.log") as provider,
        h.aero_serve(store, 1) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        created = http.post(
            "/v1/environments",
            json={"slug": h.ENV, "display_name": "Bench", "issuer": "Bench",
                  "admin": {"username": "alice", "password": ADMIN_PASSWORD}},
            headers={"Authorization": f"Bearer {h.OPERATOR_TOKEN}"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        token = http.post(
            f"{ENV}/login", json={"username": "alice", "password": ADMIN_PASSWORD}
        ).json()["access_token"]
        connected = http.put(
            f"{ENV}/identity-provider",
            json={"issuer": provider.issuer, "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert connected.status_code == 200, connected.text
        provider.account("carol-sub", preferred_username="carol")
        starts, at_provider, callbacks, whole = [], [], [], []
        for i in range(logins + 1):
            t0 = time.perf_counter()
            started = http.post(f"{ENV}/login/oidc", json={"redirect_uri": REDIRECT_URI})
            t1 = time.perf_counter()
            answer = provider.authorize(started.json()["authorization_url"], "carol-sub")
            t2 = time.perf_counter()
            done = http.post(f"{ENV}/login/oidc/callback", json=answer)
            t3 = time.perf_counter()
            assert done.status_code == 200 and done.json()["status"] == "authenticated", done.text
            if i == 0:
                continue  # provisioning
            starts.append(t1 - t0)
            at_provider.append(t2 - t1)
            callbacks.append(t3 - t2)
            whole.append(t3 - t0)
    print(f"\n## {store.kind}: {logins} federated logins of one user, one worker")
    for name, values in [
        ("start (POST login/oidc)", starts),
        ("browser at the provider (its screens)", at_provider),
        ("callback (code exchange, ID token, events)", callbacks),
        ("whole login", whole),
    ]:
        print(
            f"{name}: p50 {h.median(values) * 1000:.1f} ms, "
            f"p90 {h.percentile(values, 90) * 1000:.1f} ms"
        )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    h.add_store_argument(parser)
    parser.add_argument("--logins", type=int, default=50)
    args = parser.parse_args()
    h.header("Federated login against the local OpenID Connect provider")
    for kind in h.stores(args.store):
        try:
            with h.scratch_store(kind) as store:
                measure(store, args.logins)
        except h.Unreachable as e:
            print(f"\n## {kind}: skipped ({e})")


if __name__ == "__main__":
    main()
