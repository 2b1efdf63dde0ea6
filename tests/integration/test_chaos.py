"""A chaos soak over everything the system does: direct and group messages, group changes,
receipts, typing, presence, notifications (messages, other teams' job alerts and application
status changes, the bell's reads) and Web Push, from clients on two gateways, while a scheduler
injects one fault after another: SIGKILL and restart of chat, the notifier, presence and each
gateway; a gateway stalled (SIGSTOP, SIGCONT); Kafka and Postgres restarted cleanly and crashed
(``deploy/local/stack.py restart [--kill]``).

The load and its ledger: chaos_load.py; the faults and the supervisor that starts again a
service that stopped by itself: chaos_faults.py; the clients: chaos_client.py. Clients behave as
the protocol asks: a frame that gets no ack (connection lost, ``unavailable``, no answer in
time) is sent again, the same ``client_msg_id`` included, after reconnecting; other teams'
publishers retry until Kafka confirms (so some events arrive twice, besides those published
twice on purpose).

At the end, with the faults and the load stopped and the system settled, the invariants of
chaos_checks.py are checked from the outside (``sync``, ``conversations.list``,
``notifications.list``, the fake push service) and from the database, and presence must
converge to the truth within its documented bound: with everyone connected, each user shows
the status last acknowledged; once everyone left, everyone shows offline, and the notifier
knows them all disconnected. Finally no dead letter: every command and event came from a
correct client or publisher.

``make test`` runs a short soak (``CHAOS_DURATION_S``, default 40 s of load with a fault about
every 6 s); ``make chaos`` runs ten minutes. The counts (messages, group changes,
notifications, pushes, faults by kind, invariants checked, violations) are written to
``CHAOS_REPORT`` (default: the test logs' directory) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.integration.chaos_checks import (
    ConnectivityLog,
    check_bells,
    check_chat_streams,
    check_lists,
    check_message_notifications,
    check_messages,
    check_partner_events,
    check_pushes,
    check_timelines,
    read_world,
    wait_settled,
)
from tests.integration.chaos_client import DURATION_S, Report, SoakClient
from tests.integration.chaos_faults import (
    dlq_end_offsets,
    keep_supervising,
    schedule_faults,
    supervise,
)
from tests.integration.chaos_load import (
    OFFLINE,
    RING,
    ROAMERS,
    Ledger,
    Soak,
    change_groups,
    publish_jobs,
    publish_statuses,
    ring_user,
    roamer,
    set_up,
)
from tests.integration.harness import (
    PRESENCE_GATEWAY_EXPIRY_MS,
    PRESENCE_GRACE_MS,
    ServiceProcess,
    System,
    seconds,
    unique,
    ws_url,
)
from tests.integration.notifications import wait_connected
from tests.integration.push_service import FakePushService

#: Restarts by the soak's supervisor (it outlives the test body, so it counts apart).
SUPERVISION = Report()


def services_of(system: System, second: ServiceProcess) -> list[ServiceProcess]:
    """The processes the faults kill and the supervisor keeps up."""
    return [system.chat, system.presence, system.notifier, system.gateway, second]


@pytest.fixture
async def second_gateway(system: System) -> AsyncIterator[ServiceProcess]:
    """A second gateway; a supervisor keeps every service up while the soak runs, and the
    session's services are up again when it ends, whatever happened."""
    gateway = system.extra_gateway("gw-chaos")
    gateway.start()
    await gateway.wait_ready()
    services = services_of(system, gateway)
    supervisor = asyncio.create_task(keep_supervising(services, SUPERVISION))
    yield gateway
    supervisor.cancel()
    await asyncio.gather(supervisor, return_exceptions=True)
    await supervise(services, SUPERVISION)
    gateway.stop()


@pytest.fixture
async def push_service(system: System) -> AsyncIterator[FakePushService]:
    """Every soak user's browsers subscribe here."""
    service = FakePushService(vapid_public_key=system.vapid_public_key)
    await service.start()
    yield service
    await service.stop()


async def test_chaos_soak_keeps_every_guarantee(
    system: System, second_gateway: ServiceProcess, push_service: FakePushService
) -> None:
    seed = os.environ.get("CHAOS_SEED", uuid.uuid4().hex)
    sys.stdout.write(f"chaos seed: {seed}\n")
    ledger = Ledger(
        ring=[unique(f"chaos{n}") for n in range(RING)],
        roamers=[unique(f"roam{n}") for n in range(ROAMERS)],
        offline=[unique(f"away{n}") for n in range(OFFLINE)],
    )
    report = Report(users=len(ledger.users))
    urls = [system.ws_url, ws_url(second_gateway.port)]
    clients = {
        user: SoakClient(user, urls[i % 2 :] + urls[: i % 2]) for i, user in enumerate(ledger.users)
    }
    soak = Soak(
        system=system,
        report=report,
        rng=random.Random(seed),
        ledger=ledger,
        clients=clients,
        push=push_service,
        deadline=time.monotonic() + DURATION_S + seconds(180),
    )
    dlq_before = await dlq_end_offsets(system)
    await set_up(soak)
    for user in ledger.offline:
        await wait_connected(system, user, False)
    log = ConnectivityLog(system.database_url, ledger.users)
    stop_log = asyncio.Event()
    watching = asyncio.create_task(log.run(stop_log))

    ring = ledger.ring
    actors: list[tuple[str, Awaitable[None]]] = [
        (user, ring_user(soak, user, [ring[(i + 1) % RING], ring[i - 1]]))
        for i, user in enumerate(ring)
    ]
    actors += [(user, roamer(soak, user)) for user in ledger.roamers]
    actors += [
        ("group changes", change_groups(soak)),
        ("job alerts", publish_jobs(soak)),
        ("statuses 0", publish_statuses(soak, 0)),
        ("statuses 1", publish_statuses(soak, 1)),
    ]
    loaders = [asyncio.create_task(soak.guarded(name, work), name=name) for name, work in actors]
    stop_faults = asyncio.Event()
    scheduler = asyncio.create_task(
        schedule_faults(system, second_gateway, stop_faults, report, ledger.notifier_kills)
    )
    try:
        await asyncio.sleep(DURATION_S)
    finally:
        stop_faults.set()
        await scheduler
        soak.stop.set()
        await asyncio.gather(*loaders)
        await soak.settle()

    services = services_of(system, second_gateway)
    await supervise(services, report)
    await wait_settled(system, ledger.users, report)
    # Every push was decided before this moment, with the offline users still away.
    checked_at = time.time()
    stop_log.set()
    await watching
    await log.observe_now()
    pushes, rejected = list(push_service.received), list(push_service.rejected)

    world = await read_world(soak)
    check_timelines(world, ledger, report)
    check_chat_streams(world, ledger, report)
    check_messages(world, ledger, report)
    check_lists(world, ledger, report)
    check_bells(world, ledger, report)
    check_message_notifications(world, ledger, report)
    check_partner_events(world, ledger, report)
    check_pushes(world, ledger, report, pushes, rejected, log, checked_at)

    await check_presence(soak, services)
    dlq_after = await dlq_end_offsets(system)
    for topic, records in dlq_after.items():
        report.check(
            records == dlq_before.get(topic, 0),
            f"{topic}: {records - dlq_before.get(topic, 0)} records dead-lettered",
        )
    report.count("reconnects", sum(client.reconnects for client in clients.values()))
    report.counts.update(SUPERVISION.counts)

    path = Path(os.environ.get("CHAOS_REPORT", system.logs / "chaos-report.json"))
    write_report(path, report, seed)
    sys.stdout.write(f"chaos report ({path}): {json.dumps(report.as_dict())}\n")
    assert report.faults, "no fault was injected"
    assert not report.violations, report.violations


async def check_presence(soak: Soak, services: list[ServiceProcess]) -> None:
    """Presence converges to what users chose while everyone is connected, and to offline
    once everyone left; the notifier then knows every user disconnected."""
    users, report = soak.ledger.users, soak.report
    connection = await asyncpg.connect(soak.system.database_url)
    try:

        async def shown() -> dict[str, str]:
            rows = await connection.fetch(
                "SELECT user_id, shown FROM presence.users WHERE user_id = ANY($1)", users
            )
            return {row["user_id"]: row["shown"] for row in rows}

        async def connectivity() -> dict[str, str]:
            rows = await connection.fetch(
                "SELECT user_id, connected FROM notifier.connectivity WHERE user_id = ANY($1)",
                users,
            )
            return {row["user_id"]: str(row["connected"]) for row in rows}

        for user in users:
            await soak.clients[user].ensure(soak.deadline)
        await supervise(services, report)
        truth = {user: soak.ledger.chosen.get(user, "online") for user in users}
        await converges(report, "presence with everyone connected", shown, truth)
        await asyncio.gather(*(client.close() for client in soak.clients.values()))
        offline = dict.fromkeys(users, "offline")
        await converges(report, "presence once everyone left", shown, offline)
        away = dict.fromkeys(users, "False")
        await converges(report, "the notifier's connectivity", connectivity, away)
    finally:
        await connection.close()


def write_report(path: Path, report: Report, seed: str) -> None:
    """The counts as JSON, for docs/reliability.md and whoever runs ``make chaos``."""
    path.write_text(json.dumps({"seed": seed, **report.as_dict()}, indent=2) + "\n")


async def converges(
    report: Report,
    what: str,
    read: Callable[[], Awaitable[dict[str, str]]],
    truth: dict[str, str],
) -> None:
    """Check that what ``read`` returns becomes ``truth`` within presence's documented bound
    (grace, gateway expiry and a heartbeat), allowed three times over on a shared machine."""
    bound_s = (PRESENCE_GRACE_MS + PRESENCE_GATEWAY_EXPIRY_MS) / 1000 + 1
    deadline = time.monotonic() + seconds(3 * bound_s)
    while True:
        seen = await read()
        if seen == truth or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    wrong = {user: (seen.get(user), want) for user, want in truth.items() if seen.get(user) != want}
    report.check(not wrong, f"{what}: (shown, truth) {wrong} after {bound_s * 3:.0f} s")
