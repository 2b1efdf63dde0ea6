"""The chaos soak's load (tests/integration/test_chaos.py): who does what, and the ledger of
everything the system acknowledged, which the checks (chaos_checks.py) hold it to.

Users, in three roles:

- **ring** (``CHAOS_USERS``, 6): always connected, alternating between two gateways; each
  sends at ``CHAOS_RATE_PER_USER`` (1/s, exponential gaps) to a ring neighbour, to a user of
  another role or to a group it belongs to, and after some sends posts a receipt, a typing
  indicator or a presence choice. Ring users are permanent members of their groups.
- **roamers** (``CHAOS_ROAMERS``, 2): come and go (online a few seconds, then away a few
  seconds); online they read their bell (``notification.read`` by ids or all), read
  conversations (a ``read`` receipt up to the last message), and message ring users.
- **offline** (``CHAOS_OFFLINE``, 2): subscribed to Web Push, then never connected until the
  end: every notification they get is decided while they have no live connection.

Every user holds a push subscription on the fake push service (the first offline user two).
Groups: two made before the faults start, more made during the run; a group changer adds and
removes roamers and offline users. Publishers of other teams' events (kcat, both CloudEvents
bindings) send job alerts and application status changes, some twice (a publisher's retry:
the same source and id), some late (an older ``changed_at`` under a new id).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import topics
from schemas.ids import direct_conversation_id
from tests.integration.chaos_client import (
    Disconnected,
    Frame,
    NotAcked,
    Report,
    SoakClient,
    Tolerate,
    typing_before_membership,
)
from tests.integration.harness import System, seconds
from tests.integration.notifications import (
    APPLICATION_SOURCE,
    JOB_SOURCE,
    binary_record,
    job_alert,
    kcat_argv,
    status_change,
    structured_record,
)
from tests.integration.push_service import BrowserSubscription, FakePushService

RING = int(os.environ.get("CHAOS_USERS", "6"))
ROAMERS = int(os.environ.get("CHAOS_ROAMERS", "2"))
OFFLINE = int(os.environ.get("CHAOS_OFFLINE", "2"))
# Messages per second per ring user; with 6 users, 6 messages a second in all.
SEND_RATE_PER_USER = float(os.environ.get("CHAOS_RATE_PER_USER", "1"))
# Job alerts, application status changes and group changes per second, in all.
JOB_RATE = float(os.environ.get("CHAOS_JOB_RATE", "0.5"))
STATUS_RATE = float(os.environ.get("CHAOS_STATUS_RATE", "0.5"))
GROUP_CHANGE_RATE = float(os.environ.get("CHAOS_GROUP_CHANGE_RATE", "0.4"))
MAX_GROUPS = int(os.environ.get("CHAOS_MAX_GROUPS", "8"))
STATUSES = ("online", "away", "busy")
APPLICATION_FLOW = ("submitted", "viewed", "shortlisted", "interview", "offer", "hired")


@dataclass(frozen=True)
class Sent:
    """A message acknowledged to its sender."""

    sender: str
    conversation_id: str
    message_id: str
    seq: int


@dataclass
class Group:
    """A group as its changes were acknowledged: the soak is the only one changing it, one
    change at a time, so ``members`` is what chat holds once the last change was acked."""

    id: str
    admin: str
    title: str
    members: set[str]
    # Per user: how many removals were requested (a frame refused while one was may be right).
    removals: Counter[str] = field(default_factory=Counter)
    # Users whose removal was requested and not yet acknowledged.
    removing: set[str] = field(default_factory=set)

    def surely_member(self, user: str) -> Callable[[], bool]:
        """Whether ``user`` is a member for every frame sent from now until the returned
        function is called (an acked add and no removal requested in between)."""
        member = user in self.members and user not in self.removing
        removals = self.removals[user]
        return lambda: member and self.removals[user] == removals


@dataclass(frozen=True)
class JobEvent:
    """A ``job.alert.matched`` a correct publisher sent (possibly more than once)."""

    id: str
    job_id: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True)
class StatusEvent:
    """An ``application.status.changed``; ``late``: its ``changed_at`` is not after that of an
    event of the same application published before it (it must make no notification)."""

    id: str
    application_id: str
    candidate: str
    status: str
    changed_at: datetime
    late: bool


@dataclass
class Ledger:
    """Everything the system acknowledged or was sent, for the checks."""

    ring: list[str]
    roamers: list[str]
    offline: list[str]
    sent: list[Sent] = field(default_factory=list)
    # (user, conversation) -> the highest acked read receipt.
    reads: dict[tuple[str, str], int] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    mutes: set[tuple[str, str]] = field(default_factory=set)
    jobs: list[JobEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    # endpoint -> user
    subscriptions: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)
    # Users who sent notification.read (by ids or all): their bell may be read without a
    # conversation being read.
    bell_readers: set[str] = field(default_factory=set)
    # Wall-clock times (epoch seconds) of the notifier's SIGKILLs.
    notifier_kills: list[float] = field(default_factory=list)

    @property
    def users(self) -> list[str]:
        return [*self.ring, *self.roamers, *self.offline]

    @property
    def churn(self) -> list[str]:
        """Users the group changer adds and removes."""
        return [*self.roamers, *self.offline]

    def read(self, user: str, conversation_id: str, seq: int) -> None:
        key = (user, conversation_id)
        self.reads[key] = max(self.reads.get(key, 0), seq)


@dataclass
class Soak:
    """The soak's shared state: the system, its clients, its randomness, what was acked."""

    system: System
    report: Report
    rng: random.Random
    ledger: Ledger
    clients: dict[str, SoakClient]
    push: FakePushService
    # Retries of every frame stop here (generous: every retry after the last fault fits).
    deadline: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def ack(
        self, user: str, frame: Frame, tolerate: Tolerate = typing_before_membership
    ) -> Frame:
        return await self.clients[user].until_acked(frame, self.deadline, self.report, tolerate)

    async def pause(self, seconds_: float) -> bool:
        """Sleep, or less when the load stops; True when it stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds_)
        return self.stop.is_set()

    def later(self, work: Awaitable[None]) -> None:
        """Run ``work`` beside the load; :meth:`settle` waits for it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for everything started with :meth:`later`."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def guarded(self, name: str, work: Awaitable[None]) -> None:
        """Run one actor; a frame never acked is a violation (the system did not recover)."""
        try:
            await work
        except NotAcked as exc:
            self.report.violation(f"{name}: {exc}")


# --- setting up ------------------------------------------------------------------------------


async def subscribe(soak: Soak, user: str) -> BrowserSubscription:
    browser = soak.push.subscribe()
    await soak.ack(user, {"type": "push.subscribe", "subscription": browser.to_json()})
    soak.ledger.subscriptions[browser.endpoint] = user
    return browser


async def create_group(soak: Soak, admin: str, title: str, members: list[str]) -> Group | None:
    """``conversation.create`` named by a ``client_conversation_id``, resent unchanged after an
    answer that never came, as the SDK does (protocol-notes.md): every try names the same group,
    so a creation applied before its answer was lost is answered with that group, not made
    twice (the stream checks would see a second group). Returns None when the load stopped
    first."""
    frame = {
        "type": "conversation.create",
        "kind": "group",
        "title": title,
        "members": members,
        "client_conversation_id": uuid.uuid4().hex,
    }
    client = soak.clients[admin]
    while time.monotonic() < soak.deadline:
        try:
            answer: Frame | None = await client.request(frame, soak.deadline)
        except Disconnected:
            answer = None
            await client.close()
        if answer is not None and answer.get("type") == "ack":
            conversation = answer["conversation"]
            break
        if answer is not None and answer.get("code") not in ("unavailable", "rate_limited"):
            soak.report.violation(f"conversation.create answered {answer}")
            return None
        soak.report.count("group_creates_resent")
        await asyncio.sleep(0.2)
    else:
        raise NotAcked(f"{admin}: conversation.create not acked in time")
    group = Group(
        id=conversation["id"],
        admin=admin,
        title=title,
        members={member["user_id"] for member in conversation["members"]},
    )
    soak.ledger.groups[group.id] = group
    soak.report.count("groups_created")
    return group


async def sync_stream(soak: Soak, user: str, stream: str) -> list[Frame]:
    """Every frame of one of the user's streams, from the beginning, page after page."""
    frames: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        answer = await soak.ack(user, {"type": "sync", "cursor": cursor, "limit": 1000})
        frames.extend(frame for frame in answer["events"] if frame.get("stream") == stream)
        cursor = answer["cursor"]
        if not answer["has_more"]:
            return frames


async def set_up(soak: Soak) -> None:
    """Before the faults: everyone subscribes to Web Push, two groups exist, two
    conversations are muted, and the offline users leave."""
    ledger = soak.ledger
    for user in ledger.users:
        await subscribe(soak, user)
    await subscribe(soak, ledger.offline[0])
    ring, churn = ledger.ring, ledger.churn
    first = await create_group(
        soak, ring[0], f"soak-a-{uuid.uuid4().hex[:6]}", [ring[1 % RING], ring[2 % RING], *churn]
    )
    await create_group(
        soak, ring[3 % RING], f"soak-b-{uuid.uuid4().hex[:6]}", [ring[4 % RING], *churn[::2]]
    )
    assert first is not None
    mutes = [
        (ledger.offline[-1], first.id),
        (ring[2 % RING], direct_conversation_id(ring[2 % RING], ring[3 % RING])),
    ]
    for user, conversation in mutes:
        frame = {"type": "conversation.mute", "conversation_id": conversation, "muted": True}
        await soak.ack(user, frame)
        ledger.mutes.add((user, conversation))
    for user in ledger.offline:
        await soak.clients[user].close()


# --- the actors ---------------------------------------------------------------------------------


async def ring_user(soak: Soak, user: str, peers: list[str]) -> None:
    """Messages to neighbours, to roamers and offline users, and to the user's groups; then a
    receipt, a typing indicator or a presence choice, sometimes."""
    rng, ledger = soak.rng, soak.ledger
    for n in itertools.count():
        if await soak.pause(rng.expovariate(SEND_RATE_PER_USER)):
            return
        roll = rng.random()
        groups = [group.id for group in ledger.groups.values() if user in group.members]
        if roll < 0.3 and groups:
            target: Frame = {"conversation_id": rng.choice(groups)}
        elif roll < 0.45:
            target = {"to": rng.choice(ledger.churn)}
        else:
            target = {"to": rng.choice(peers)}
        send = {
            "type": "message.send",
            **target,
            "client_msg_id": f"{user}-{n}",
            "kind": "text",
            "body": f"soak {n}",
        }
        message = (await soak.ack(user, send))["message"]
        conversation = message["conversation_id"]
        ledger.sent.append(Sent(user, conversation, message["id"], message["seq"]))
        soak.report.count("messages_acked")
        soak.report.count("group_messages_acked" if "conversation_id" in target else "dms_acked")
        roll = rng.random()
        if roll < 0.3:
            status = rng.choice(["delivered", "read"])
            receipt = {
                "type": "receipt",
                "conversation_id": conversation,
                "seq": message["seq"],
                "status": status,
            }
            await soak.ack(user, receipt)
            if status == "read":
                ledger.read(user, conversation, message["seq"])
            soak.report.count("receipts_acked")
        elif roll < 0.5:
            typing = {
                "type": "typing",
                "conversation_id": conversation,
                "state": rng.choice(["start", "stop"]),
            }
            if (await soak.ack(user, typing))["type"] == "ack":
                soak.report.count("typing_acked")
        elif roll < 0.6:
            status = rng.choice(STATUSES)
            await soak.ack(user, {"type": "presence.set", "status": status})
            ledger.chosen[user] = status
            soak.report.count("presence_sets_acked")


async def roamer(soak: Soak, user: str) -> None:
    """Online a few seconds (reading the bell and conversations, messaging ring users), then
    away a few seconds, until the load stops (away)."""
    rng, client = soak.rng, soak.clients[user]
    for n in itertools.count():
        await client.ensure(soak.deadline)
        soak.report.count("roamer_visits")
        online_until = time.monotonic() + rng.uniform(2, 6)
        while time.monotonic() < online_until:
            if await soak.pause(rng.uniform(0.3, 1.0)):
                break
            roll = rng.random()
            if roll < 0.35:
                await read_bell(soak, user)
            elif roll < 0.75:
                await read_a_conversation(soak, user)
            else:
                send = {
                    "type": "message.send",
                    "to": rng.choice(soak.ledger.ring),
                    "client_msg_id": f"{user}-{n}-{rng.getrandbits(32):08x}",
                    "kind": "text",
                    "body": f"roaming {n}",
                }
                message = (await soak.ack(user, send))["message"]
                soak.ledger.sent.append(
                    Sent(user, message["conversation_id"], message["id"], message["seq"])
                )
                soak.report.count("messages_acked")
                soak.report.count("dms_acked")
        await client.close()
        if await soak.pause(rng.uniform(2, 6)):
            return


async def read_bell(soak: Soak, user: str) -> None:
    """The bell's unread notifications; read some of them by id, or all."""
    listed = await soak.ack(user, {"type": "notifications.list", "unread_only": True, "limit": 20})
    ids = [notification["id"] for notification in listed["notifications"]]
    if not ids:
        return
    if soak.rng.random() < 0.7:
        frame: Frame = {"type": "notification.read", "ids": soak.rng.sample(ids, min(3, len(ids)))}
    else:
        frame = {"type": "notification.read", "all": True}
    await soak.ack(user, frame)
    soak.ledger.bell_readers.add(user)
    soak.report.count("notification_reads_acked")


async def read_a_conversation(soak: Soak, user: str) -> None:
    """A conversation with unread messages, read up to its last message."""
    listed = await soak.ack(user, {"type": "conversations.list", "limit": 100})
    unread = [c for c in listed["conversations"] if c["unread_count"] and c["last_message"]]
    if not unread:
        return
    conversation = soak.rng.choice(unread)
    seq = conversation["last_message"]["seq"]
    group = soak.ledger.groups.get(conversation["id"])
    was_member = None if group is None else group.surely_member(user)

    def removed(frame: Frame, answer: Frame) -> str | None:
        # Listed a moment ago, but removed since: refused, as it must be.
        if was_member is not None and answer.get("code") == "forbidden" and not was_member():
            return "receipts_refused_after_removal"
        return None

    receipt = {"type": "receipt", "conversation_id": conversation["id"], "seq": seq}
    answer = await soak.ack(user, {**receipt, "status": "read"}, removed)
    if answer["type"] == "ack":
        soak.ledger.read(user, conversation["id"], seq)
        soak.report.count("receipts_acked")


async def change_groups(soak: Soak) -> None:
    """Now and then a new group (until MAX_GROUPS); otherwise a roamer or offline user added
    to a group or removed from it, one change at a time."""
    rng, ledger = soak.rng, soak.ledger
    for n in itertools.count():
        if await soak.pause(rng.expovariate(GROUP_CHANGE_RATE)):
            return
        if rng.random() < 0.15 and len(ledger.groups) < MAX_GROUPS:
            admin, *others = rng.sample(ledger.ring, min(3, len(ledger.ring)))
            members = others + rng.sample(ledger.churn, rng.randint(1, 2))
            await create_group(soak, admin, f"soak-{n}-{uuid.uuid4().hex[:6]}", members)
            continue
        group = rng.choice(list(ledger.groups.values()))
        user = rng.choice(ledger.churn)
        frame: Frame
        if user in group.members:
            group.removals[user] += 1
            group.removing.add(user)
            frame = {
                "type": "conversation.members.remove",
                "conversation_id": group.id,
                "user_id": user,
            }
            await soak.ack(group.admin, frame)
            group.removing.discard(user)
            group.members.discard(user)
            soak.report.count("group_removals_acked")
        else:
            frame = {
                "type": "conversation.members.add",
                "conversation_id": group.id,
                "user_ids": [user],
            }
            await soak.ack(group.admin, frame)
            group.members.add(user)
            soak.report.count("group_adds_acked")


# --- other teams' publishers -------------------------------------------------------------------


async def publish(
    soak: Soak, topic: str, key: str, record: tuple[bytes, list[tuple[str, str]]]
) -> None:
    """Publish one record with kcat, as a correct publisher does: until Kafka confirms it
    (each try bounded; a try that failed may still have landed, so a retry may duplicate)."""
    value, headers = record
    argv = [*kcat_argv(soak.system, topic, key=key, headers=headers)]
    argv += ["-X", f"message.timeout.ms={int(seconds(10) * 1000)}"]
    while True:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(process.communicate(value + b"\n"), seconds(20))
        except TimeoutError:
            process.kill()
            await process.wait()
        if process.returncode == 0:
            return
        soak.report.count("publisher_retries")
        if time.monotonic() > soak.deadline:
            raise NotAcked(f"kcat could not publish to {topic}")
        await asyncio.sleep(0.5)


async def publish_jobs(soak: Soak) -> None:
    """Job alerts for one to three users at a time, in either binding; some published again
    later with the same id (a publisher's retry)."""
    rng, ledger = soak.rng, soak.ledger
    for n in itertools.count():
        if await soak.pause(rng.expovariate(JOB_RATE)):
            return
        users = rng.sample(ledger.users, rng.randint(1, 3))
        event = JobEvent(
            id=uuid.uuid4().hex, job_id=f"j-{uuid.uuid4().hex[:10]}", user_ids=tuple(users)
        )
        data = job_alert(users, job_id=event.job_id)
        if n % 2:
            record = binary_record(
                topics.JOB_ALERT_MATCHED, data=data, event_id=event.id, source=JOB_SOURCE
            )
        else:
            record = structured_record(
                topics.JOB_ALERT_MATCHED, data=data, event_id=event.id, source=JOB_SOURCE
            )
        ledger.jobs.append(event)
        await publish(soak, topics.JOBS_EVENTS, event.job_id, record)
        soak.report.count("job_alerts_published")
        if rng.random() < 0.3:
            soak.later(republish(soak, topics.JOBS_EVENTS, event.job_id, record, "job_alerts"))


async def republish(
    soak: Soak, topic: str, key: str, record: tuple[bytes, list[tuple[str, str]]], what: str
) -> None:
    """The same event again after a while (a publisher retrying after a timeout)."""
    await asyncio.sleep(soak.rng.uniform(0, 8))
    await publish(soak, topic, key, record)
    soak.report.count(f"{what}_published_twice")


async def publish_statuses(soak: Soak, lane: int) -> None:
    """Applications moving through their statuses, one event at a time per application, in
    either binding; some events published again (same id), some late ones (a new id, a
    ``changed_at`` not after the latest one published)."""
    rng, ledger = soak.rng, soak.ledger
    for n in itertools.count():
        application = f"a-{lane}-{n}-{uuid.uuid4().hex[:6]}"
        candidate = rng.choice(ledger.users)
        previous: str | None = None
        latest: datetime | None = None
        for status in APPLICATION_FLOW[: rng.randint(2, len(APPLICATION_FLOW))]:
            if await soak.pause(rng.expovariate(STATUS_RATE / 2)):
                return
            changed_at = datetime.now(UTC)
            if latest is not None and changed_at <= latest:
                changed_at = latest + timedelta(milliseconds=1)
            await publish_status(soak, application, candidate, status, previous, changed_at)
            if rng.random() < 0.25 and latest is not None:
                # Late: the same moment as the latest under a new id, or before it.
                late_at = latest - timedelta(seconds=rng.choice([0, rng.uniform(0.001, 60)]))
                await publish_status(soak, application, candidate, "viewed", None, late_at)
            previous, latest = status, changed_at


async def publish_status(
    soak: Soak,
    application: str,
    candidate: str,
    status: str,
    previous: str | None,
    changed_at: datetime,
) -> None:
    """One status event, published (and perhaps published again later)."""
    ledger = soak.ledger
    late = any(
        e.application_id == application and e.changed_at >= changed_at for e in ledger.statuses
    )
    event = StatusEvent(uuid.uuid4().hex, application, candidate, status, changed_at, late)
    data: dict[str, Any] = status_change(
        candidate,
        application_id=application,
        status=status,
        previous=previous,
        changed_at=changed_at,
    )
    event_type = topics.APPLICATION_STATUS_CHANGED
    if soak.rng.random() < 0.5:
        record = binary_record(event_type, data=data, event_id=event.id, source=APPLICATION_SOURCE)
    else:
        record = structured_record(
            event_type, data=data, event_id=event.id, source=APPLICATION_SOURCE
        )
    ledger.statuses.append(event)
    await publish(soak, topics.APPLICATIONS_EVENTS, application, record)
    soak.report.count("late_statuses_published" if late else "statuses_published")
    if soak.rng.random() < 0.25:
        soak.later(republish(soak, topics.APPLICATIONS_EVENTS, application, record, "statuses"))
