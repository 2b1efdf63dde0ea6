"""Numbering frames of per-user streams from locked seqs (pure), and the statements a service
folds into its own (their parameters line up with what Appends hands over)."""

from __future__ import annotations

import re

import pytest

from services.runtime.streams import Appends, Stream


def test_seqs_are_consecutive_per_user_from_the_locked_ones() -> None:
    appends = Appends({"a": 0, "b": 41})
    handed = [(user, appends.next_seq(user)) for user in ("a", "b", "a", "a", "b")]
    assert handed == [("a", 1), ("b", 42), ("a", 2), ("a", 3), ("b", 43)]


def test_a_user_whose_stream_was_not_locked_gets_no_seq() -> None:
    appends = Appends({"a": 3})
    with pytest.raises(KeyError):
        appends.next_seq("stranger")


def test_args_carry_the_last_seqs_and_every_frame_in_order() -> None:
    appends = Appends({"a": 5, "b": 0, "idle": 9})
    for user in ("b", "a", "b"):
        seq = appends.next_seq(user)
        appends.add(user, seq, f'{{"seq":{seq}}}'.encode())
    assert appends.advance_args() == ['["b","a"]', "[2,6]"]
    assert appends.insert_args() == [
        ["b", "a", "b"],
        [1, 6, 2],
        ['{"seq":1}', '{"seq":6}', '{"seq":2}'],
    ]


def test_nothing_appended_advances_nothing() -> None:
    appends = Appends({"a": 5})
    assert appends.advance_args() == ["[]", "[]"]
    assert appends.insert_args() == [[], [], []]


def test_statements_are_in_the_owners_schema_and_number_parameters_from_first() -> None:
    stream = Stream("notifications", schema="notifier")
    assert (stream.name, stream.schema, stream.reader_role) == (
        "notifications",
        "notifier",
        "notifier_reader",
    )
    assert '"notifier".user_streams' in stream.lock_sql("SELECT 'u'")
    advance = stream.advance_sql(3)
    assert '"notifier".user_streams' in advance
    assert re.findall(r"\$\d+", advance) == ["$3", "$4"]
    insert = stream.insert_sql(13)
    assert '"notifier".user_events' in insert
    assert re.findall(r"\$\d+", insert) == ["$13", "$14", "$15"]


def test_locking_takes_rows_in_user_order() -> None:
    # One lock order for every statement that takes several users' streams: no deadlocks.
    assert "ORDER BY 1" in Stream("chat", schema="chat").lock_sql("SELECT 'u'")


def test_streams_to_create_are_numbered_from_one_and_created_not_advanced() -> None:
    appends = Appends({"a": 5}, created=["new", "unused"])
    for user in ("new", "a", "new"):
        seq = appends.next_seq(user)
        appends.add(user, seq, f'{{"seq":{seq}}}'.encode())
    assert appends.insert_args()[:2] == [["new", "a", "new"], [1, 6, 2]]
    # A stream is created only for a user who got a frame, with its last seq.
    assert appends.create_args() == ['["new"]', "[2]"]
    assert appends.advance_args() == ['["a"]', "[6]"]


def test_without_streams_to_create_nothing_is_created() -> None:
    appends = Appends({"a": 5})
    appends.add("a", appends.next_seq("a"), b"{}")
    assert appends.create_args() == ["[]", "[]"]


def test_locking_known_streams_takes_them_in_user_order_and_creating_numbers_from_first() -> None:
    stream = Stream("notifications", schema="notifier")
    lock = stream.lock_known_sql("SELECT 'u'")
    assert '"notifier".user_streams' in lock
    assert "ORDER BY user_id FOR UPDATE" in lock
    create = stream.create_sql(34)
    assert re.findall(r"\$\d+", create) == ["$34", "$35"]
    assert "ORDER BY 1" in create
    assert "ON CONFLICT" not in create  # the race must fail, not merge
