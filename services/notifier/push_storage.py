"""Postgres access of Web Push: subscriptions and push jobs (schema ``notifier``).

Functions take an open connection and leave the transaction to the caller: the notifier stages
pushes in the very transaction that stores their notifications (an outbox for HTTP side
effects), and the worker claims and settles jobs in short transactions of its own, never
holding a lock while a push is on the wire. Many users' pushes are staged by one statement.

Lock order: a user's subscribe takes a transaction-scoped advisory lock on the user (so that
the 20-per-user bound is exact under concurrent subscribes), then subscription rows, then
job rows; staging, cancelling and the worker touch job rows only, and read subscriptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from services.notifier.domain.push import (
    MAX_SUBSCRIPTIONS_PER_USER,
    PushHeaders,
    PushMessage,
    PushSubscription,
    Urgency,
    latest_per_topic,
)
from services.runtime.db import Connection

SCHEMA = "notifier"
#: NOTIFY channel of staged jobs: workers LISTEN on it to wake at once (poll is the safety net).
PUSH_CHANNEL = "notifier_push_jobs"


# --- subscriptions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """What a subscribe changed.

    Attributes:
        created: the endpoint was new (else its keys and owner were updated).
        evicted: subscriptions of the user dropped to stay within the limit (least recently
            renewed first, expired ones before any other).
    """

    created: bool
    evicted: int


async def subscribe(
    conn: Connection,
    *,
    user_id: str,
    subscription: PushSubscription,
    now: datetime,
    max_per_user: int = MAX_SUBSCRIPTIONS_PER_USER,
) -> SubscribeResult:
    """Store a subscription for ``user_id``: upsert by endpoint, then keep the user's newest
    ``max_per_user``. An endpoint another user held moves to this user, and the pushes staged
    for the other user on it are dropped (they must not reach this browser).

    Run it in a transaction: the per-user lock and the eviction rely on it.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7311))", user_id)
    row = await conn.fetchrow(
        "INSERT INTO notifier.push_subscriptions"
        " (user_id, endpoint, origin, p256dh, auth, expiration_time, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
        " ON CONFLICT (endpoint) DO UPDATE SET user_id = EXCLUDED.user_id,"
        "   origin = EXCLUDED.origin, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth,"
        "   expiration_time = EXCLUDED.expiration_time, updated_at = EXCLUDED.updated_at"
        " RETURNING id, (xmax = 0) AS created",
        user_id,
        subscription.endpoint,
        subscription.origin,
        subscription.p256dh,
        subscription.auth,
        subscription.expiration_time,
        now,
    )
    assert row is not None
    evicted = await conn.fetchval(
        "WITH moved AS ("
        "   DELETE FROM notifier.push_jobs WHERE subscription_id = $2 AND user_id <> $1"
        " ), evicted AS ("
        "   DELETE FROM notifier.push_subscriptions WHERE id IN ("
        "     SELECT id FROM notifier.push_subscriptions WHERE user_id = $1"
        "     ORDER BY (expiration_time IS NOT NULL AND expiration_time <= $3),"
        "              updated_at DESC, id DESC"
        "     OFFSET $4)"
        "   RETURNING 1"
        " ) SELECT count(*) FROM evicted",
        user_id,
        row["id"],
        now,
        max_per_user,
    )
    return SubscribeResult(created=bool(row["created"]), evicted=int(evicted))


async def unsubscribe(conn: Connection, *, user_id: str, endpoint: str) -> bool:
    """Delete the caller's subscription of ``endpoint`` (its pending pushes go with it).

    Returns:
        True when the user held it; another user's endpoint is left alone (and not revealed).
    """
    deleted = await conn.fetchval(
        "DELETE FROM notifier.push_subscriptions WHERE endpoint = $1 AND user_id = $2 RETURNING id",
        endpoint,
        user_id,
    )
    return deleted is not None


async def subscription_count(conn: Connection, user_id: str) -> int:
    """How many subscriptions ``user_id`` holds."""
    count = await conn.fetchval(
        "SELECT count(*) FROM notifier.push_subscriptions WHERE user_id = $1", user_id
    )
    return int(count)


# --- staging and cancelling (in the notifier's transaction) ------------------------------------


async def stage_pushes(
    conn: Connection,
    messages: Sequence[PushMessage],
    *,
    now: datetime,
    give_up_after: timedelta,
) -> int:
    """Stage one job per (message, subscription of its user), in the caller's transaction.

    One statement whatever the number of users. A user without subscriptions gets no job. A
    notification staged again (updated in place) replaces its jobs' payload and starts them
    afresh, even one being sent right now (that send's outcome is then ignored). A message with
    a Topic replaces its user's not-yet-sent jobs of other notifications with the same Topic.
    Workers are woken by NOTIFY at commit.

    Returns:
        The number of jobs staged.
    """
    latest = latest_per_topic(messages)
    if not latest:
        return 0
    staged = await conn.fetchval(
        "WITH input AS ("
        "   SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::text[],"
        "                        $6::text[])"
        "     AS i(user_id, notification_id, payload, ttl_s, urgency, topic)"
        " ), replaced AS ("
        "   DELETE FROM notifier.push_jobs j USING input i"
        "   WHERE i.topic IS NOT NULL AND j.user_id = i.user_id AND j.topic = i.topic"
        "     AND j.notification_id <> i.notification_id"
        " ), staged AS ("
        "   INSERT INTO notifier.push_jobs (user_id, notification_id, subscription_id, payload,"
        "     ttl_s, urgency, topic, staged_at, due_at, deadline)"
        "   SELECT i.user_id, i.notification_id, s.id, i.payload, i.ttl_s, i.urgency, i.topic,"
        "          $7, $7, $8"
        "   FROM input i JOIN notifier.push_subscriptions s ON s.user_id = i.user_id"
        "   WHERE s.expiration_time IS NULL OR s.expiration_time > $7"
        "   ON CONFLICT (notification_id, subscription_id) DO UPDATE SET"
        "     payload = EXCLUDED.payload, ttl_s = EXCLUDED.ttl_s, urgency = EXCLUDED.urgency,"
        "     topic = EXCLUDED.topic, staged_at = EXCLUDED.staged_at, due_at = EXCLUDED.due_at,"
        "     deadline = EXCLUDED.deadline, attempts = 0, claim = NULL"
        "   RETURNING 1"
        " ), counted AS (SELECT count(*)::int AS n FROM staged)"
        # A NOTIFY is delivered at commit, and only then: listeners never see uncommitted jobs.
        " SELECT n FROM counted LEFT JOIN LATERAL"
        f"   (SELECT pg_notify('{PUSH_CHANNEL}', '') WHERE counted.n > 0) notified ON true",
        [message.user_id for message in latest],
        [message.notification_id for message in latest],
        [message.payload for message in latest],
        [message.headers.ttl_s for message in latest],
        [message.headers.urgency for message in latest],
        [message.headers.topic for message in latest],
        now,
        now + give_up_after,
    )
    return int(staged)


async def cancel_pushes(
    conn: Connection, *, user_id: str, notification_ids: Sequence[str] | None = None
) -> int:
    """Drop ``user_id``'s pushes not yet sent: of these notifications, or all when None
    (``notification.read`` with ``all``). A push on the wire cannot be recalled.

    Returns:
        The number of jobs dropped.
    """
    cancelled = await conn.fetchval(
        "WITH cancelled AS ("
        "   DELETE FROM notifier.push_jobs WHERE user_id = $1"
        "   AND ($2::text[] IS NULL OR notification_id = ANY($2::text[])) RETURNING 1"
        " ) SELECT count(*) FROM cancelled",
        user_id,
        None if notification_ids is None else list(notification_ids),
    )
    return int(cancelled)


# --- the worker's side -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job leased to one worker, with what sending it needs."""

    id: int
    claim: str
    user_id: str
    notification_id: str
    subscription_id: int
    endpoint: str
    origin: str
    p256dh: bytes
    auth: bytes
    payload: bytes
    headers: PushHeaders
    staged_at: datetime
    deadline: datetime
    attempts: int


async def claim_jobs(
    conn: Connection,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    claim: str,
    in_flight: Mapping[str, int],
    per_origin: int,
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs, oldest due first, at most ``per_origin`` in flight per
    push service counting ``in_flight`` (the caller's requests still awaiting answers).

    ``SKIP LOCKED`` lets several workers claim side by side; the lease (``due_at`` moved to
    ``now + lease``) keeps others off the job while it is sent outside any transaction, and
    hands it to another worker if this one dies. Push services at capacity are left out of the
    scan; among the others the oldest due jobs are looked at (four times ``limit`` of them) and
    each service's free slots filled from those.
    """
    full = [origin for origin, count in in_flight.items() if count >= per_origin]
    busy = [origin for origin, count in in_flight.items() if 0 < count < per_origin]
    rows = await conn.fetch(
        "WITH due AS ("
        "   SELECT j.id, j.due_at, s.origin FROM notifier.push_jobs j"
        "   JOIN notifier.push_subscriptions s ON s.id = j.subscription_id"
        "   WHERE j.due_at <= $1 AND s.origin <> ALL($4::text[])"
        "   ORDER BY j.due_at LIMIT $2 * 4 FOR UPDATE OF j SKIP LOCKED"
        " ), ranked AS ("
        "   SELECT due.id, due.due_at, row_number() OVER ("
        "       PARTITION BY due.origin ORDER BY due.due_at, due.id) + coalesce(b.n, 0) AS slot"
        "   FROM due LEFT JOIN unnest($6::text[], $7::int[]) AS b(origin, n) USING (origin)"
        " ), chosen AS ("
        "   SELECT id FROM ranked WHERE slot <= $8 ORDER BY due_at, id LIMIT $2"
        " )"
        " UPDATE notifier.push_jobs j SET due_at = $1 + $3::interval, claim = $5"
        " FROM chosen, notifier.push_subscriptions s"
        " WHERE j.id = chosen.id AND s.id = j.subscription_id"
        " RETURNING j.id, j.user_id, j.notification_id, j.subscription_id, s.endpoint, s.origin,"
        "   s.p256dh, s.auth, j.payload, j.ttl_s, j.urgency, j.topic, j.staged_at, j.deadline,"
        "   j.attempts",
        now,
        limit,
        lease,
        full,
        claim,
        busy,
        [in_flight[origin] for origin in busy],
        per_origin,
    )
    return [
        ClaimedJob(
            id=row["id"],
            claim=claim,
            user_id=row["user_id"],
            notification_id=row["notification_id"],
            subscription_id=row["subscription_id"],
            endpoint=row["endpoint"],
            origin=row["origin"],
            p256dh=bytes(row["p256dh"]),
            auth=bytes(row["auth"]),
            payload=bytes(row["payload"]),
            headers=PushHeaders(
                ttl_s=row["ttl_s"], urgency=_URGENCIES[row["urgency"]], topic=row["topic"]
            ),
            staged_at=row["staged_at"],
            deadline=row["deadline"],
            attempts=row["attempts"],
        )
        for row in rows
    ]


#: Urgency values as stored (a CHECK constraint keeps the column to these).
_URGENCIES: dict[str, Urgency] = {
    "very-low": "very-low",
    "low": "low",
    "normal": "normal",
    "high": "high",
}


Settlement = Literal["done", "retry", "defer", "gone"]


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How an attempt settles a claimed job.

    ``done``: delete the job (delivered, failed for good, given up); ``retry``: count a failed
    attempt and make it due at ``due_at``; ``defer``: not attempted (its push service was at
    capacity), due again at ``due_at``; ``gone``: delete the subscription and all its jobs.
    """

    job: ClaimedJob
    settlement: Settlement
    due_at: datetime | None = None


async def settle_jobs(conn: Connection, outcomes: Sequence[JobOutcome]) -> None:
    """Apply a batch of outcomes in one statement. An outcome whose job was restaged or
    cancelled since its claim changes nothing; a gone subscription is deleted in any case."""
    if not outcomes:
        return
    await conn.execute(
        "WITH o AS ("
        "   SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[],"
        "                        $5::bigint[])"
        "     AS o(id, claim, settlement, due_at, subscription_id)"
        " ), finished AS ("
        "   DELETE FROM notifier.push_jobs j USING o"
        "   WHERE j.id = o.id AND j.claim = o.claim AND o.settlement = 'done'"
        " ), rescheduled AS ("
        "   UPDATE notifier.push_jobs j SET due_at = o.due_at, claim = NULL,"
        "     attempts = j.attempts + CASE WHEN o.settlement = 'retry' THEN 1 ELSE 0 END"
        "   FROM o WHERE j.id = o.id AND j.claim = o.claim"
        "   AND o.settlement IN ('retry', 'defer')"
        " )"
        " DELETE FROM notifier.push_subscriptions s USING o"
        " WHERE s.id = o.subscription_id AND o.settlement = 'gone'",
        [outcome.job.id for outcome in outcomes],
        [outcome.job.claim for outcome in outcomes],
        [outcome.settlement for outcome in outcomes],
        [outcome.due_at for outcome in outcomes],
        [outcome.job.subscription_id for outcome in outcomes],
    )


async def job_backlog(conn: Connection) -> int:
    """Jobs staged and not settled (due, retrying, or in flight)."""
    return int(await conn.fetchval("SELECT count(*) FROM notifier.push_jobs"))
