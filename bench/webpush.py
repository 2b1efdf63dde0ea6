"""Web Push library choice, measured: ``python -m bench.webpush`` (docs/notifications.md).

1. CPU per push (encrypt + sign, no network), ``time.process_time`` over ``--pushes`` pushes:
   - pywebpush: ``WebPusher(subscription).encode()`` and ``Vapid.sign()`` per push, which is
     what ``webpush()`` / ``webpush_async()`` do on every call;
   - http_ece + py-vapid signing per push;
   - http_ece + py-vapid with the VAPID token cached per push service (ours, services.notifier).
2. Throughput against the fake push service (tests/integration/push_service.py) running in a
   child process without verification, so that the sender is what is measured, at
   ``--concurrency`` requests in flight: pywebpush's ``webpush_async`` on a shared aiohttp
   session, our ``WebPushSender`` (aiohttp), and the same encryption and token sent with httpx.
3. With ``DATABASE_URL`` set (``make bench`` exports it): the whole worker in a fresh database,
   ``--pushes`` jobs staged in one transaction, until every one is settled.

pywebpush comes with the bench extras (``pip install -e '.[bench]'``); the services depend on
http_ece, py-vapid and aiohttp only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from typing import Any

import aiohttp
import asyncpg
import httpx
import uvloop

from services.notifier import push_storage
from services.notifier.domain.push import (
    EndpointAllowList,
    PushHeaders,
    PushMessage,
    PushNotification,
    RetryPolicy,
    build_push,
    parse_subscription,
)
from services.notifier.push_worker import PushWorker
from services.notifier.vapid import generate, load_private_key
from services.notifier.webpush import (
    PushRequest,
    VapidSigner,
    WebPushSender,
    encrypt,
    make_session,
)
from services.runtime.lifecycle import new_id
from tests.integration.push_service import (
    BrowserSubscription,
    FakePushService,
    fresh_push_database,
)

SUBJECT = "mailto:bench@example.org"
ORIGIN = "https://fcm.googleapis.com:443"
LOOPBACK = EndpointAllowList.parse("127.0.0.1")
HEADERS = PushHeaders(ttl_s=60, urgency="high", topic=None)


def _claims() -> dict[str, object]:
    return {"sub": SUBJECT, "aud": "https://fcm.googleapis.com", "exp": int(time.time()) + 43200}


def _payload() -> bytes:
    notification = PushNotification(
        id=new_id(),
        kind="message",
        title="Alice",
        body="x" * 200,
        data={"conversation_id": "dm_a_b", "sender_id": "a", "message_id": new_id(), "count": 1},
        created_at=datetime.now(UTC),
    )
    return build_push(notification, user_id="u", unread_count=3).payload


def _cpu_us(label: str, pushes: int, push: Callable[[], object]) -> float:
    push()
    started = time.process_time()
    for _ in range(pushes):
        push()
    per_push = (time.process_time() - started) / pushes * 1e6
    print(f"  {label:<46} {per_push:8.0f} us CPU per push")  # noqa: T201
    return per_push


def measure_cpu(pushes: int) -> dict[str, float]:
    """Encrypt + sign per push, three ways."""
    from py_vapid import Vapid02
    from pywebpush import WebPusher

    private, _ = generate()
    key = load_private_key(private)
    browser = BrowserSubscription.create("https://fcm.googleapis.com/fcm/send/bench")
    info = browser.to_json()
    payload = _payload()
    vapid: Any = Vapid02.from_raw(private.encode())

    def pywebpush_push() -> object:
        return WebPusher(info).encode(payload, "aes128gcm"), vapid.sign(_claims())

    def signed_push() -> object:
        return encrypt(payload, p256dh=browser.p256dh, auth=browser.auth), vapid.sign(_claims())

    signer = VapidSigner(key, SUBJECT)

    def cached_push() -> object:
        body = encrypt(payload, p256dh=browser.p256dh, auth=browser.auth)
        return body, signer.authorization(ORIGIN, datetime.now(UTC))

    print(f"CPU per push, {pushes} pushes each:")  # noqa: T201
    return {
        "pywebpush": _cpu_us("pywebpush (encode + sign per push)", pushes, pywebpush_push),
        "http_ece_signed": _cpu_us("http_ece + py-vapid (sign per push)", pushes, signed_push),
        "http_ece_cached": _cpu_us(
            "http_ece + py-vapid (token cached per origin)", pushes, cached_push
        ),
    }


def _serve_fake(public_key: str, pipe: Pipe) -> None:
    async def serve() -> None:
        fake = FakePushService(vapid_public_key=public_key, verify=False)
        await fake.start()
        pipe.send(fake.origin)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await fake.stop()

    uvloop.run(serve())


@contextlib.contextmanager
def fake_service_process(public_key: str) -> Iterator[str]:
    """The fake push service in a child process; yields its origin."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_serve_fake, args=(public_key, child), daemon=True
    )
    process.start()
    try:
        origin: str = parent.recv()
        yield origin
    finally:
        parent.send("stop")
        process.join(10)


async def _timed(
    label: str, pushes: int, concurrency: int, send: Callable[[int], Awaitable[bool]]
) -> float:
    slots = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(index: int) -> None:
        nonlocal ok
        async with slots:
            accepted = await send(index)
        ok += accepted

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(one(index) for index in range(pushes)))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    rate = pushes / wall
    print(  # noqa: T201
        f"  {label:<46} {rate:8.0f} pushes/s  ({cpu / pushes * 1e6:.0f} us CPU per push,"
        f" {ok}/{pushes} accepted)"
    )
    return rate


async def measure_throughput(origin: str, pushes: int, concurrency: int) -> dict[str, float]:
    """pywebpush's async path against ours, same service, same concurrency."""
    from pywebpush import webpush_async

    private, _ = generate()
    key = load_private_key(private)
    browsers = [BrowserSubscription.create(f"{origin}/push/{i}") for i in range(100)]
    payload = _payload()
    print(f"Throughput against the fake push service, {concurrency} in flight:")  # noqa: T201
    results = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def pywebpush_send(index: int) -> bool:
            response = await webpush_async(
                browsers[index % 100].to_json(),
                data=payload.decode(),
                vapid_private_key=key.vapid,
                vapid_claims={"sub": SUBJECT},
                ttl=60,
                aiohttp_session=session,
            )
            return bool(getattr(response, "status", 0) == 201)

        results["pywebpush_aiohttp"] = await _timed(
            "pywebpush webpush_async (aiohttp)", pushes, concurrency, pywebpush_send
        )

    sender = WebPushSender(
        signer=VapidSigner(key, SUBJECT),
        session=make_session(max_connections=concurrency, timeout_s=10),
        timeout_s=10,
        now=lambda: datetime.now(UTC),
    )
    push_origin = LOOPBACK.check(browsers[0].endpoint)

    async def our_send(index: int) -> bool:
        browser = browsers[index % 100]
        answer = await sender.send(
            PushRequest(
                endpoint=browser.endpoint,
                origin=push_origin,
                p256dh=browser.p256dh,
                auth=browser.auth,
                payload=payload,
                headers=HEADERS,
            )
        )
        return answer.status == 201

    results["ours_aiohttp"] = await _timed(
        "WebPushSender (http_ece, py-vapid cached, aiohttp)", pushes, concurrency, our_send
    )
    await sender.aclose()

    # The same encryption and cached token, sent with httpx (the client we had first).
    signer = VapidSigner(key, SUBJECT)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:

        async def httpx_send(index: int) -> bool:
            browser = browsers[index % 100]
            response = await client.post(
                browser.endpoint,
                content=encrypt(payload, p256dh=browser.p256dh, auth=browser.auth),
                headers={
                    "TTL": "60",
                    "Urgency": "high",
                    "Content-Encoding": "aes128gcm",
                    "Authorization": signer.authorization(push_origin, datetime.now(UTC)),
                },
            )
            return response.status_code == 201

        results["httpx"] = await _timed(
            "same with httpx instead of aiohttp", pushes, concurrency, httpx_send
        )
    return results


async def measure_worker(origin: str, pushes: int, concurrency: int, admin_url: str) -> float:
    """Stage ``pushes`` jobs (one per user) in one transaction; time until all are settled."""
    private, _ = generate()
    key = load_private_key(private)
    async with fresh_push_database(admin_url) as url:
        pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
        async with pool.acquire() as conn, conn.transaction():
            now = datetime.now(UTC)
            for index in range(pushes):
                browser = BrowserSubscription.create(f"{origin}/push/{index}")
                await push_storage.subscribe(
                    conn,
                    user_id=f"u{index}",
                    subscription=parse_subscription(browser.to_json(), LOOPBACK),
                    now=now,
                )
        payload = _payload()
        sender = WebPushSender(
            signer=VapidSigner(key, SUBJECT),
            session=make_session(max_connections=concurrency, timeout_s=10),
            timeout_s=10,
            now=lambda: datetime.now(UTC),
        )
        worker = PushWorker(
            pool=pool,
            sender=sender,
            allowlist=LOOPBACK,
            retry=RetryPolicy(timedelta(seconds=1), timedelta(seconds=5), timedelta(minutes=5)),
            concurrency=concurrency,
            per_origin=concurrency,
            request_timeout_s=10,
            poll_interval_s=1,
            now=lambda: datetime.now(UTC),
            jitter=random.random,
            new_claim=new_id,
            listen_dsn=url,
        )
        task = asyncio.create_task(worker.run())
        messages = [
            PushMessage(user_id=f"u{i}", notification_id=new_id(), payload=payload, headers=HEADERS)
            for i in range(pushes)
        ]
        cpu, wall = time.process_time(), time.monotonic()
        async with pool.acquire() as conn, conn.transaction():
            await push_storage.stage_pushes(
                conn, messages, now=datetime.now(UTC), give_up_after=timedelta(minutes=5)
            )

        async def backlog() -> int:
            return int(await pool.fetchval("SELECT count(*) FROM notifier.push_jobs"))

        remaining = pushes
        while remaining:
            await asyncio.sleep(0.05)
            remaining = await backlog()
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        worker.request_stop()
        await task
        await pool.close()
    print(  # noqa: T201
        f"Worker with Postgres, {pushes} jobs staged at once, {concurrency} in flight:\n"
        f"  {'staged -> all settled':<46} {pushes / wall:8.0f} pushes/s"
        f"  ({cpu / pushes * 1e6:.0f} us CPU per push, this process: worker + bench)"
    )
    return pushes / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webpush")
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    measure_cpu(args.pushes)
    _, public = generate()
    with fake_service_process(public) as origin:
        uvloop.run(measure_throughput(origin, args.pushes, args.concurrency))
        admin_url = os.environ.get("DATABASE_URL")
        if admin_url:
            uvloop.run(measure_worker(origin, args.pushes, args.concurrency, admin_url))
        else:
            print("DATABASE_URL unset: worker measurement skipped")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
