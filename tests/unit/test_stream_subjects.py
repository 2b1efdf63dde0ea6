"""Frames may name their subject (what they carry), stored beside them for a later rewrite."""

from __future__ import annotations

import re

from services.runtime.streams import Appends, Stream


def test_the_subject_is_a_fourth_column_only_when_asked_for() -> None:
    stream = Stream("chat", schema="chat")
    plain = stream.insert_sql(13)
    with_subjects = stream.insert_sql(13, subjects=True)
    assert "subject" not in plain
    assert "(user_id, seq, frame, subject)" in with_subjects
    assert re.findall(r"\$\d+", with_subjects) == ["$13", "$14", "$15", "$16"]


def test_subjects_follow_their_frames() -> None:
    appends = Appends({"a": 0, "b": 3})
    for user, subject in (("a", "m1"), ("b", "m1"), ("a", None)):
        appends.add(user, appends.next_seq(user), b"{}", subject)
    assert appends.insert_args(subjects=True)[3] == ["m1", "m1", None]
    assert len(appends.insert_args()) == 3


def test_rows_for_copy_are_the_frames_as_added_with_their_subjects() -> None:
    appends = Appends({"a": 0, "b": 3})
    for user, subject in (("b", None), ("a", "m1"), ("b", "m2")):
        seq = appends.next_seq(user)
        appends.add(user, seq, f'{{"seq":{seq}}}'.encode(), subject)
    assert appends.rows() == [
        ("b", 4, '{"seq":4}', None),
        ("a", 1, '{"seq":1}', "m1"),
        ("b", 5, '{"seq":5}', "m2"),
    ]
