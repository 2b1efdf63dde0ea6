"""The push worker: claims due push jobs, sends them, settles the outcomes.

Loop::

    settle finished attempts (one statement) --> claim up to the free slots (SKIP LOCKED,
    each push service's free slots at most) --> one task per job: encrypt, sign, POST
    --> wait for a NOTIFY of staged jobs, wake(), a finished attempt, or the poll interval

Several workers (notifier instances) run side by side: a claim leases its jobs (``due_at``
moved past the lease), so no transaction is open while a push is on the wire, and a worker that
dies only delays its jobs by the lease. A push service that hangs holds at most
``per_origin`` of the ``concurrency`` slots, each for at most the request timeout; its other
jobs are not even claimed while it is at capacity, so other users' pushes keep going out.

Delivery is at least once: a worker that dies after a push service accepted a push and before
the outcome was settled leaves the job to be sent again after the lease (browsers show it
once more; a Topic'd push replaces its predecessor if the first is still undelivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter as Tally
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg

from services.notifier import push_storage
from services.notifier.domain.push import (
    EndpointAllowList,
    Outcome,
    RetryPolicy,
    SubscriptionRejected,
    Verdict,
    classify,
    next_attempt_at,
    parse_retry_after,
)
from services.notifier.push_metrics import PUSH_BACKLOG, PUSH_LATENCY, PUSHES, PUSHES_IN_FLIGHT
from services.notifier.push_settings import PushSettings
from services.notifier.push_storage import ClaimedJob, JobOutcome
from services.notifier.vapid import load_private_key
from services.notifier.webpush import (
    PushAnswer,
    PushRequest,
    VapidSigner,
    WebPushSender,
    make_session,
)
from services.runtime.consumer import is_retriable
from services.runtime.lifecycle import new_id
from services.runtime.metrics import ERRORS

log = logging.getLogger(__name__)


class PushSender(Protocol):
    """Sends one push and reports the answer (``webpush.WebPushSender``)."""

    async def send(self, request: PushRequest) -> PushAnswer: ...

    async def aclose(self) -> None: ...


def build_push_worker(
    settings: PushSettings,
    *,
    pool: asyncpg.Pool,
    database_url: str,
    now: Callable[[], datetime],
) -> PushWorker:
    """The worker as the notifier runs it (call inside the running event loop).

    Raises:
        ValueError: push is not configured (``settings.push_enabled`` is false).
    """
    if settings.vapid_private_key is None or settings.vapid_subject is None:
        raise ValueError("Web Push needs VAPID_PRIVATE_KEY and VAPID_SUBJECT")
    timeout_s = settings.push_request_timeout_ms / 1000
    sender = WebPushSender(
        signer=VapidSigner(
            load_private_key(settings.vapid_private_key.get_secret_value()),
            settings.vapid_subject,
        ),
        session=make_session(max_connections=settings.push_concurrency, timeout_s=timeout_s),
        timeout_s=timeout_s,
        now=now,
    )
    return PushWorker(
        pool=pool,
        sender=sender,
        allowlist=settings.endpoint_allowlist,
        retry=settings.retry_policy,
        concurrency=settings.push_concurrency,
        per_origin=settings.push_per_origin_concurrency,
        request_timeout_s=timeout_s,
        poll_interval_s=settings.push_poll_interval_ms / 1000,
        now=now,
        jitter=random.random,
        new_claim=new_id,
        listen_dsn=database_url,
    )


class PushWorker:
    """Sends staged pushes until stopped.

    Args:
        pool: the notifier's Postgres pool (claims and settlements are short transactions).
        sender: encrypts, signs and POSTs one push; closed when :meth:`run` returns.
        allowlist: endpoints are checked again before each send (the setting may have changed
            since the subscription was stored).
        retry: backoff and give-up bounds.
        concurrency: pushes in flight at once.
        per_origin: pushes in flight at once to one push service (scheme, host, port).
        request_timeout_s: the sender's bound on one request; a claim's lease outlasts it.
        poll_interval_s: how often due jobs are looked for without being woken.
        now: the clock.
        jitter: a random number in [0, 1) per retry (spreads retries of a shared outage).
        new_claim: a fresh claim token.
        listen_dsn: a Postgres URL to LISTEN on for staged jobs (None: poll and ``wake()``).
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        sender: PushSender,
        allowlist: EndpointAllowList,
        retry: RetryPolicy,
        concurrency: int,
        per_origin: int,
        request_timeout_s: float,
        poll_interval_s: float,
        now: Callable[[], datetime],
        jitter: Callable[[], float],
        new_claim: Callable[[], str],
        listen_dsn: str | None = None,
    ) -> None:
        self._pool = pool
        self._sender = sender
        self._allowlist = allowlist
        self._retry = retry
        self._concurrency = concurrency
        self._per_origin = per_origin
        self._request_timeout_s = request_timeout_s
        self._poll_interval_s = poll_interval_s
        self._now = now
        self._jitter = jitter
        self._new_claim = new_claim
        self._listen_dsn = listen_dsn
        # Long enough that a live worker always settles before its lease ends (a request is
        # bounded by the timeout; settling retries while Postgres is away).
        self._lease = timedelta(seconds=max(60.0, 3 * request_timeout_s))
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: Tally[str] = Tally()
        self._outcomes: list[JobOutcome] = []
        self._backlog_checked_at: datetime | None = None

    def wake(self) -> None:
        """Look for due jobs now (the notifier may call it after committing staged pushes)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop claiming; :meth:`run` returns after in-flight pushes are settled."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Claim, send and settle until :meth:`request_stop`."""
        listener = None
        if self._listen_dsn is not None:
            listener = asyncio.create_task(self._listen(self._listen_dsn), name="push-listen")
        try:
            while not self._stopping:
                self._wake.clear()
                await self._settle()
                if await self._claim_and_send():
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await self._drain()
            await self._sender.aclose()

    async def _drain(self) -> None:
        """Wait for in-flight pushes (each bounded by the request timeout), then settle."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._request_timeout_s + 1)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await self._settle()

    async def _settle(self) -> None:
        """Write finished attempts' outcomes; on a database failure keep them for next time."""
        outcomes, self._outcomes = self._outcomes, []
        try:
            if outcomes:
                async with self._pool.acquire() as conn:
                    await push_storage.settle_jobs(conn, outcomes)
            await self._update_backlog()
        except Exception as exc:
            if not is_retriable(exc):
                raise
            self._outcomes[:0] = outcomes
            ERRORS.labels("push_settle_retry").inc()
            log.warning("settling push outcomes failed; retrying", exc_info=True)

    async def _update_backlog(self) -> None:
        now = self._now()
        interval = timedelta(seconds=self._poll_interval_s)
        if self._backlog_checked_at is None or now - self._backlog_checked_at >= interval:
            self._backlog_checked_at = now
            async with self._pool.acquire() as conn:
                PUSH_BACKLOG.set(await push_storage.job_backlog(conn))

    async def _claim_and_send(self) -> bool:
        """Claim jobs for the free slots and start sending them.

        Returns:
            True when every free slot was filled (more jobs may be due right away).
        """
        free = self._concurrency - len(self._tasks)
        if free <= 0:
            return False
        now = self._now()
        try:
            async with self._pool.acquire() as conn:
                jobs = await push_storage.claim_jobs(
                    conn,
                    now=now,
                    limit=free,
                    lease=self._lease,
                    claim=self._new_claim(),
                    in_flight=self._in_flight,
                    per_origin=self._per_origin,
                )
        except Exception as exc:
            if not is_retriable(exc):
                raise
            ERRORS.labels("push_claim_retry").inc()
            log.warning("claiming push jobs failed; retrying", exc_info=True)
            return False
        for job in jobs:
            self._start(job, now)
        return len(jobs) == free

    def _start(self, job: ClaimedJob, now: datetime) -> None:
        if now >= job.deadline:
            self._finish(job, Verdict(Outcome.RETRY, "deadline"), None, now)
            return
        if self._in_flight[job.origin] >= self._per_origin:
            # The claim fills free slots only; this guards the bound should that ever slip.
            due = now + timedelta(seconds=self._poll_interval_s)
            self._outcomes.append(JobOutcome(job=job, settlement="defer", due_at=due))
            return
        try:
            self._allowlist.check(job.endpoint)
        except SubscriptionRejected:
            self._finish(job, Verdict(Outcome.FAILED, "endpoint_refused"), None, now)
            return
        self._in_flight[job.origin] += 1
        PUSHES_IN_FLIGHT.inc()
        task = asyncio.create_task(self._send(job), name="push-send")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, job: ClaimedJob) -> None:
        request = PushRequest(
            endpoint=job.endpoint,
            origin=job.origin,
            p256dh=job.p256dh,
            auth=job.auth,
            payload=job.payload,
            headers=job.headers,
        )
        try:
            answer = await self._sender.send(request)
            verdict = classify(answer.status, answer.error)
        except Exception:
            # Our bug, not the push service's: trying again would fail the same way.
            log.exception("push send failed unexpectedly", extra={"job_id": job.id})
            ERRORS.labels("push_internal").inc()
            answer, verdict = PushAnswer(status=None), Verdict(Outcome.FAILED, "internal")
        finally:
            self._in_flight[job.origin] -= 1
            if self._in_flight[job.origin] <= 0:
                del self._in_flight[job.origin]
            PUSHES_IN_FLIGHT.dec()
            self._wake.set()
        self._finish(job, verdict, answer.retry_after, self._now())

    def _finish(
        self, job: ClaimedJob, verdict: Verdict, retry_after: str | None, now: datetime
    ) -> None:
        """Turn an attempt's verdict into a settlement and count it."""
        if verdict.outcome is Outcome.DELIVERED:
            PUSH_LATENCY.observe(max((now - job.staged_at).total_seconds(), 0.0))
            self._count(verdict)
            self._outcomes.append(JobOutcome(job=job, settlement="done"))
        elif verdict.outcome is Outcome.GONE:
            self._count(verdict)
            self._outcomes.append(JobOutcome(job=job, settlement="gone"))
        elif verdict.outcome is Outcome.FAILED:
            self._count(verdict)
            self._outcomes.append(JobOutcome(job=job, settlement="done"))
        else:
            due = next_attempt_at(
                self._retry,
                attempts=job.attempts + 1,
                now=now,
                deadline=job.deadline,
                jitter=self._jitter(),
                retry_after=parse_retry_after(retry_after, now),
            )
            if due is None:
                PUSHES.labels("given_up", verdict.reason).inc()
                self._outcomes.append(JobOutcome(job=job, settlement="done"))
            else:
                self._count(verdict)
                self._outcomes.append(JobOutcome(job=job, settlement="retry", due_at=due))

    @staticmethod
    def _count(verdict: Verdict) -> None:
        PUSHES.labels(verdict.outcome.value, verdict.reason).inc()

    async def _listen(self, dsn: str) -> None:
        """LISTEN for staged jobs on a connection of its own; reconnect when it drops."""
        while True:
            try:
                await self._listen_once(dsn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("push listener lost Postgres; polling until it is back")
            await asyncio.sleep(self._poll_interval_s)

    async def _listen_once(self, dsn: str) -> None:
        """Listen until the connection drops."""
        conn = await asyncpg.connect(dsn)
        try:
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _conn: closed.set())
            await conn.add_listener(push_storage.PUSH_CHANNEL, lambda *_args: self._wake.set())
            # Jobs staged while nobody listened are due already.
            self._wake.set()
            await closed.wait()
        finally:
            await conn.close()
