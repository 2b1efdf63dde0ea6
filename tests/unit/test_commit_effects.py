"""Effects after commit: run once the consumer's transaction committed, never for what was
rolled back (services/runtime/commit_effects.py; the consumer's use of it is in
tests/integration/test_consumer_parallel.py)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.runtime.commit_effects import after_commit, gathering


def errors(code: str) -> float:
    return REGISTRY.get_sample_value("realtime_errors_total", {"code": code}) or 0.0


def test_outside_a_transaction_an_effect_runs_at_once() -> None:
    ran: list[str] = []
    after_commit(lambda: ran.append("now"))
    assert ran == ["now"]


def test_effects_wait_for_the_caller_and_run_in_order() -> None:
    ran: list[int] = []
    with gathering() as effects:
        after_commit(lambda: ran.append(1))
        after_commit(lambda: ran.append(2))
        assert ran == []
    effects.run()
    assert ran == [1, 2]
    effects.run()
    assert ran == [1, 2]  # each runs once


def test_effects_of_what_was_rolled_back_are_dropped() -> None:
    ran: list[str] = []
    with gathering() as effects:
        after_commit(lambda: ran.append("kept"))
        mark = effects.mark()
        after_commit(lambda: ran.append("rolled back"))
        effects.drop_since(mark)
    effects.run()
    assert ran == ["kept"]


def test_a_transaction_that_fails_runs_none() -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), gathering():
        after_commit(lambda: ran.append("never"))
        raise RuntimeError("rolled back")
    after_commit(lambda: ran.append("after"))
    assert ran == ["after"]


def test_a_failing_effect_is_counted_and_the_others_still_run() -> None:
    ran: list[str] = []
    before = errors("commit_effect")

    def broken() -> None:
        raise ValueError("bug")

    with gathering() as effects:
        after_commit(broken)
        after_commit(lambda: ran.append("next"))
    effects.run()
    assert ran == ["next"]
    assert errors("commit_effect") == before + 1


async def test_each_task_gathers_its_own_transactions_effects() -> None:
    # The consumer's lanes are tasks side by side, each with a transaction of its own.
    ran: list[str] = []

    async def lane(name: str, fail: bool) -> None:
        with gathering() as effects:
            after_commit(lambda: ran.append(name))
            await asyncio.sleep(0)
            if fail:
                return
        effects.run()

    await asyncio.gather(lane("a", fail=False), lane("b", fail=True))
    assert ran == ["a"]
