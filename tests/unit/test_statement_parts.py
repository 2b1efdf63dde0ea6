"""Statement parts of several modules joined into one ``WITH`` (pure; no Postgres)."""

from __future__ import annotations

from services.runtime.db import Cte, with_clause


def test_each_part_s_parameters_follow_the_parts_before_it() -> None:
    head, args = with_clause(
        [
            Cte("a", "SELECT $1::int, $2::text, $1::int", (1, "x")),
            Cte("b", "SELECT * FROM unnest($1::int[], $2::int[])", ([2], [3])),
            Cte("c", "SELECT $1::json", ("[]",)),
        ]
    )
    assert head == (
        "a AS (SELECT $1::int, $2::text, $1::int),"
        " b AS (SELECT * FROM unnest($3::int[], $4::int[])),"
        " c AS (SELECT $5::json)"
    )
    assert args == (1, "x", [2], [3], "[]")


def test_parameters_past_nine_are_renumbered_whole() -> None:
    eleven = Cte("first", " ".join(f"${n}" for n in range(1, 12)), tuple(range(11)))
    head, args = with_clause([eleven, Cte("second", "SELECT $1, $10", tuple(range(10)))])
    assert head.endswith("second AS (SELECT $12, $21)")
    assert len(args) == 21


def test_no_parts_make_an_empty_list() -> None:
    assert with_clause([]) == ("", ())
