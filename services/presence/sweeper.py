"""Timers of the presence service: ended grace periods, dead gateways, old rows.

The sweeper never changes a user's presence itself: it publishes commands (``offline.due``,
expired ``connection.closed``) keyed by user, so every change is applied by the one consumer
that owns the user's partition, in order with the user's other events. Only one instance
sweeps at a time (a Postgres advisory lock); a repeat command is harmless (the rules are
idempotent).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.events import ConnectionEnded, OfflineDue
from services.presence import storage
from services.runtime.codec import EventBuilder
from services.runtime.db import Connection

log = logging.getLogger(__name__)

_LOCK_KEY = int.from_bytes(hashlib.sha256(b"presence.sweeper").digest()[:8], "big", signed=True)
_PURGE_EVERY = timedelta(hours=1)


class Sweeper:
    """Publishes the commands that time (not a client) causes.

    Args:
        pool: Postgres pool.
        producer: started producer.
        topic: presence commands topic.
        events: builds the commands (source ``/presence/<instance>``).
        grace: offline grace period.
        gateway_expiry: silence after which a gateway is dead.
        retention: how long an offline user's row is kept.
        caught_up: whether the presence consumer has read everything (no false expiry after
            a restart while heartbeats still wait in Kafka) and Kafka has answered for a whole
            expiry period (no false expiry during or right after a Kafka outage).
        now: clock, injected.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        topic: str,
        events: EventBuilder,
        grace: timedelta,
        gateway_expiry: timedelta,
        retention: timedelta,
        caught_up: Callable[[], Awaitable[bool]],
        now: Callable[[], datetime],
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._topic = topic
        self._events = events
        self._grace = grace
        self._gateway_expiry = gateway_expiry
        self._retention = retention
        self._caught_up = caught_up
        self._now = now
        self._last_purge: datetime | None = None

    async def run(self, *, interval_s: float) -> None:
        """Sweep every ``interval_s`` until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.sweep_once()
            except Exception:
                log.exception("presence sweep failed; retrying next interval")

    async def sweep_once(self) -> None:
        """One pass, if no other instance is sweeping."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                return
            try:
                await self._sweep(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)

    async def _sweep(self, conn: Connection) -> None:
        now = self._now()
        futures = []
        for user_id in await storage.users_due_offline(
            conn, older_than=now - self._grace, limit=1000
        ):
            data = OfflineDue(user_id=user_id).to_dict()
            futures.append(await self._publish(topics.OFFLINE_DUE, user_id, data, now))
        if await self._caught_up():
            for gateway_id, last_heartbeat in await storage.dead_gateways(
                conn, silent_since=now - self._gateway_expiry
            ):
                connections = await storage.gateway_connections(conn, gateway_id)
                log.warning(
                    "gateway silent; expiring its connections",
                    extra={"gateway_id": gateway_id, "connections": len(connections)},
                )
                for connection_id, user_id in connections:
                    closed = ConnectionEnded(
                        user_id=user_id,
                        connection_id=connection_id,
                        gateway_id=gateway_id,
                        expired=True,
                        last_seen=last_heartbeat,
                    )
                    futures.append(
                        await self._publish(
                            topics.CONNECTION_CLOSED, user_id, closed.to_dict(), now
                        )
                    )
                await asyncio.gather(*futures)
                futures = []
                await storage.forget_gateway(conn, gateway_id, last_heartbeat)
        await asyncio.gather(*futures)
        if self._last_purge is None or now - self._last_purge >= _PURGE_EVERY:
            self._last_purge = now
            purged = await storage.purge_stale_users(conn, offline_before=now - self._retention)
            if purged:
                log.info("stale presence rows purged", extra={"rows": purged})

    async def _publish(
        self, event_type: str, user_id: str, data: dict[str, object], now: datetime
    ) -> asyncio.Future[object]:
        record = self._events.record(self._topic, event_type, key=user_id, data=data, time=now)
        future: asyncio.Future[object] = await self._producer.send(
            record.topic, record.value, key=record.key
        )
        return future
