"""The notifier's decisions for a batch of intents, with a fake clock and counted ids (pure).

Pins protocol.md part 2 and events.md: coalescing per conversation, reads on every device,
preferences and mutes, the push decision, late statuses, unread counts.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from schemas.frames import KindPrefs
from services.notifier.domain import texts
from services.notifier.domain.inbox import (
    Connectivity,
    ConversationRead,
    Decisions,
    Intent,
    JobAlert,
    MarkedRead,
    MarkRead,
    MessageArrived,
    Mute,
    Note,
    Requester,
    SetPrefs,
    Shown,
    Snapshot,
    StatusChanged,
    decide,
    needs,
)

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def run(
    intents: Sequence[Intent], snapshot: Snapshot | None = None, *, push: bool = True
) -> Decisions:
    counter = itertools.count(1)
    return decide(
        intents,
        snapshot or Snapshot(),
        now=T0,
        new_id=lambda: f"n{next(counter)}",
        push_enabled=push,
    )


def message(
    seq: int, *, sender: str = "alice", to: str = "bob", body: str = "hi"
) -> MessageArrived:
    return MessageArrived(
        conversation_id="c1",
        message_id=f"m{seq}",
        message_seq=seq,
        sender_id=sender,
        body=body,
        member_ids=tuple(sorted({sender, to})),
    )


def asker(user: str = "bob", request_id: str | None = "r1") -> Requester:
    return Requester(user_id=user, connection_id="conn", request_id=request_id, origin=T0)


def stored_message_note(user: str = "bob", *, seq: int = 3, count: int = 2) -> Note:
    title, body = texts.message_texts(sender_id="alice", body="old", count=count)
    return Note(
        user_id=user,
        id="old",
        kind="message",
        title=title,
        body=body,
        data=texts.message_data(
            conversation_id="c1", sender_id="alice", message_id=f"m{seq}", count=count
        ),
        created_at=T0 - timedelta(hours=1),
        read=False,
        conversation_id="c1",
        last_message_seq=seq,
        count=count,
    )


def shown(decisions: Decisions) -> list[Shown]:
    return [change for change in decisions.changes if isinstance(change, Shown)]


def reads(decisions: Decisions) -> list[MarkedRead]:
    return [change for change in decisions.changes if isinstance(change, MarkedRead)]


# --- coalescing --------------------------------------------------------------------------------


def test_three_messages_to_a_user_make_one_notification_counting_three() -> None:
    decisions = run([message(1, body="one"), message(2, body="two"), message(3, body="three")])
    # One batch: the frames for counts 1 and 2 would only be overwritten, so one is sent.
    [frame] = shown(decisions)
    assert (frame.user_id, frame.view.id, frame.unread_count) == ("bob", "n1", 1)
    assert frame.view.title == "3 new messages"
    assert frame.view.body == "alice: three"
    assert frame.view.data == {
        "conversation_id": "c1",
        "sender_id": "alice",
        "message_id": "m3",
        "count": 3,
    }
    note = decisions.notes[("bob", "n1")]
    assert (note.count, note.last_message_seq, note.read, note.existed) == (3, 3, False, False)
    assert decisions.unread == {"bob": 1}
    assert decisions.created == {"message": 1}
    assert decisions.updated == {"message": 2}


def test_a_notification_shown_again_next_in_its_users_frames_is_sent_once() -> None:
    alert = JobAlert("j", "t", None, None, "https://x", user_ids=("bob",))
    other = MessageArrived(
        conversation_id="c2",
        message_id="m9",
        message_seq=1,
        sender_id="carol",
        body="hey",
        member_ids=("bob", "carol"),
    )
    to_dave = message(1, to="dave")
    decisions = run([message(1), to_dave, message(2), alert, message(3), other, message(4)])
    frames = shown(decisions)
    # bob's n1 at counts 2 (then the alert), 3 (then c2's), 4; dave's frame between changes
    # nothing of bob's. Every frame's unread count is what a replay of bob's frames gives.
    assert [(f.user_id, f.view.data.get("count")) for f in frames] == [
        ("dave", 1),
        ("bob", 2),
        ("bob", None),
        ("bob", 3),
        ("bob", 1),
        ("bob", 4),
    ]
    assert [f.unread_count for f in frames if f.user_id == "bob"] == [1, 2, 2, 3, 3]
    assert decisions.changes == frames


def test_a_read_between_two_showings_keeps_both() -> None:
    snapshot = Snapshot(
        unread={"bob": 2},
        open_messages={("bob", "c1"): stored_message_note()},
        covered={("bob", "c1"): 3},
        named={
            ("bob", "x"): Note(
                user_id="bob",
                id="x",
                kind="job_alert",
                title="New job",
                body="",
                data={},
                created_at=T0,
                read=False,
            )
        },
    )
    decisions = run([message(4), MarkRead(asker(), ids=("x",)), message(5)], snapshot)
    assert [type(change).__name__ for change in decisions.changes] == [
        "Shown",
        "MarkedRead",
        "Shown",
    ]


def test_the_sender_gets_no_notification_of_their_own_message() -> None:
    decisions = run([message(1)])
    assert {frame.user_id for frame in shown(decisions)} == {"bob"}
    assert "alice" not in decisions.unread


def test_a_message_updates_the_stored_unread_notification_in_place() -> None:
    snapshot = Snapshot(
        unread={"bob": 5},
        open_messages={("bob", "c1"): stored_message_note()},
        covered={("bob", "c1"): 3},
    )
    decisions = run([message(4, body="newer")], snapshot)
    [frame] = shown(decisions)
    assert frame.view.id == "old"
    assert frame.view.data["count"] == 3
    assert frame.view.created_at == T0 - timedelta(hours=1)
    assert frame.unread_count == 5
    assert decisions.unread == {}
    assert decisions.notes[("bob", "old")].existed


def test_a_repeated_or_already_read_message_changes_nothing() -> None:
    snapshot = Snapshot(unread={"bob": 1}, covered={("bob", "c1"): 7})
    decisions = run([message(7), message(5)], snapshot)
    assert decisions.changes == [] and decisions.notes == {}
    assert decisions.ignored == {"repeat": 2}


def test_a_read_notification_is_not_updated_the_next_message_makes_a_new_one() -> None:
    decisions = run(
        [
            message(1),
            MarkRead(asker(), ids=("n1",)),
            message(2),
        ],
        Snapshot(),
    )
    # n1 was made in this batch, so a read by id cannot name it (ids are learnt from frames);
    # reading the conversation can.
    assert [(f.view.id, f.view.data["count"]) for f in shown(decisions)] == [("n1", 2)]
    decisions = run([message(1), ConversationRead("bob", "c1", 1), message(2)])
    frames = shown(decisions)
    assert [frame.view.id for frame in frames] == ["n1", "n2"]
    assert [frame.view.data["count"] for frame in frames] == [1, 1]
    assert decisions.unread == {"bob": 1}


# --- reading a conversation --------------------------------------------------------------------


def test_reading_the_conversation_up_to_its_last_message_reads_the_notification() -> None:
    snapshot = Snapshot(
        unread={"bob": 4},
        open_messages={("bob", "c1"): stored_message_note(seq=3)},
        covered={("bob", "c1"): 3},
        subscribed={"bob"},
    )
    decisions = run([ConversationRead("bob", "c1", 3)], snapshot)
    assert reads(decisions) == [MarkedRead("bob", ("old",), 3)]
    assert decisions.notes[("bob", "old")].read
    assert decisions.unread == {"bob": 3}
    assert decisions.cancels == {("bob", "old")}
    assert decisions.read_marks == {("bob", "c1"): 3}


def test_a_read_short_of_the_last_message_leaves_the_notification_unread() -> None:
    snapshot = Snapshot(
        unread={"bob": 1},
        open_messages={("bob", "c1"): stored_message_note(seq=3)},
        covered={("bob", "c1"): 3},
    )
    decisions = run([ConversationRead("bob", "c1", 2)], snapshot)
    assert decisions.changes == [] and decisions.unread == {}
    assert decisions.read_marks == {("bob", "c1"): 2}


def test_a_notification_made_and_read_in_one_batch_is_never_pushed() -> None:
    decisions = run([message(1), ConversationRead("bob", "c1", 1)], Snapshot(subscribed={"bob"}))
    assert decisions.pushes == {} and decisions.cancels == set()
    assert decisions.notes[("bob", "n1")].read
    assert decisions.unread == {"bob": 0}


# --- preferences and mutes ---------------------------------------------------------------------


def test_a_muted_conversation_makes_no_notification() -> None:
    decisions = run([message(1)], Snapshot(muted={("bob", "c1")}))
    assert decisions.changes == [] and decisions.notes == {}
    assert decisions.ignored == {"muted": 1}


def test_muting_and_unmuting_apply_to_what_follows_in_the_batch() -> None:
    mute = Mute(asker(), "c1", muted=True)
    unmute = Mute(asker(request_id="r2"), "c1", muted=False)
    decisions = run([mute, message(1), unmute, message(2)])
    assert [frame.view.data["message_id"] for frame in shown(decisions)] == ["m2"]
    assert decisions.mutes == {("bob", "c1"): False}
    assert [answer.requester.request_id for answer in decisions.answers] == ["r1", "r2"]


def test_in_app_off_stores_nothing_and_push_off_stores_without_pushing() -> None:
    snapshot = Snapshot(
        prefs={
            "bob": {"message": KindPrefs(in_app=False)},
            "carol": {"message": KindPrefs(push=False)},
        },
        subscribed={"bob", "carol"},
    )
    decisions = run([message(1, to="bob"), message(2, to="carol")], snapshot)
    assert [frame.user_id for frame in shown(decisions)] == ["carol"]
    assert decisions.pushes == {}
    assert decisions.ignored == {"disabled": 1}


def test_prefs_set_changes_what_is_given_and_answers_with_every_preference() -> None:
    snapshot = Snapshot(
        prefs={"bob": {"job_alert": KindPrefs(push=False)}},
        mute_lists={"bob": ["c9", "c1"]},
    )
    decisions = run(
        [
            Mute(asker(request_id="m"), "c0", muted=True),
            Mute(asker(request_id="u"), "c9", muted=False),
            SetPrefs(asker(request_id="p"), "job_alert", in_app=False, push=None),
        ],
        snapshot,
    )
    assert decisions.prefs == {("bob", "job_alert"): KindPrefs(in_app=False, push=False)}
    prefs = decisions.answers[-1].prefs
    assert prefs is not None
    assert prefs.to_dict() == {
        "message": {"in_app": True, "push": True},
        "job_alert": {"in_app": False, "push": False},
        "application_status": {"in_app": True, "push": True},
        "muted_conversations": ["c0", "c1"],
    }


# --- push decision -----------------------------------------------------------------------------


def test_pushed_only_to_subscribed_users_without_a_live_connection() -> None:
    later = T0 + timedelta(seconds=1)
    snapshot = Snapshot(
        subscribed={"bob", "carol", "dave"},
        connectivity={"carol": (True, T0), "dave": (True, T0)},
    )
    alert = JobAlert(
        job_id="j1",
        title="Engineer",
        company="Acme",
        location=None,
        url="https://x",
        user_ids=("bob", "carol", "dave", "erin"),
    )
    decisions = run([Connectivity("dave", False, later), alert], snapshot)
    # carol is connected; erin holds no subscription; dave's last device went away first.
    assert {user for user, _ in decisions.pushes} == {"bob", "dave"}
    assert decisions.connectivity == {"dave": (False, later)}
    assert run([alert], snapshot, push=False).pushes == {}


def test_a_stale_connectivity_fact_is_ignored() -> None:
    snapshot = Snapshot(connectivity={"bob": (True, T0)})
    decisions = run([Connectivity("bob", False, T0 - timedelta(seconds=1))], snapshot)
    assert decisions.connectivity == {}
    assert decisions.ignored == {"stale_connectivity": 1}


def test_an_update_is_pushed_with_the_unread_count_after_it() -> None:
    snapshot = Snapshot(unread={"bob": 2}, subscribed={"bob"})
    decisions = run([message(1), message(2)], snapshot)
    [push] = decisions.pushes.values()
    assert (push.view.id, push.view.data["count"], push.unread_count) == ("n1", 2, 3)


# --- job alerts and application status ---------------------------------------------------------


def test_a_push_decided_before_its_frame_is_folded_shows_the_frame_kept() -> None:
    # bob is away at the first message and back before the second: the first version's frame
    # is folded into the second's, so the push owed since the first shows the second (a push
    # of the first would show a version none of bob's devices ever receives).
    snapshot = Snapshot(unread={"bob": 2}, subscribed={"bob"})
    back = Connectivity("bob", True, T0)
    decisions = run([message(1), back, message(2)], snapshot)
    [frame] = shown(decisions)
    [push] = decisions.pushes.values()
    assert (push.view, push.unread_count) == (frame.view, frame.unread_count)
    assert push.view.data["count"] == 2


def test_a_job_alert_makes_one_notification_per_recipient_who_wants_it() -> None:
    alert = JobAlert(
        job_id="j-123",
        title="Cleared Systems Engineer",
        company="Acme",
        location="Reston, VA",
        url="https://example.org/jobs/j-123",
        user_ids=("u1", "u2", "u3"),
    )
    snapshot = Snapshot(unread={"u1": 4}, prefs={"u3": {"job_alert": KindPrefs(in_app=False)}})
    decisions = run([alert], snapshot)
    frames = shown(decisions)
    assert [(frame.user_id, frame.unread_count) for frame in frames] == [("u1", 5), ("u2", 1)]
    view = frames[0].view
    assert (view.kind, view.title, view.body) == (
        "job_alert",
        "New job: Cleared Systems Engineer",
        "Acme \u00b7 Reston, VA",
    )
    assert view.data == {
        "job_id": "j-123",
        "url": "https://example.org/jobs/j-123",
        "title": "Cleared Systems Engineer",
        "company": "Acme",
        "location": "Reston, VA",
    }
    assert decisions.created == {"job_alert": 2}
    assert decisions.ignored == {"disabled": 1}


def status(changed_at: datetime, status_: str = "interview") -> StatusChanged:
    return StatusChanged(
        application_id="a-9",
        job_id="j-123",
        job_title="Engineer",
        candidate_id="u1",
        status=status_,
        previous_status="submitted",
        changed_at=changed_at,
        note=None,
    )


def test_application_status_notifies_the_candidate_and_late_events_make_none() -> None:
    snapshot = Snapshot(applications={"a-9": T0})
    decisions = run(
        [
            status(T0 - timedelta(minutes=1), "viewed"),  # older than the one applied
            status(T0, "viewed"),  # the same time: the same change again
            status(T0 + timedelta(minutes=1), "interview"),
            status(T0 + timedelta(seconds=30), "shortlisted"),  # arrived late
        ],
        snapshot,
    )
    [frame] = shown(decisions)
    assert frame.user_id == "u1"
    assert frame.view.data == {
        "application_id": "a-9",
        "job_id": "j-123",
        "status": "interview",
        "previous_status": "submitted",
    }
    assert frame.view.body == "You are invited to an interview."
    assert decisions.ignored == {"late_status": 3}
    assert decisions.applications == {"a-9": (T0 + timedelta(minutes=1), "interview")}


def test_a_status_the_candidate_does_not_want_still_moves_the_applications_clock() -> None:
    snapshot = Snapshot(prefs={"u1": {"application_status": KindPrefs(in_app=False)}})
    decisions = run([status(T0), status(T0 - timedelta(seconds=1))], snapshot)
    assert decisions.changes == []
    assert decisions.applications == {"a-9": (T0, "interview")}
    assert decisions.ignored == {"disabled": 1, "late_status": 1}


# --- notification.read -------------------------------------------------------------------------


def test_read_by_ids_marks_only_the_users_own_unread_ones() -> None:
    mine = stored_message_note()
    snapshot = Snapshot(
        unread={"bob": 3}, named={("bob", "old"): mine}, open_messages={("bob", "c1"): mine}
    )
    decisions = run([MarkRead(asker(), ids=("old", "someone-elses", "old"))], snapshot)
    assert reads(decisions) == [MarkedRead("bob", ("old",), 2)]
    assert decisions.answers[0].unread_count == 2
    assert decisions.cancels == {("bob", "old")}
    # Nothing new to read: no frame, the ack still says how many are unread.
    again = run([MarkRead(asker(), ids=("someone-elses",))], Snapshot(unread={"bob": 2}))
    assert again.changes == [] and again.answers[0].unread_count == 2


def test_read_all_reads_everything_so_far_and_not_what_comes_after() -> None:
    stored = stored_message_note()
    snapshot = Snapshot(
        unread={"bob": 7}, open_messages={("bob", "c1"): stored}, subscribed={"bob"}
    )
    decisions = run([message(4), MarkRead(asker(), ids=None), message(5)], snapshot)
    assert reads(decisions) == [MarkedRead("bob", None, 0)]
    assert decisions.read_all == {"bob": T0}
    assert decisions.cancel_all == {"bob"}
    assert decisions.notes[("bob", "old")].read
    # The next message opens a new notification, unread, and pushed.
    assert [frame.view.id for frame in shown(decisions)] == ["old", "n1"]
    assert decisions.unread == {"bob": 1}
    assert set(decisions.pushes) == {("bob", "n1")}


def test_read_all_with_nothing_unread_sends_no_frame() -> None:
    decisions = run([MarkRead(asker(), ids=None)], Snapshot(unread={"bob": 0}))
    assert decisions.changes == [] and decisions.read_all == {}
    assert decisions.answers[0].unread_count == 0


@pytest.mark.parametrize("seed", range(20))
def test_unread_counts_equal_unread_notifications_and_pushes_show_frames(seed: int) -> None:
    rng = random.Random(seed)
    made = itertools.count(1)
    snapshot = Snapshot(subscribed={"bob", "carol"})
    notes: dict[str, Note] = {}
    seq = 0
    for _ in range(5):
        intents: list[Intent] = []
        for _ in range(30):
            roll = rng.random()
            if roll < 0.4:
                seq += 1
                intents.append(message(seq, to=rng.choice(["bob", "carol"])))
            elif roll < 0.6:
                intents.append(
                    JobAlert("j", "t", None, None, "https://x", user_ids=("bob", "carol"))
                )
            elif roll < 0.75:
                user = rng.choice(["bob", "carol"])
                intents.append(ConversationRead(user, "c1", rng.randint(0, seq)))
            elif roll < 0.85:
                user = rng.choice(["bob", "carol"])
                ids = tuple(rng.sample(sorted(notes), min(3, len(notes)))) or ("none",)
                intents.append(MarkRead(asker(user), ids=ids))
            elif roll < 0.9:
                user = rng.choice(["bob", "carol"])
                intents.append(Connectivity(user, rng.random() < 0.5, T0))
            elif roll < 0.93:
                user = rng.choice(["bob", "carol"])
                intents.append(SetPrefs(asker(user), "message", None, rng.random() < 0.5))
            else:
                intents.append(MarkRead(asker(rng.choice(["bob", "carol"])), ids=None))
        # Each batch sees what the previous ones stored, as the adapters would load it.
        snapshot.named = {
            (n.user_id, n.id): n
            for intent in intents
            if isinstance(intent, MarkRead)
            for n in notes.values()
            if n.user_id == intent.requester.user_id and n.id in (intent.ids or ())
        }
        decisions = decide(
            intents,
            snapshot,
            now=T0,
            new_id=lambda: f"n{next(made)}",
            push_enabled=True,
        )
        # Each push shows a version its user's devices get: one of the batch's frames.
        frames = {(f.user_id, f.view.id, repr(f.view), f.unread_count) for f in shown(decisions)}
        for (user, id_), due in decisions.pushes.items():
            assert (user, id_, repr(due.view), due.unread_count) in frames
        notes.update({key[1]: note for key, note in decisions.notes.items()})
        for user in decisions.read_all:
            for note in notes.values():
                if note.user_id == user and (user, note.id) not in decisions.notes:
                    note.read = True
        for note in notes.values():
            note.existed = True
        for user in ("bob", "carol"):
            unread = sum(1 for n in notes.values() if n.user_id == user and not n.read)
            assert snapshot.unread.get(user, 0) == unread


# --- what a batch must read --------------------------------------------------------------------


def test_needs_names_what_to_lock_and_read() -> None:
    intents: list[Intent] = [
        message(1),
        ConversationRead("carol", "c2", 4),
        JobAlert("j", "t", None, None, "https://x", user_ids=("u1", "u2")),
        status(T0),
        MarkRead(asker("dave"), ids=("x", "y")),
        SetPrefs(asker("erin"), "message", in_app=None, push=False),
        Connectivity("frank", True, T0),
    ]
    found = needs(intents)
    assert found.users == {"bob", "carol", "u1", "u2", "dave"}
    assert found.pairs == {("bob", "c1"), ("carol", "c2")}
    assert found.named == {("dave", "x"), ("dave", "y")}
    assert found.pref_users == {"erin"}
    assert found.watched == {"bob", "carol", "u1", "u2", "dave", "erin", "frank"}
    assert found.applications == {"a-9"}


# --- texts -------------------------------------------------------------------------------------


def test_message_preview_is_one_line_cut_with_an_ellipsis() -> None:
    assert texts.preview("a\n\n b\tc ") == "a b c"
    long = "x" * 500
    cut = texts.preview(long)
    assert len(cut) == texts.PREVIEW_CHARS and cut.endswith("\u2026")
    assert texts.message_texts(sender_id="al", body="hey", count=1) == (
        "New message from al",
        "hey",
    )


def test_job_alert_and_status_texts() -> None:
    assert texts.job_alert_texts(title="T", company=None, location=None) == (
        "New job: T",
        "A new job matches your saved alert.",
    )
    assert texts.application_texts(job_title="T", status="offer", note="Call us.") == (
        "Application update: T",
        "You received an offer. Call us.",
    )
