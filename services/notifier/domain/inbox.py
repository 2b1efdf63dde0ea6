"""Every decision the notifier makes about users' notifications, for a batch of intents. Pure.

The adapters read and lock what a batch needs (:class:`Snapshot`), :func:`decide` walks the
batch's intents in order, and the adapters write what it returns (:class:`Decisions`) and number
its frames. "One record == a batch of one" holds by construction: a batch is a list of intents.

Rules (protocol.md, part 2; ../shared/events.md):

- **Coalescing.** A user has at most one unread ``message`` notification per conversation. A
  later message there while it is unread updates it in place (same id, newer title and body,
  ``data.count`` raised, the unread count unchanged); once it is read, the next message makes a
  new one. A message the user already has a notification for, or has read (its conversation
  seq is at or below the highest one notified or read), is a repeat and changes nothing.
  Within a batch, a notification shown again before anything else of its user's is sent once,
  in its final state: the earlier ``notification.new`` would only be overwritten (a burst of
  messages in a conversation is one frame, not one per message). With another of the user's
  frames in between, both stay: that frame's ``unread_count`` counts the earlier one.
- **Reading a conversation** (a ``read`` watermark that reaches the notification's last
  message) marks its notification read on every device and cancels a push not yet sent.
- **Preferences and mutes.** ``in_app: false`` for a kind: no notification of it is stored or
  pushed. A muted conversation makes no notification. ``push: false``: stored, not pushed.
- **Push decision.** A notification (new or updated) is pushed when push is configured, the
  kind's ``push`` is on, the user holds a subscription and has no live connection right then
  (the last connectivity fact applied). A notification read before its push left cancels it.
- **Late status.** An application status whose ``changed_at`` is not after the latest one
  applied for that application makes no notification.
- **Unread count.** Each user's count moves with the rows: +1 per notification created unread,
  -1 per notification read, 0 after ``all``; the adapters hold the user's stream row lock, so
  counts never drift (tests/integration/test_notifications_hammer.py).

Ids and the clock are passed in. Nothing here awaits or touches I/O.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from schemas.frames import KindPrefs, NotificationPrefs
from services.notifier.domain import texts

#: (user id, notification id)
NoteKey: TypeAlias = tuple[str, str]
#: (user id, conversation id)
Pair: TypeAlias = tuple[str, str]

DEFAULT_PREFS = KindPrefs()


# --- intents: what a batch asks for, in order --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked (a client frame through a gateway) and where the answer goes."""

    user_id: str
    connection_id: str
    request_id: str | None
    origin: datetime


@dataclass(frozen=True, slots=True)
class MessageArrived:
    """A message was stored in a conversation (chat's ``chat.message.created``)."""

    conversation_id: str
    message_id: str
    message_seq: int
    sender_id: str
    body: str
    member_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConversationRead:
    """A member's read watermark moved (chat's ``chat.watermark.moved`` with ``read``)."""

    user_id: str
    conversation_id: str
    up_to_seq: int


@dataclass(frozen=True, slots=True)
class JobAlert:
    """A new job matched users' saved alerts (``job.alert.matched``)."""

    job_id: str
    title: str
    company: str | None
    location: str | None
    url: str
    user_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """An application's status moved (``application.status.changed``)."""

    application_id: str
    job_id: str
    job_title: str
    candidate_id: str
    status: str
    previous_status: str | None
    changed_at: datetime
    note: str | None


@dataclass(frozen=True, slots=True)
class MarkRead:
    """``notification.read``: some ids (``None``: all)."""

    requester: Requester
    ids: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class SetPrefs:
    """``notification.prefs.set``."""

    requester: Requester
    kind: str
    in_app: bool | None
    push: bool | None


@dataclass(frozen=True, slots=True)
class Mute:
    """``conversation.mute``."""

    requester: Requester
    conversation_id: str
    muted: bool


@dataclass(frozen=True, slots=True)
class Connectivity:
    """Presence's fact: the user's first device connected, or last one went away."""

    user_id: str
    connected: bool
    changed_at: datetime


Intent: TypeAlias = (
    MessageArrived
    | ConversationRead
    | JobAlert
    | StatusChanged
    | MarkRead
    | SetPrefs
    | Mute
    | Connectivity
)


# --- state: what the adapters read and lock before deciding ----------------------------------


@dataclass(slots=True)
class Note:
    """A notification as stored; changed in place while a batch is decided.

    Attributes:
        existed: stored before this batch (written by an update, not an insert).
        changed: to be written (new, or changed by this batch).
        conversation_id: for ``message``: the conversation it coalesces.
        last_message_seq: for ``message``: the conversation seq of the latest message covered.
        count: for ``message``: how many messages it covers.
    """

    user_id: str
    id: str
    kind: str
    title: str
    body: str
    data: Mapping[str, Any]
    created_at: datetime
    read: bool
    conversation_id: str | None = None
    last_message_seq: int | None = None
    count: int = 1
    existed: bool = True
    changed: bool = False

    @property
    def key(self) -> NoteKey:
        return (self.user_id, self.id)

    def view(self) -> View:
        """What a frame or a push shows of it now."""
        return View(
            id=self.id,
            kind=self.kind,
            title=self.title,
            body=self.body,
            data=self.data,
            created_at=self.created_at,
        )


@dataclass(slots=True)
class View:
    """A notification as shown at one moment (``read`` is false: it is new or updated); never
    changed once made. Not ``frozen``, like :class:`Shown`: a frozen dataclass sets each field
    through ``object.__setattr__``, and a job alert makes one of each per recipient."""

    id: str
    kind: str
    title: str
    body: str
    data: Mapping[str, Any]
    created_at: datetime


@dataclass(slots=True)
class Snapshot:
    """What the adapters read, after locking every user's stream, for the batch's intents.

    Attributes:
        unread: each concerned user's unread count (locked).
        prefs: stored preferences (absent: the defaults).
        muted: the (user, conversation) pairs the batch concerns that are muted.
        mute_lists: every muted conversation of the users who set preferences (their answer
            carries the whole ``prefs``).
        open_messages: each pair's unread ``message`` notification.
        covered: each pair's highest conversation seq already notified or read.
        named: the notifications ``notification.read`` requests name (the user's own only).
        connectivity: the last applied fact per user: (connected, changed_at).
        subscribed: users holding at least one push subscription.
        applications: the latest ``changed_at`` applied per application.
    """

    unread: dict[str, int] = field(default_factory=dict)
    prefs: dict[str, dict[str, KindPrefs]] = field(default_factory=dict)
    muted: set[Pair] = field(default_factory=set)
    mute_lists: dict[str, list[str]] = field(default_factory=dict)
    open_messages: dict[Pair, Note] = field(default_factory=dict)
    covered: dict[Pair, int] = field(default_factory=dict)
    named: dict[NoteKey, Note] = field(default_factory=dict)
    connectivity: dict[str, tuple[bool, datetime]] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)
    applications: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Needs:
    """What the adapters must read for a batch (:func:`needs`).

    Attributes:
        users: users whose notifications may change: their streams are locked.
        pairs: (user, conversation) pairs whose message notifications and mutes matter.
        named: notifications named by reads.
        pref_users: users whose whole preferences (mutes included) are answered.
        watched: users whose connectivity, preferences and subscriptions matter.
        applications: applications whose latest status time matters.
    """

    users: frozenset[str]
    pairs: frozenset[Pair]
    named: frozenset[NoteKey]
    pref_users: frozenset[str]
    watched: frozenset[str]
    applications: frozenset[str]


def needs(intents: Iterable[Intent]) -> Needs:
    """What must be read and locked to decide ``intents``."""
    users: set[str] = set()
    pairs: set[Pair] = set()
    named: set[NoteKey] = set()
    pref_users: set[str] = set()
    watched: set[str] = set()
    applications: set[str] = set()
    for intent in intents:
        if isinstance(intent, MessageArrived):
            for user in intent.member_ids:
                if user != intent.sender_id:
                    users.add(user)
                    pairs.add((user, intent.conversation_id))
        elif isinstance(intent, ConversationRead):
            users.add(intent.user_id)
            pairs.add((intent.user_id, intent.conversation_id))
        elif isinstance(intent, JobAlert):
            users.update(intent.user_ids)
        elif isinstance(intent, StatusChanged):
            users.add(intent.candidate_id)
            applications.add(intent.application_id)
        elif isinstance(intent, MarkRead):
            users.add(intent.requester.user_id)
            named.update((intent.requester.user_id, id_) for id_ in intent.ids or ())
        elif isinstance(intent, SetPrefs):
            pref_users.add(intent.requester.user_id)
        elif isinstance(intent, Connectivity):
            watched.add(intent.user_id)
    return Needs(
        users=frozenset(users),
        pairs=frozenset(pairs),
        named=frozenset(named),
        pref_users=frozenset(pref_users),
        watched=frozenset(users | watched | pref_users),
        applications=frozenset(applications),
    )


# --- decisions: what the adapters write and send ---------------------------------------------


@dataclass(slots=True)
class Shown:
    """A ``notification.new`` for the user's devices (new, or updated in place); never
    changed once made."""

    user_id: str
    view: View
    unread_count: int


@dataclass(frozen=True, slots=True)
class MarkedRead:
    """A ``notification.read`` for the user's devices: these ids (``None``: all)."""

    user_id: str
    ids: tuple[str, ...] | None
    unread_count: int


Change: TypeAlias = Shown | MarkedRead


@dataclass(frozen=True, slots=True)
class Answer:
    """The ``ack`` of a client request (``unread_count`` and ``prefs`` as the frame needs)."""

    requester: Requester
    unread_count: int | None = None
    prefs: NotificationPrefs | None = None


@dataclass(frozen=True, slots=True)
class PushDue:
    """A push to stage: the notification as shown, and the unread count after it."""

    user_id: str
    view: View
    unread_count: int


@dataclass(slots=True)
class Decisions:
    """Everything a batch changes, final state per row, and what it sends, in order.

    Attributes:
        changes: frames for users' streams, in order (the adapters number them).
        notes: every notification to write, in its final state (``existed``: update).
        read_all: users whose unread notifications not in ``notes`` are now read (``all``).
        unread: final unread counts of the users whose count moved.
        pushes: pushes to stage (notifications unread at the end only; latest version).
        cancels: staged pushes of notifications read now.
        cancel_all: users whose staged pushes are all dropped (``all``).
        prefs: preference rows to store.
        mutes: mutes set (True) or lifted (False).
        read_marks: the highest conversation seq each pair has read.
        applications: per application, the latest status applied: (changed_at, status).
        connectivity: per user, the latest fact: (connected, changed_at).
        answers: acks to send, in order.
        created, updated: notifications by kind (metrics).
        ignored: intents or recipients that made nothing, by reason (metrics).
    """

    changes: list[Change] = field(default_factory=list)
    notes: dict[NoteKey, Note] = field(default_factory=dict)
    read_all: dict[str, datetime] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)
    pushes: dict[NoteKey, PushDue] = field(default_factory=dict)
    cancels: set[NoteKey] = field(default_factory=set)
    cancel_all: set[str] = field(default_factory=set)
    prefs: dict[tuple[str, str], KindPrefs] = field(default_factory=dict)
    mutes: dict[Pair, bool] = field(default_factory=dict)
    read_marks: dict[Pair, int] = field(default_factory=dict)
    applications: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    connectivity: dict[str, tuple[bool, datetime]] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)


def decide(
    intents: Sequence[Intent],
    snapshot: Snapshot,
    *,
    now: datetime,
    new_id: Callable[[], str],
    push_enabled: bool,
) -> Decisions:
    """Decide a batch: walk ``intents`` in order against ``snapshot``.

    Args:
        intents: the batch, in the order it is applied.
        snapshot: what the adapters read and locked for it (changed in place).
        now: the time of the batch (``created_at`` of new notifications, ``read_at``).
        new_id: makes notification ids.
        push_enabled: whether Web Push is configured at all.
    """
    return _Inbox(snapshot, now=now, new_id=new_id, push_enabled=push_enabled).run(intents)


class _Inbox:
    """The batch's working state over the snapshot; one method per intent."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        now: datetime,
        new_id: Callable[[], str],
        push_enabled: bool,
    ) -> None:
        self._s = snapshot
        self._now = now
        self._new_id = new_id
        self._push_enabled = push_enabled
        self._out = Decisions()
        # The notifications of a user this batch loaded, for ``all``; those it makes are in
        # ``_out.notes``, indexed by user only once a batch reads ``all`` (few do, and a job
        # alert makes thousands: no index kept per recipient for nothing).
        self._loaded: defaultdict[str, dict[str, Note]] = defaultdict(dict)
        for note in [*snapshot.open_messages.values(), *snapshot.named.values()]:
            self._loaded[note.user_id][note.id] = note
        self._made_by_user: defaultdict[str, list[Note]] | None = None
        # Where each user's last change is in ``changes``, which notification it showed if it
        # was a ``Shown``, and the places superseded.
        self._last_change: dict[str, tuple[int, NoteKey | None]] = {}
        self._superseded: set[int] = set()

    def run(self, intents: Sequence[Intent]) -> Decisions:
        for intent in intents:
            if isinstance(intent, MessageArrived):
                self._message(intent)
            elif isinstance(intent, ConversationRead):
                self._conversation_read(intent)
            elif isinstance(intent, JobAlert):
                self._job_alert(intent)
            elif isinstance(intent, StatusChanged):
                self._status(intent)
            elif isinstance(intent, MarkRead):
                self._mark_read(intent)
            elif isinstance(intent, SetPrefs):
                self._set_prefs(intent)
            elif isinstance(intent, Mute):
                self._mute(intent)
            else:
                self._connectivity(intent)
        if self._superseded:
            superseded = self._superseded
            self._out.changes = [c for i, c in enumerate(self._out.changes) if i not in superseded]
        return self._out

    # -- notifications made -------------------------------------------------------------------

    def _message(self, intent: MessageArrived) -> None:
        conversation = intent.conversation_id
        for user in intent.member_ids:
            if user == intent.sender_id:
                continue
            pair = (user, conversation)
            if intent.message_seq <= self._s.covered.get(pair, 0):
                self._out.ignored["repeat"] += 1
                continue
            if pair in self._s.muted:
                self._out.ignored["muted"] += 1
                continue
            if not self._prefs(user, "message").in_app:
                self._out.ignored["disabled"] += 1
                continue
            self._s.covered[pair] = intent.message_seq
            note = self._s.open_messages.get(pair)
            count = 1 if note is None else note.count + 1
            title, body = texts.message_texts(
                sender_id=intent.sender_id, body=intent.body, count=count
            )
            data = texts.message_data(
                conversation_id=conversation,
                sender_id=intent.sender_id,
                message_id=intent.message_id,
                count=count,
            )
            if note is None:
                note = self._create(user, "message", title, body, data)
                note.conversation_id = conversation
                note.last_message_seq = intent.message_seq
                self._s.open_messages[pair] = note
                self._show(note)
            else:
                note.title, note.body, note.data, note.count = title, body, data, count
                note.last_message_seq = intent.message_seq
                note.changed = True
                self._out.updated["message"] += 1
                self._show(note)

    def _job_alert(self, intent: JobAlert) -> None:
        title, body = texts.job_alert_texts(
            title=intent.title, company=intent.company, location=intent.location
        )
        # One data object for every recipient: the adapters encode it once.
        data = texts.job_alert_data(
            job_id=intent.job_id,
            url=intent.url,
            title=intent.title,
            company=intent.company,
            location=intent.location,
        )
        for user in intent.user_ids:
            if not self._prefs(user, "job_alert").in_app:
                self._out.ignored["disabled"] += 1
                continue
            self._show(self._create(user, "job_alert", title, body, data))

    def _status(self, intent: StatusChanged) -> None:
        latest = self._s.applications.get(intent.application_id)
        if latest is not None and intent.changed_at <= latest:
            self._out.ignored["late_status"] += 1
            return
        self._s.applications[intent.application_id] = intent.changed_at
        self._out.applications[intent.application_id] = (intent.changed_at, intent.status)
        user = intent.candidate_id
        if not self._prefs(user, "application_status").in_app:
            self._out.ignored["disabled"] += 1
            return
        title, body = texts.application_texts(
            job_title=intent.job_title, status=intent.status, note=intent.note
        )
        data = texts.application_data(
            application_id=intent.application_id,
            job_id=intent.job_id,
            status=intent.status,
            previous_status=intent.previous_status,
        )
        self._show(self._create(user, "application_status", title, body, data))

    def _create(self, user: str, kind: str, title: str, body: str, data: Mapping[str, Any]) -> Note:
        note = Note(
            user_id=user,
            id=self._new_id(),
            kind=kind,
            title=title,
            body=body,
            data=data,
            created_at=self._now,
            read=False,
            existed=False,
            changed=True,
        )
        if self._made_by_user is not None:
            self._made_by_user[user].append(note)
        self._out.notes[(user, note.id)] = note
        self._set_unread(user, self._unread(user) + 1)
        self._out.created[kind] += 1
        return note

    def _show(self, note: Note) -> None:
        """Tell the user's devices (new or updated) and decide its push.

        A push already due for the notification in this batch follows it to this version,
        even one that alone would not be pushed (its user came back meanwhile): the frame of
        the version it showed may be folded into this one, and a push shows a version the
        user's devices receive.
        """
        self._out.notes[note.key] = note
        unread = self._unread(note.user_id)
        view = note.view()
        last = self._last_change.get(note.user_id)
        if last is not None and last[1] == note.key:
            self._superseded.add(last[0])
        self._emit(Shown(note.user_id, view, unread), note.key)
        if note.key in self._out.pushes or self._pushes_to(note.user_id, note.kind):
            self._out.pushes[note.key] = PushDue(note.user_id, view, unread)

    def _emit(self, change: Change, shown: NoteKey | None = None) -> None:
        self._last_change[change.user_id] = (len(self._out.changes), shown)
        self._out.changes.append(change)

    def _pushes_to(self, user: str, kind: str) -> bool:
        if not self._push_enabled or user not in self._s.subscribed:
            return False
        connected, _ = self._s.connectivity.get(user, (False, self._now))
        return not connected and self._prefs(user, kind).push

    # -- notifications read -------------------------------------------------------------------

    def _conversation_read(self, intent: ConversationRead) -> None:
        pair = (intent.user_id, intent.conversation_id)
        mark = max(self._out.read_marks.get(pair, 0), intent.up_to_seq)
        self._out.read_marks[pair] = mark
        self._s.covered[pair] = max(self._s.covered.get(pair, 0), mark)
        note = self._s.open_messages.get(pair)
        if note is None or note.read or (note.last_message_seq or 0) > intent.up_to_seq:
            return
        self._read(note)
        self._emit(MarkedRead(intent.user_id, (note.id,), self._unread(intent.user_id)))

    def _mark_read(self, intent: MarkRead) -> None:
        user = intent.requester.user_id
        if intent.ids is None:
            if self._unread(user) > 0:
                for note in self._known(user):
                    if not note.read:
                        self._read(note)
                self._out.read_all[user] = self._now
                self._out.cancel_all.add(user)
                self._set_unread(user, 0)
                self._emit(MarkedRead(user, None, 0))
        else:
            changed: list[str] = []
            for id_ in dict.fromkeys(intent.ids):
                named = self._s.named.get((user, id_))
                if named is not None and not named.read:
                    self._read(named)
                    changed.append(id_)
            if changed:
                self._emit(MarkedRead(user, tuple(changed), self._unread(user)))
        self._out.answers.append(Answer(intent.requester, unread_count=self._unread(user)))

    def _read(self, note: Note) -> None:
        note.read = True
        note.changed = True
        self._out.notes[note.key] = note
        if note.conversation_id is not None:
            pair = (note.user_id, note.conversation_id)
            if self._s.open_messages.get(pair) is note:
                del self._s.open_messages[pair]
        self._out.pushes.pop(note.key, None)
        if note.existed:
            self._out.cancels.add(note.key)
        self._set_unread(note.user_id, self._unread(note.user_id) - 1)

    # -- settings -----------------------------------------------------------------------------

    def _set_prefs(self, intent: SetPrefs) -> None:
        user = intent.requester.user_id
        current = self._prefs(user, intent.kind)
        chosen = KindPrefs(
            in_app=current.in_app if intent.in_app is None else intent.in_app,
            push=current.push if intent.push is None else intent.push,
        )
        self._s.prefs.setdefault(user, {})[intent.kind] = chosen
        self._out.prefs[(user, intent.kind)] = chosen
        self._out.answers.append(Answer(intent.requester, prefs=self._all_prefs(user)))

    def _mute(self, intent: Mute) -> None:
        pair = (intent.requester.user_id, intent.conversation_id)
        if intent.muted:
            self._s.muted.add(pair)
        else:
            self._s.muted.discard(pair)
        self._out.mutes[pair] = intent.muted
        self._out.answers.append(Answer(intent.requester))

    def _connectivity(self, intent: Connectivity) -> None:
        known = self._s.connectivity.get(intent.user_id)
        if known is not None and intent.changed_at < known[1]:
            self._out.ignored["stale_connectivity"] += 1
            return
        fact = (intent.connected, intent.changed_at)
        self._s.connectivity[intent.user_id] = fact
        self._out.connectivity[intent.user_id] = fact

    # -- helpers ------------------------------------------------------------------------------

    def _known(self, user: str) -> list[Note]:
        """Every notification of ``user`` this batch knows: loaded, then made (in order)."""
        if self._made_by_user is None:
            self._made_by_user = defaultdict(list)
            for note in self._out.notes.values():
                if not note.existed:
                    self._made_by_user[note.user_id].append(note)
        return [*self._loaded[user].values(), *self._made_by_user[user]]

    def _prefs(self, user: str, kind: str) -> KindPrefs:
        mine = self._s.prefs.get(user)
        return DEFAULT_PREFS if mine is None else mine.get(kind, DEFAULT_PREFS)

    def _all_prefs(self, user: str) -> NotificationPrefs:
        muted = set(self._s.mute_lists.get(user, ()))
        for (owner, conversation), on in self._out.mutes.items():
            if owner == user:
                (muted.add if on else muted.discard)(conversation)
        return NotificationPrefs(
            message=self._prefs(user, "message"),
            job_alert=self._prefs(user, "job_alert"),
            application_status=self._prefs(user, "application_status"),
            muted_conversations=sorted(muted),
        )

    def _unread(self, user: str) -> int:
        return self._s.unread.get(user, 0)

    def _set_unread(self, user: str, count: int) -> None:
        self._s.unread[user] = count
        self._out.unread[user] = count
