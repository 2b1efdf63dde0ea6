"""Load shedding: a gateway refuses new commands (``unavailable`` with a retry hint) only while the
system is behind, and accepts again as soon as the answers catch up. Pure, with a fake clock."""

from __future__ import annotations

from services.gateway.domain.shedding import MAX_RETRY_MS, MIN_RETRY_MS, LoadShedder


def admission(chance: float = 0.0) -> LoadShedder:
    return LoadShedder(max_wait_s=0.5, min_pending=3, forget_after_s=30.0, chance=lambda: chance)


def test_answers_that_keep_up_never_refuse() -> None:
    gate = admission()
    for i in range(100):
        gate.handed_on("c1", f"r{i}", now=i * 0.01)
        gate.answered("c1", f"r{i}")
        assert gate.retry_after_ms(i * 0.01 + 10.0) is None
    assert len(gate) == 0


def test_a_backlog_older_than_the_bound_refuses_with_its_age_as_the_hint() -> None:
    gate = admission()
    for i in range(5):
        gate.handed_on("c1", f"r{i}", now=0.0)
    assert gate.retry_after_ms(0.4) is None
    assert gate.retry_after_ms(0.8) == 800
    assert gate.retry_after_ms(1.0) == 1000
    # Once the old requests are answered, the younger rest does not refuse.
    for i in range(3):
        gate.answered("c1", f"r{i}")
    gate.handed_on("c2", "x", now=0.7)
    gate.handed_on("c2", "y", now=0.7)
    assert gate.retry_after_ms(0.9) == 900  # r3, r4 still wait since 0
    gate.answered("c1", "r3")
    gate.answered("c1", "r4")
    assert gate.retry_after_ms(0.9) is None


def test_a_few_lost_answers_are_not_overload() -> None:
    gate = admission()
    gate.handed_on("c1", "lost-1", now=0.0)
    gate.handed_on("c1", "lost-2", now=0.0)
    assert gate.retry_after_ms(20.0) is None


def test_unanswered_requests_are_forgotten_after_a_while_and_with_their_connection() -> None:
    gate = admission()
    for i in range(5):
        gate.handed_on("gone", f"r{i}", now=0.0)
    gate.forget("gone", [f"r{i}" for i in range(5)])
    assert len(gate) == 0
    for i in range(5):
        gate.handed_on("c1", f"r{i}", now=0.0)
    assert gate.retry_after_ms(31.0) is None
    assert len(gate) == 0


def test_refusals_grow_with_the_excess_wait_from_none_to_all() -> None:
    # Refused when the chance drawn is below (wait - bound) / bound.
    for waited, chance, refused in [
        (0.6, 0.19, True),
        (0.6, 0.21, False),
        (0.9, 0.79, True),
        (0.9, 0.81, False),
        (1.0, 0.999, True),
        (3.0, 0.999, True),
    ]:
        gate = admission(chance)
        for i in range(3):
            gate.handed_on("c1", f"r{i}", now=0.0)
        assert (gate.retry_after_ms(waited) is not None) is refused, (waited, chance)


def test_the_hint_is_bounded() -> None:
    gate = LoadShedder(max_wait_s=0.01, min_pending=1, forget_after_s=1000.0, chance=lambda: 0.0)
    gate.handed_on("c1", "r", now=0.0)
    assert gate.retry_after_ms(0.02) == MIN_RETRY_MS
    assert gate.retry_after_ms(500.0) == MAX_RETRY_MS


def test_answers_to_other_gateways_requests_are_ignored() -> None:
    gate = admission()
    gate.answered("elsewhere", "r1")
    assert len(gate) == 0
