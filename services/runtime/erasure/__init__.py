"""User data erasure: what every service does with a request on ``users.erasure.v1``, and the
``erase-user`` command (docs/erasure.md).

Module map:
    (this module)  the contract of a service's part (:class:`Eraser`), the handler its
                   transactional consumer applies requests with (:class:`ErasureHandler`), and
                   the reports of what was done (:class:`ErasureReports`, ``users.erased.v1``)
    command        ``python -m services.runtime.erasure erase-user <id>``: publishes a request,
                   waits until every service reported it done (pure bookkeeping: Progress)

Flow::

    erase-user / the site's own services --user.erasure.requested--> users.erasure.v1
        (key: user id; compacted: a service rebuilt later still sees every erasure)
    each service: transactional consumer (its own group) --ErasureHandler--> Eraser.erase
        in one transaction with its offset --outbox--> its frames and facts, and
        user.erased (step "request") --> users.erased.v1 (key: user id) --> erase-user
    follow-ups: a service whose part makes work for another (chat's chat.messages.erased
        facts for the notifier) says how many steps to expect; the other reports each one

An erasure is idempotent by construction: a service erases what is left of the user, so a
request applied again (a re-run, a redelivery after a crash, a service rebuilt from the
compacted topic) changes nothing and reports zero changes. A crash mid-erasure rolls the
transaction back; the request is consumed again and applied whole.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from schemas import topics
from schemas.events import ErasureRef, UserErased, UserErasureRequested
from services.runtime.codec import EventBuilder, parse_data
from services.runtime.consumer import InboundRecord
from services.runtime.db import Connection
from services.runtime.errors import RecordRejected
from services.runtime.outbox import OutboundRecord

log = logging.getLogger(__name__)

#: The step a service reports for the request itself (follow-ups have names of their own).
REQUEST_STEP = "request"
#: The close code of an erased user's connections (docs/protocol-notes.md): do not reconnect.
CLOSE_ERASED = 4003
#: Its reason.
CLOSE_ERASED_REASON = "account erased"


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """An erasure request as a service applies it.

    Attributes:
        user_id: the user to erase.
        ref: the request's CloudEvent identity (reports name it).
    """

    user_id: str
    ref: ErasureRef


@dataclass(frozen=True, slots=True)
class Erased:
    """What a service's part of an erasure did.

    Attributes:
        changes: rows and frames changed, by kind (reported; all 0 on a re-run).
        follow_ups: steps other services will report because of this part, by service.
    """

    changes: Mapping[str, int]
    follow_ups: Mapping[str, int] = field(default_factory=dict)


class Eraser(Protocol):
    """A service's part of an erasure, applied in the consumer's transaction.

    ``erase`` must leave none of the user's data in the service's schema (or a documented
    placeholder), stage what others must be told in ``out``, and change nothing when applied
    again. It raises only infrastructure errors (the batch is retried).
    """

    async def erase(
        self, conn: Connection, request: ErasureRequest, out: list[OutboundRecord]
    ) -> Erased: ...


class ErasureReports:
    """Builds the ``user.erased`` reports of one service.

    Args:
        service: the reporting service's name.
        events: its event builder.
        topic: ``users.erased.v1`` of the deployment.
    """

    __slots__ = ("_events", "_service", "_topic")

    def __init__(self, *, service: str, events: EventBuilder, topic: str) -> None:
        self._service = service
        self._events = events
        self._topic = topic

    def report(
        self,
        user_id: str,
        request: ErasureRef,
        *,
        step: str,
        changes: Mapping[str, int],
        follow_ups: Mapping[str, int] | None = None,
    ) -> OutboundRecord:
        """The record saying this service applied ``step`` of ``request`` (stage it in the
        transaction that applied it: the report exists exactly when the step committed)."""
        fact = UserErased(
            user_id=user_id,
            service=self._service,
            step=step,
            request=request,
            changes=dict(changes),
            follow_ups=dict(follow_ups or {}),
        )
        return self._events.record(
            self._topic, topics.USER_ERASED, key=user_id, data=fact.to_dict()
        )


class ErasureHandler:
    """The :class:`~services.runtime.consumer.RecordHandler` of ``users.erasure.v1``: applies
    each request with the service's :class:`Eraser` and reports it.

    Args:
        eraser: the service's part.
        reports: builds its reports.
    """

    def __init__(self, *, eraser: Eraser, reports: ErasureReports) -> None:
        self._eraser = eraser
        self._reports = reports

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        """Apply one request.

        Raises:
            RecordRejected: another event type, or data that does not fit (dead-lettered).
        """
        envelope = record.envelope
        if envelope.type != topics.USER_ERASURE_REQUESTED:
            raise RecordRejected(f"unknown_type:{envelope.type[:64]}")
        requested = parse_data(envelope, UserErasureRequested)
        request = ErasureRequest(
            user_id=requested.user_id, ref=ErasureRef(source=envelope.source, id=envelope.id)
        )
        erased = await self._eraser.erase(conn, request, out)
        # The request's id names it in logs; the user id stays out of them.
        log.info(
            "erasure applied",
            extra={"request_id": request.ref.id, "changes": dict(erased.changes)},
        )
        out.append(
            self._reports.report(
                request.user_id,
                request.ref,
                step=REQUEST_STEP,
                changes=erased.changes,
                follow_ups=erased.follow_ups,
            )
        )
