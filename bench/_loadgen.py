"""The load generator of the issue-6 benchmarks: an asyncio httpx client in its own process.

Reads a JSON config on stdin, prints JSON figures on stdout. Modes:

- ``full``: a whole login per iteration (password step, then the code step),
  rotating over many users; each user takes the lowest time step in the
  accepted window that it has not used yet, because a step is accepted once
  per user (SECURITY.md 5).
- ``code``: the code step alone, one prepared (username, login token) each.
- ``bare``: POST the baseline endpoint with a row id per iteration.

Not run directly by people: the benchmark scripts start it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ENV, PASSWORD, percentile, totp_secret


def usable_step(last: int | None) -> int | None:
    """The lowest step the server will still accept two seconds from now, above ``last``."""
    now = time.time()
    low = int(now + 2) // 30 - 1
    high = int(now) // 30 + 1
    step = low if last is None else max(low, last + 1)
    return step if step <= high else None


async def main(config: dict[str, Any]) -> dict[str, Any]:
    mode = config["mode"]
    base = config["url"]
    seconds = float(config["seconds"])
    concurrency = int(config.get("concurrency", 16))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    totps: dict[str, pyotp.TOTP] = {}
    last_step: dict[str, int] = {}
    users: collections.deque[str] = collections.deque(config.get("users", []))
    prepared: collections.deque[tuple[str, str]] = collections.deque(
        tuple(p) for p in config.get("prepared", [])
    )
    ids = iter(range(1, 1 << 62))

    def totp(name: str) -> pyotp.TOTP:
        if name not in totps:
            totps[name] = pyotp.TOTP(totp_secret(name))
        return totps[name]

    async def full(client: httpx.AsyncClient) -> bool:
        for _ in range(len(users)):
            name = users.popleft()
            users.append(name)
            step = usable_step(last_step.get(name))
            if step is not None:
                break
        else:
            errors["no user with an unused time step"] += 1
            await asyncio.sleep(0.05)
            return False
        last_step[name] = step
        r = await client.post(f"/v1/environments/{ENV}/login",
                              json={"username": name, "password": PASSWORD})  # fmt: skip
        if r.status_code != 200 or r.json().get("status") != "two_factor_required":
            errors[f"password step {r.status_code}: {r.text[:80]}"] += 1
            return False
        token = r.json()["login_token"]
        r = await client.post(
            f"/v1/environments/{ENV}/login/two-factor",
            json={"code": totp(name).at(step * 30)},
            headers={"Authorization": f"Bearer {token}"},
        )
        if r.status_code != 200:
            errors[f"code step {r.status_code}: {r.text[:80]}"] += 1
            return False
        return True

    async def code(client: httpx.AsyncClient) -> bool | None:
        if not prepared:
            return None
        name, token = prepared.popleft()
        r = await client.post(
            f"/v1/environments/{ENV}/login/two-factor",
            json={"code": totp(name).now()},
            headers={"Authorization": f"Bearer {token}"},
        )
        if r.status_code != 200:
            errors[f"code step {r.status_code}: {r.text[:80]}"] += 1
            return False
        return True

    async def bare(client: httpx.AsyncClient) -> bool:
        row = next(ids) % int(config["rows"]) + 1
        r = await client.post("/code", json={"id": row, "code": "123456"})
        if r.status_code != 200:
            errors[f"bare {r.status_code}: {r.text[:80]}"] += 1
            return False
        return True

    action = {"full": full, "code": code, "bare": bare}[mode]
    ok = 0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        # Warm the connections; not counted.
        await asyncio.gather(*(client.get("/healthz") for _ in range(concurrency)))
        started = time.perf_counter()
        deadline = started + seconds
        finished = started

        async def worker() -> None:
            nonlocal ok, finished
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    result = await action(client)
                except httpx.TransportError as e:
                    errors[f"transport: {type(e).__name__}"] += 1
                    continue
                if result is None:
                    break
                t1 = time.perf_counter()
                finished = max(finished, t1)
                if result:
                    ok += 1
                    latencies.append(t1 - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = finished - started
    return {
        "mode": mode,
        "ok": ok,
        "errors": dict(errors),
        "elapsed": elapsed,
        "rate": ok / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "concurrency": concurrency,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
