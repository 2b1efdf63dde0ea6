"""``overlapped``: a statement started first, work done beside it, both results; a failure of
the work never leaves the statement running."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.db import overlapped


async def test_the_statement_is_under_way_before_the_work_and_both_results_come_back() -> None:
    events: list[str] = []
    release = asyncio.Event()

    async def statement() -> str:
        events.append("statement sent")
        await release.wait()
        events.append("statement done")
        return "rows"

    async def work() -> int:
        events.append("work")
        release.set()
        return 42

    assert await overlapped(statement(), work) == ("rows", 42)
    assert events == ["statement sent", "work", "statement done"]


async def test_failed_work_cancels_the_statement_and_raises() -> None:
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def statement() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def work() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await overlapped(statement(), work)
    assert cancelled.is_set()
