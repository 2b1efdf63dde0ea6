"""What erase-user waits for: every service's report of the request and every follow-up step
announced, each counted once (pure)."""

from __future__ import annotations

from schemas.events import ErasureRef, UserErased
from services.runtime.erasure import REQUEST_STEP
from services.runtime.erasure.command import Progress

REQUEST = ErasureRef(source="/erase-user/host", id="r1")


def report(
    service: str,
    step: str = REQUEST_STEP,
    *,
    request: ErasureRef = REQUEST,
    follow_ups: dict[str, int] | None = None,
    **changes: int,
) -> UserErased:
    return UserErased(
        user_id="ulla",
        service=service,
        step=step,
        request=request,
        changes=changes,
        follow_ups=follow_ups or {},
    )


def test_done_once_every_service_and_every_announced_follow_up_reported() -> None:
    progress = Progress(REQUEST, ("chat", "presence", "notifier"))
    assert progress.missing() == dict.fromkeys(("chat", "presence", "notifier"), "the request")
    assert progress.add(report("notifier", notifications=2))
    assert progress.add(report("presence", users=1))
    assert progress.add(report("chat", messages=3, follow_ups={"notifier": 2}))
    assert progress.missing() == {"notifier": "2 of 2 follow-up steps"}
    assert progress.add(report("notifier", "messages:g1:0", previews=1))
    assert not progress.done
    assert progress.add(report("notifier", "messages:dm_1:0", previews=1))
    assert progress.done
    assert progress.summary() == {
        "notifier": {"notifications": 2, "previews": 2},
        "presence": {"users": 1},
        "chat": {"messages": 3},
    }


def test_repeats_and_other_requests_count_nothing() -> None:
    progress = Progress(REQUEST, ("chat", "notifier"))
    assert progress.add(report("chat", follow_ups={"notifier": 1}))
    assert not progress.add(report("chat", follow_ups={"notifier": 1}))
    assert not progress.add(report("notifier", request=ErasureRef(source="/x", id="r2")))
    assert not progress.add(report("presence"))
    assert progress.add(report("notifier", "messages:g1:0"))
    assert not progress.add(report("notifier", "messages:g1:0"))
    assert progress.missing() == {"notifier": "the request"}
    assert progress.add(report("notifier"))
    assert progress.done


def test_a_follow_up_reported_before_the_step_that_announces_it_still_counts() -> None:
    progress = Progress(REQUEST, ("chat", "notifier"))
    assert progress.add(report("notifier", "messages:g1:0"))
    assert progress.add(report("notifier"))
    assert not progress.done
    assert progress.add(report("chat", follow_ups={"notifier": 1}))
    assert progress.done
