"""The load generator of the benchmarks: an asyncio HTTP client in its own process.

Reads a JSON config on stdin, prints JSON figures on stdout, with the CPU time
the generator itself spent (it shares the machine's cores with the server).
Two clients (``client``):

- ``raw`` (default): HTTP/1.1 keep-alive connections on asyncio streams over
  uvloop, one request in flight per connection; each response's status line,
  Content-Length and JSON body are read and checked like httpx's. About a
  quarter of httpx's CPU per request, which is CPU the server gets instead.
- ``httpx``: httpx.AsyncClient, as before.

Modes:

- ``full``: a whole login per iteration (password step, then the code step),
  rotating over many users; each user takes the lowest time step in the
  accepted window that it has not used yet, because a step is accepted once
  per user (SECURITY.md 5).
- ``code``: the code step alone, one prepared (username, login token) each.
- ``bare``: POST the baseline endpoint with a row id per iteration.
- ``get``: GET ``path``, for the cost of a request itself.

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
from urllib.parse import urlsplit

import httpx
import pyotp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ENV, PASSWORD, percentile, totp_secret


def usable_step(last: int | None) -> int | None:
    """The lowest step the server will still accept two seconds from now, above ``last``."""
    now = time.time()
    low = int(now + 2) // 30 - 1
    high = int(now) // 30 + 1
    step = low if last is None else max(low, last + 1)
    return step if step <= high else None


class RawResponse:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


# uvicorn closes a keep-alive connection after 5 s without a request; one idle
# that long may be closing as we send on it, so it is replaced instead
# (``idle_limit`` in the config for a server that closes sooner).
IDLE_LIMIT = 4.0


class RawClient:
    """Keep-alive HTTP/1.1 over asyncio streams: a pool of ``size`` connections."""

    def __init__(self, base_url: str, size: int, idle_limit: float = IDLE_LIMIT) -> None:
        url = urlsplit(base_url)
        self.idle_limit = idle_limit
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.size = size
        self._host_header = f"Host: {url.netloc}\r\n".encode()
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = (
            asyncio.Queue()
        )
        self._opened = 0

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self._idle.empty():
            _, writer, _ = self._idle.get_nowait()
            writer.close()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle.empty() and self._opened < self.size:
            return await self._open()
        reader, writer, last_used = await self._idle.get()
        if time.monotonic() - last_used > self.idle_limit:
            writer.close()
            self._opened -= 1
            return await self._open()
        return reader, writer

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self._opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError:
            self._opened -= 1
            raise

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> RawResponse:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        if body:
            head.append(b"Content-Type: application/json\r\n")
        head.append(f"Content-Length: {len(body)}\r\n".encode())
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode())
        head.append(b"\r\n")
        reader, writer = await self._connection()
        try:
            writer.write(b"".join(head) + body)
            status_line, _, rest = (await reader.readuntil(b"\r\n\r\n")).partition(b"\r\n")
            length = 0
            close = False
            for line in rest.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            content = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            writer.close()
            self._opened -= 1
            raise httpx.TransportError(f"{type(e).__name__}: {e}") from e
        if close:  # a server without keep-alive (gunicorn's sync workers)
            writer.close()
            self._opened -= 1
        else:
            self._idle.put_nowait((reader, writer, time.monotonic()))
        return RawResponse(int(status_line.split(b" ", 2)[1]), content)

    async def post(
        self, path: str, json: Any, headers: dict[str, str] | None = None
    ) -> RawResponse:
        return await self.request("POST", path, _json_bytes(json), headers)

    async def get(self, path: str) -> RawResponse:
        return await self.request("GET", path)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


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

    async def full(client: Any) -> bool:
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
        previous = last_step.get(name)
        last_step[name] = step
        r = await client.post(f"/v1/environments/{ENV}/login",
                              json={"username": name, "password": PASSWORD})  # fmt: skip
        if r.status_code != 200 or r.json().get("status") != "two_factor_required":
            errors[f"password step {r.status_code}: {r.text[:80]}"] += 1
            return False
        token = r.json()["login_token"]
        # The code a person would type now: a slow password step (seconds, on
        # an overloaded machine) may have let the chosen step leave the window.
        fresh = usable_step(previous)
        if fresh is not None and fresh > step and last_step[name] == step:
            step = last_step[name] = fresh
        r = await client.post(
            f"/v1/environments/{ENV}/login/two-factor",
            json={"code": totp(name).at(step * 30)},
            headers={"Authorization": f"Bearer {token}"},
        )
        if r.status_code != 200:
            errors[f"code step {r.status_code}: {r.text[:80]}"] += 1
            return False
        return True

    async def code(client: Any) -> bool | None:
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

    async def bare(client: Any) -> bool:
        row = next(ids) % int(config["rows"]) + 1
        r = await client.post("/code", json={"id": row, "code": "123456"})
        if r.status_code != 200:
            errors[f"bare {r.status_code}: {r.text[:80]}"] += 1
            return False
        return True

    async def get(client: Any) -> bool:
        r = await client.get(config["path"])
        if r.status_code != 200:
            errors[f"GET {r.status_code}: {r.text[:80]}"] += 1
            return False
        return True

    action = {"full": full, "code": code, "bare": bare, "get": get}[mode]
    ok = 0
    kind = config.get("client", "raw")
    client_cm: Any = (
        RawClient(base, concurrency, float(config.get("idle_limit", IDLE_LIMIT)))
        if kind == "raw"
        else httpx.AsyncClient(base_url=base, limits=limits, timeout=60)
    )
    async with client_cm as client:
        # Warm the connections; not counted.
        await asyncio.gather(*(client.get("/healthz") for _ in range(concurrency)))
        started = time.perf_counter()
        cpu_started = time.process_time()
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
        cpu = time.process_time() - cpu_started
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
        "cpu_seconds": cpu,
        "client": kind,
    }


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(json.load(sys.stdin)))))
